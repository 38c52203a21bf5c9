import kafkaNames from './kafka-names.json';
import { ConfigError } from './errors.ts';
import * as z from './zod.ts';

/** Environment variable name → its parser (see `env` below). */
export type EnvSchema = Record<string, z.ZodMiniType>;

/**
 * The typed settings a schema declares, as loadConfig returns them: a variable with a default is
 * always there, only an optional one may be missing. Shared code takes these types, never a
 * hand-written copy, so a function whose schema lacks a setting the code reads does not compile.
 */
export type Settings<S extends EnvSchema> = Readonly<z.output<z.ZodMiniObject<S>>>;

/**
 * Parses environment variables once into a typed, frozen object.
 * Keys of `schema` are the variable names; a failure names every offending variable.
 */
export function loadConfig<S extends EnvSchema>(
  schema: S,
  env: NodeJS.ProcessEnv = process.env,
): Settings<S> {
  const values: Record<string, string | undefined> = {};
  for (const name of Object.keys(schema)) {
    const raw = env[name];
    // An empty variable (e.g. `${env:X, ''}` in serverless.yml) means "not set".
    values[name] = raw === undefined || raw.trim() === '' ? undefined : raw.trim();
  }
  const parsed = z.object(schema).safeParse(values);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  return Object.freeze(parsed.data) as Settings<S>;
}

/** Reusable variable parsers, so every function reads a given variable the same way. */
export const env = {
  list: () =>
    z.pipe(z.pipe(z.string(), z.transform((s: string) => s.split(',').map((part) => part.trim()).filter(Boolean))), z.array(z.string()).check(z.minLength(1))),
  bool: (fallback: boolean) =>
    z.pipe(z.optional(z.enum(['true', 'false', '1', '0'])), z.transform((s) => (s === undefined ? fallback : s === 'true' || s === '1'))),
  int: (fallback: number, min = 0) => z._default(z.pipe(z.coerce.number(), z.int().check(z.minimum(min))), fallback),
  string: (fallback: string) => z._default(z.string(), fallback),
  optionalString: () => z.optional(z.string()),
  url: () => z.url(),
  /** An SSM parameter holding a secret (deployed stages): a full name. */
  parameterName: () => z.optional(z.string().check(z.startsWith('/', 'must be a full parameter name starting with /'))),
};

/** Kafka settings both functions share (the writer produces to the dead-letter topic). */
export const kafkaEnv = {
  KAFKA_BROKERS: env.list(),
  KAFKA_CLIENT_ID: env.string('ugc-ingest'),
  KAFKA_TOPIC: env.string(kafkaNames.eventsTopic),
  KAFKA_DLQ_TOPIC: env.string(kafkaNames.deadLetterTopic),
  // On everywhere (MSK, compose, the embedded Kafka): a retried send is written once per partition.
  KAFKA_IDEMPOTENT: env.bool(true),
  KAFKA_SSL: env.bool(false),
};
