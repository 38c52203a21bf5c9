import * as z from 'zod';
import { env, loadConfig } from '../../shared/config.ts';
import { authEnv } from '../../shared/auth.ts';
import { clickHouseEnv } from '../../shared/clickhouse.ts';
import { secretsEnv } from '../../shared/secrets.ts';

/** The reader function's configuration, parsed once at cold start. */
export const config = loadConfig({
  ...clickHouseEnv,
  ...authEnv,
  ...secretsEnv,
  // Deployed stages: the ClickHouse password from SSM Parameter Store or Secrets Manager, never the value.
  CLICKHOUSE_PASSWORD_PARAMETER: z.string().startsWith('/', 'must be a full parameter name starting with /').optional(),
  CLICKHOUSE_PASSWORD_SECRET_ARN: z.string().optional(),
  // `GET /v1/progress` without ?limit= answers this many films; ?limit= may ask for up to READ_MAX_LIMIT.
  READ_DEFAULT_LIMIT: env.int(20, 1),
  READ_MAX_LIMIT: env.int(100, 1),
});
