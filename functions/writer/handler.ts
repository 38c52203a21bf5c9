import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { Context, MSKEvent } from 'aws-lambda';
import { createKafka, createProducer, createSender } from '../../shared/kafka.ts';
import { clickHouseWithStoredPassword } from '../../shared/clickhouse.ts';
import { logger, metricNames, metrics, MetricUnit } from '../../shared/telemetry.ts';
import { config } from './config.ts';
import { deadLetterSends, toDeadLetterMessage } from './dead-letter.ts';
import { decodeBatch } from './decode.ts';
import { eventColumns } from './rows.ts';

// Created once per container and reused.
const deadLetterKafka = createKafka(config);
const deadLetters = createSender(() => createProducer(deadLetterKafka, config));

// The password is a plain variable offline; in a deployed stage it is read on the first batch and cached.
const clickhouse = clickHouseWithStoredPassword(config);

/**
 * The settings of the batch's insert. Synchronous: the token deduplicates the block, and success
 * means the rows are stored. insert_deduplicate: 1 in case a server profile turned it off
 * (ClickHouse 26+ decides by deduplicate_insert, on by default). On a cluster (events is
 * Distributed) insert_distributed_sync makes all this hold on the shards too, instead of queueing
 * the rows on the node that took the insert; elsewhere it is inert. No limit on the monthly
 * partitions one insert touches: a batch of old events (a replay, another producer) must not fail
 * again at every retry. Exported for the bench, whose raw baseline makes the same insert.
 */
export const insertSettings = (token: string) => ({
  insert_deduplication_token: token, insert_deduplicate: 1, async_insert: 0, insert_distributed_sync: 1,
  deduplicate_blocks_in_dependent_materialized_views: 1, max_partitions_per_insert_block: '0',
}) as const;

/**
 * Writes one AWS Kafka batch to ClickHouse in ONE insert, its body built whole. Poison records go to the dead-letter
 * topic; a ClickHouse or dead-letter failure throws, so the event source retries the whole batch and commits
 * nothing. The insert's deduplication token makes that retry harmless.
 */
async function writeBatch(event: MSKEvent, context: Context): Promise<{ written: number; deadLettered: number }> {
  const { records, rows, poison, token } = decodeBatch(event);
  logger.appendKeys({ batchId: context.awsRequestId, token, records });
  metrics.addMetric(metricNames.batchSize, MetricUnit.Count, records);

  // Insert first: a retry after a later failure repeats the insert harmlessly (same token),
  // and the dead letters are sent once the rows are safe.
  if (rows.length > 0) {
    const started = performance.now();
    try {
      await (await clickhouse()).insert({
        table: 'events',
        values: rows,
        format: 'JSONCompactEachRow',
        columns: [...eventColumns],
        clickhouse_settings: insertSettings(token),
      });
    } catch (error) {
      const code = (error as { code?: string }).code;
      logger.error('clickhouse insert failed', { code, error: String(error) });
      clickhouse.rejected(error);
      throw error;
    }
    metrics.addMetric(metricNames.insertLatency, MetricUnit.Milliseconds, performance.now() - started);
  }
  if (poison.length > 0) {
    try {
      for (const messages of deadLetterSends(poison.map(toDeadLetterMessage))) {
        await deadLetters.send({ topic: config.KAFKA_DLQ_TOPIC, acks: -1, messages });
      }
    } catch (error) {
      logger.error('dead-letter produce failed', { deadLettered: poison.length, error: String(error) });
      throw error;
    }
    logger.warn('records dead-lettered', { deadLettered: poison.length, reasons: poison.map((p) => ({ ...p.position, reason: p.reason })) });
  }
  metrics.addMetric(metricNames.rowsWritten, MetricUnit.Count, rows.length);
  metrics.addMetric(metricNames.deadLettered, MetricUnit.Count, poison.length);
  logger.info('batch written', { written: rows.length, deadLettered: poison.length });
  return { written: rows.length, deadLettered: poison.length };
}

export const handler = middy<MSKEvent>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logMetrics(metrics, { captureColdStartMetric: true }))
  .handler(writeBatch);
