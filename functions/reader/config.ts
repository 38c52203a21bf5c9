import { progressLimits } from '../../shared/api.ts';
import { env, loadConfig } from '../../shared/config.ts';
import { authEnv } from '../../shared/auth.ts';
import { storedClickHouseEnv } from '../../shared/clickhouse.ts';
import { secretsEnv } from '../../shared/secrets.ts';

/** The reader function's configuration, parsed once at cold start. */
export const config = loadConfig({
  ...storedClickHouseEnv,
  ...authEnv,
  ...secretsEnv,
  // `GET /v1/progress` without ?limit= answers this many films; ?limit= may ask for up to READ_MAX_LIMIT.
  READ_DEFAULT_LIMIT: env.int(progressLimits.defaultLimit, 1),
  READ_MAX_LIMIT: env.int(progressLimits.maxLimit, 1),
});
