import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { Context, MSKEvent } from 'aws-lambda';
import { createKafka, createProducer, createSender } from '../../shared/kafka.ts';
import { clickHouseWithStoredPassword } from '../../shared/clickhouse.ts';
import { logger, metricNames, metrics, MetricUnit } from '../../shared/telemetry.ts';
import { config } from './config.ts';
import { deadLetterSends, toDeadLetterMessage } from './dead-letter.ts';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { batchRecords, batchToken, decodeRows, type PoisonRecord } from './decode.ts';
import { eventColumns, jsonCompactChunks, type EventRow } from './rows.ts';

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
 * again at every retry. input_format_parallel_parsing: 0, so the server parses the streamed body as it
 * arrives: parallel parsing waits for 10 MB segments (min_chunk_bytes_for_parallel_parsing), all
 * of a batch, before it parses any. wait_end_of_query: 1, so the answer's status is the insert's
 * outcome, never a 200 sent before it failed. Exported for the bench, whose raw baseline makes the same insert.
 */
export const insertSettings = (token: string) => ({
  insert_deduplication_token: token, insert_deduplicate: 1, async_insert: 0, insert_distributed_sync: 1,
  deduplicate_blocks_in_dependent_materialized_views: 1, max_partitions_per_insert_block: '0', input_format_parallel_parsing: 0,
  wait_end_of_query: 1,
}) as const;

/** The batch's INSERT: the writer's columns, rows as JSONCompactEachRow arrays in that order. */
const insertQuery = `INSERT INTO events (${eventColumns.join(', ')}) FORMAT JSONCompactEachRow`;

/**
 * Writes one AWS Kafka batch to ClickHouse in ONE insert whose body streams: each row is decoded as
 * the request takes it, so ClickHouse parses while Node decodes. The token is fixed from the
 * records' bytes before the first row. Poison records go to the dead-letter topic; a ClickHouse or
 * dead-letter failure throws, so the event source retries the whole batch and commits nothing.
 * The insert's deduplication token makes that retry harmless.
 */
async function writeBatch(event: MSKEvent, context: Context): Promise<{ written: number; deadLettered: number }> {
  const records = batchRecords(event);
  const token = batchToken(records);
  logger.appendKeys({ batchId: context.awsRequestId, token, records: records.length });
  metrics.addMetric(metricNames.batchSize, MetricUnit.Count, records.length);

  const poison: PoisonRecord[] = [];
  const rows = decodeRows(records, poison);
  let written = 0;
  // Insert first: a retry after a later failure repeats the insert harmlessly (same token),
  // and the dead letters are sent once the rows are safe. No request for a batch of poison only.
  const first = rows.next();
  if (!first.done) {
    // The insert's time, its decoding included: the rows are decoded as the insert sends them.
    const started = performance.now();
    function* counted(): Generator<EventRow> {
      for (let row = first; !row.done; row = rows.next()) {
        written++;
        yield row.value;
      }
    }
    try {
      // exec, not insert: insert takes a JSON format's rows one object at a time; exec takes the body's text in chunks.
      const { stream } = await (await clickhouse()).exec({
        query: insertQuery,
        values: Readable.from(jsonCompactChunks(counted()), { objectMode: false }),
        clickhouse_settings: insertSettings(token),
      });
      stream.resume(); // an insert answers nothing; wait_end_of_query makes its status final
      await finished(stream);
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
  metrics.addMetric(metricNames.rowsWritten, MetricUnit.Count, written);
  metrics.addMetric(metricNames.deadLettered, MetricUnit.Count, poison.length);
  logger.info('batch written', { written, deadLettered: poison.length });
  return { written, deadLettered: poison.length };
}

export const handler = middy<MSKEvent>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logMetrics(metrics, { captureColdStartMetric: true }))
  .handler(writeBatch);
