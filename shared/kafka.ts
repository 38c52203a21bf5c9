import { Kafka, CompressionTypes, Partitioners, logLevel, type Producer } from 'kafkajs';

export interface KafkaSettings {
  KAFKA_BROKERS: string[];
  KAFKA_CLIENT_ID: string;
  KAFKA_IDEMPOTENT: boolean;
  KAFKA_SSL: boolean;
}

/** JSON log lines for kafkajs, without its default console noise. */
const kafkaLogCreator = () => ({ level, log }: { level: logLevel; log: { message: string } & Record<string, unknown> }) => {
  if (level > logLevel.WARN) return;
  const { message, timestamp: _timestamp, logger: _logger, ...rest } = log;
  console.log(JSON.stringify({ level: level === logLevel.ERROR ? 'error' : 'warn', msg: `kafka: ${message}`, ...rest }));
};

/** A client for the configured cluster with timeouts that fit inside a Lambda invocation. */
export function createKafka(settings: KafkaSettings): Kafka {
  return new Kafka({
    clientId: settings.KAFKA_CLIENT_ID,
    brokers: settings.KAFKA_BROKERS,
    ssl: settings.KAFKA_SSL,
    connectionTimeout: 1_000,
    requestTimeout: 2_000,
    // A dead broker must turn into a 503 inside the Lambda's timeout, not a hung request.
    retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 500 },
    logLevel: logLevel.WARN,
    logCreator: kafkaLogCreator,
  });
}

/** A producer that waits for all in-sync replicas; idempotent on real Kafka. */
export function createProducer(kafka: Kafka, settings: KafkaSettings): Producer {
  return kafka.producer({
    idempotent: settings.KAFKA_IDEMPOTENT,
    maxInFlightRequests: settings.KAFKA_IDEMPOTENT ? 1 : undefined,
    allowAutoTopicCreation: false,
    // murmur2, as the Java client: a user's key lands on the same partition whoever produces it.
    createPartitioner: Partitioners.DefaultPartitioner,
  });
}

export { CompressionTypes };
