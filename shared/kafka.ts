import { Kafka, CompressionTypes, Partitioners, logLevel, type Mechanism, type Producer, type SASLOptions } from 'kafkajs';
// kafkajs' own SCRAM-SHA-512 exchange, wrapped below so its credentials can be fetched lazily.
import scram512AuthenticationProvider from 'kafkajs/src/broker/saslAuthenticator/scram512.js';
import * as z from './zod.ts';
import { env, type kafkaEnv, type Settings } from './config.ts';
import { ConfigError } from './errors.ts';
import { jsonSecretReader, secretReader, secretsEnv } from './secrets.ts';
import { logger } from './telemetry.ts';

export const kafkaSaslMechanisms = ['aws-msk-iam', 'scram-sha-512'] as const;
export type KafkaSaslMechanism = (typeof kafkaSaslMechanisms)[number];

/** How the functions authenticate to the cluster; read beside `kafkaEnv` from shared/config.ts. */
export const kafkaAuthEnv = {
  // Unset: no authentication (the embedded Kafka, compose).
  // aws-msk-iam: SASL/OAUTHBEARER signed with the function's role (MSK port 9098), the default on AWS.
  // scram-sha-512: username/password from the Secrets Manager secret KAFKA_SASL_SECRET_ARN (port 9096).
  KAFKA_SASL_MECHANISM: z.optional(z.enum(kafkaSaslMechanisms)),
  KAFKA_SASL_SECRET_ARN: env.optionalString(),
  // Set by the Lambda runtime; used to sign MSK IAM tokens.
  AWS_REGION: env.string('us-east-1'),
  ...secretsEnv,
};

/** The settings createKafka reads, typed from kafkaEnv and kafkaAuthEnv: a function needs both in its schema. */
export type KafkaSettings = Settings<typeof kafkaEnv & typeof kafkaAuthEnv>;

/** A source of AWS credentials, as the AWS SDK v3 credential providers return them. */
export type AwsCredentialsProvider = () => Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken?: string; expiration?: Date }>;

/**
 * kafkajs' OAUTHBEARER provider for MSK IAM: a SigV4-presigned `kafka-cluster:Connect` URL made by
 * aws-msk-iam-sasl-signer-js, from the given credentials or the default chain (the function's role).
 * The signer is loaded on first use, so clients without SASL never load the AWS SDK.
 */
export function mskIamTokenProvider(region: string, credentials?: AwsCredentialsProvider): () => Promise<{ value: string }> {
  return async () => {
    const signer = await import('aws-msk-iam-sasl-signer-js');
    const { token } = credentials
      ? await signer.generateAuthTokenFromCredentialsProvider({ region, awsCredentialsProvider: credentials })
      : await signer.generateAuthToken({ region });
    return { value: token };
  };
}

const scramSecret = z.object({ username: z.string().check(z.minLength(1)), password: z.string().check(z.minLength(1)) });

/** SCRAM-SHA-512 whose credentials are read from Secrets Manager when a connection authenticates. */
function scramFromSecret(read: () => Promise<z.infer<typeof scramSecret>>): Mechanism {
  return {
    mechanism: 'scram-sha-512',
    authenticationProvider: (args) => ({
      authenticate: async () => {
        const { username, password } = await read();
        await scram512AuthenticationProvider({ mechanism: 'scram-sha-512', username, password })(args).authenticate();
      },
    }),
  };
}

/** kafkajs SASL options for the configured mechanism; undefined without one. */
export function kafkaSasl(settings: KafkaSettings, deps: { credentials?: AwsCredentialsProvider; readScram?: () => Promise<z.infer<typeof scramSecret>> } = {}): SASLOptions | Mechanism | undefined {
  switch (settings.KAFKA_SASL_MECHANISM) {
    case undefined:
      return undefined;
    case 'aws-msk-iam':
      return { mechanism: 'oauthbearer', oauthBearerProvider: mskIamTokenProvider(settings.AWS_REGION, deps.credentials) };
    case 'scram-sha-512': {
      if (!settings.KAFKA_SASL_SECRET_ARN && !deps.readScram) throw new ConfigError('KAFKA_SASL_SECRET_ARN must be set for KAFKA_SASL_MECHANISM=scram-sha-512');
      const read = deps.readScram ?? jsonSecretReader(
        secretReader({ name: 'KAFKA_SASL_SECRET', secretId: settings.KAFKA_SASL_SECRET_ARN }, { maxAgeS: settings.SECRETS_MAX_AGE_S }),
        scramSecret,
        'KAFKA_SASL_SECRET_ARN',
      );
      return scramFromSecret(read);
    }
  }
}

/** kafkajs log lines through the functions' structured logger, without its default console noise. */
const kafkaLogCreator = () => ({ level, log }: { level: logLevel; log: { message: string } & Record<string, unknown> }) => {
  if (level > logLevel.WARN) return;
  const { message, timestamp: _timestamp, logger: _logger, ...rest } = log;
  if (level === logLevel.ERROR) logger.error(`kafka: ${message}`, rest);
  else logger.warn(`kafka: ${message}`, rest);
};

/** A client for the configured cluster with timeouts that fit inside a Lambda invocation. */
export function createKafka(settings: KafkaSettings): Kafka {
  const sasl = kafkaSasl(settings);
  return new Kafka({
    clientId: settings.KAFKA_CLIENT_ID,
    brokers: settings.KAFKA_BROKERS,
    // MSK accepts SASL (IAM and SCRAM) only over TLS.
    ssl: settings.KAFKA_SSL || sasl !== undefined,
    ...(sasl ? { sasl } : {}),
    connectionTimeout: 1_000,
    // SASL adds a handshake (and, for IAM, a signature) to every new connection.
    authenticationTimeout: 3_000,
    requestTimeout: 2_000,
    // A dead broker must turn into a 503 inside the Lambda's timeout, not a hung request.
    retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 500 },
    logLevel: logLevel.WARN,
    logCreator: kafkaLogCreator,
  });
}

/** A producer that waits for all in-sync replicas; idempotent unless KAFKA_IDEMPOTENT=false. */
export function createProducer(kafka: Kafka, settings: Pick<KafkaSettings, 'KAFKA_IDEMPOTENT'>): Producer {
  return kafka.producer({
    idempotent: settings.KAFKA_IDEMPOTENT,
    maxInFlightRequests: settings.KAFKA_IDEMPOTENT ? 1 : undefined,
    allowAutoTopicCreation: false,
    // murmur2, as the Java client: a user's key lands on the same partition whoever produces it.
    createPartitioner: Partitioners.DefaultPartitioner,
  });
}

export { CompressionTypes };
export { createSender, requestCompression, type Sender, type SizedCompression } from './kafka-sender.ts';

/**
 * The events' compression: gzip for a produce request of at least 1 KiB of keys and values. A
 * single event (~400 bytes) saves a few bytes by it and costs a deflate in the function and an
 * inflate on each broker that validates the batch.
 */
export const eventCompression = { codec: CompressionTypes.GZIP, minBytes: 1024 };
