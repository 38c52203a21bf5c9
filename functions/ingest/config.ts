import { env, kafkaEnv, loadConfig } from '../../shared/config.ts';
import { authEnv } from '../../shared/auth.ts';
import { kafkaAuthEnv } from '../../shared/kafka.ts';

/** The ingest function's configuration, parsed once at cold start. */
export const config = loadConfig({
  ...kafkaEnv,
  ...kafkaAuthEnv,
  ...authEnv,
  MAX_EVENTS_PER_REQUEST: env.int(500, 1),
  MAX_BODY_BYTES: env.int(1_048_576, 1),
  // Upper bound for waiting on Kafka's acknowledgement; also capped by the Lambda's remaining time.
  PRODUCE_TIMEOUT_MS: env.int(8_000, 100),
});
