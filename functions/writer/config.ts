import * as z from 'zod';
import { kafkaEnv, loadConfig } from '../../shared/config.ts';
import { clickHouseEnv } from '../../shared/clickhouse.ts';
import { kafkaAuthEnv } from '../../shared/kafka.ts';

/** The writer function's configuration, parsed once at cold start. */
export const config = loadConfig({
  ...kafkaEnv,
  ...kafkaAuthEnv,
  ...clickHouseEnv,
  // Deployed stages: the ClickHouse password from SSM Parameter Store or Secrets Manager, never the value.
  CLICKHOUSE_PASSWORD_PARAMETER: z.string().startsWith('/', 'must be a full parameter name starting with /').optional(),
  CLICKHOUSE_PASSWORD_SECRET_ARN: z.string().optional(),
});
