import { kafkaEnv, loadConfig } from '../../shared/config.ts';
import { storedClickHouseEnv } from '../../shared/clickhouse.ts';
import { kafkaAuthEnv } from '../../shared/kafka.ts';

/** The writer function's configuration, parsed once at cold start. */
export const config = loadConfig({
  ...kafkaEnv,
  ...kafkaAuthEnv,
  ...storedClickHouseEnv,
});
