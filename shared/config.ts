import * as z from 'zod';

/** A missing or malformed environment variable: fails the cold start, naming the variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type EnvSchema = Record<string, z.ZodType>;

/**
 * Parses environment variables once into a typed, frozen object.
 * Keys of `schema` are the variable names; a failure names every offending variable.
 */
export function loadConfig<S extends EnvSchema>(
  schema: S,
  env: NodeJS.ProcessEnv = process.env,
): Readonly<{ [K in keyof S]: z.output<S[K]> }> {
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
  return Object.freeze(parsed.data) as Readonly<{ [K in keyof S]: z.output<S[K]> }>;
}

/** Reusable variable parsers, so every function reads a given variable the same way. */
export const env = {
  list: () =>
    z.string().transform((s) => s.split(',').map((part) => part.trim()).filter(Boolean)).pipe(z.array(z.string()).min(1)),
  bool: (fallback: boolean) =>
    z
      .enum(['true', 'false', '1', '0'])
      .optional()
      .transform((s) => (s === undefined ? fallback : s === 'true' || s === '1')),
  int: (fallback: number, min = 0) => z.coerce.number().int().min(min).default(fallback),
  string: (fallback: string) => z.string().default(fallback),
  url: () => z.url(),
};

/** Kafka settings both functions share (the writer produces to the dead-letter topic). */
export const kafkaEnv = {
  KAFKA_BROKERS: env.list(),
  KAFKA_CLIENT_ID: env.string('ugc-ingest'),
  KAFKA_TOPIC: env.string('ugc.events'),
  KAFKA_DLQ_TOPIC: env.string('ugc.events.dlq'),
  // Real Kafka/MSK: on. The embedded mock broker cannot do idempotent producers (see DESIGN.md).
  KAFKA_IDEMPOTENT: env.bool(true),
  KAFKA_SSL: env.bool(false),
};
