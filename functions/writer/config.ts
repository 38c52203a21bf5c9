import { kafkaEnv, loadConfig } from '../../shared/config.ts';
import { clickHouseEnv } from '../../shared/clickhouse.ts';

/** The writer function's configuration, parsed once at cold start. */
export const config = loadConfig({ ...kafkaEnv, ...clickHouseEnv });
