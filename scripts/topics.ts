/**
 * `npm run topics`: the product's topics (shared/kafka-topics.ts) on KAFKA_BROKERS, authenticated
 * as the functions are (on MSK, KAFKA_SASL_MECHANISM=aws-msk-iam).
 */
import { loadConfig, kafkaEnv } from '../shared/config.ts';
import { createKafka, kafkaAuthEnv } from '../shared/kafka.ts';
import { ensureTopics, productTopics } from '../shared/kafka-topics.ts';
import { createLogger } from '../shared/telemetry.ts';

const log = createLogger('topics');

const kafka = createKafka(loadConfig({ ...kafkaEnv, ...kafkaAuthEnv }));
const wanted = productTopics();
const report = await ensureTopics(kafka, wanted);
for (const t of report.existing) {
  const want = wanted.find((w) => w.name === t.name)!.partitions;
  if (t.partitions !== want) log.warn('topic exists with another partition count; left as it is', { topic: t.name, partitions: t.partitions, wanted: want });
}
log.info('topics ready', { ...report });
