import middy from '@middy/core';
import type { Context, MSKEvent } from 'aws-lambda';
import { createClickHouse } from '../../shared/clickhouse.ts';
import { createKafka, createProducer } from '../../shared/kafka.ts';
import { config } from './config.ts';
import { toDeadLetterMessage } from './dead-letter.ts';
import { batchRecords, decodeRecord, deduplicationToken } from './decode.ts';
import { toClickHouseRow } from './rows.ts';

// Created once per container and reused.
const clickhouse = createClickHouse(config);
const deadLetters = createProducer(createKafka(config), config);
let deadLettersConnected: Promise<void> | undefined;

/**
 * Writes one AWS Kafka batch to ClickHouse in ONE insert. Poison records go to the dead-letter
 * topic; a ClickHouse or dead-letter failure throws, so the event source retries the whole batch and commits
 * nothing. The insert's deduplication token makes that retry harmless.
 */
async function writeBatch(event: MSKEvent, context: Context): Promise<{ written: number; deadLettered: number }> {
  const records = batchRecords(event);
  const decoded = records.map(decodeRecord);
  const rows = decoded.flatMap((d) => (d.ok ? [toClickHouseRow(d.event, d.position)] : []));
  const poison = decoded.filter((d) => !d.ok);
  const token = deduplicationToken(records);
  const log = { batchId: context.awsRequestId, token, records: records.length };

  // Insert first: a retry after a later failure repeats the insert harmlessly (same token),
  // and the dead letters are sent once the rows are safe.
  if (rows.length > 0) {
    try {
      await clickhouse.insert({
        table: 'events',
        values: rows,
        format: 'JSONEachRow',
        // Synchronous insert: the token deduplicates the block, and success means the rows are stored.
        clickhouse_settings: { insert_deduplication_token: token, async_insert: 0 },
      });
    } catch (error) {
      const code = (error as { code?: string }).code;
      console.error(JSON.stringify({ level: 'error', msg: 'clickhouse insert failed', ...log, code, error: String(error) }));
      throw error;
    }
  }
  if (poison.length > 0) {
    deadLettersConnected ??= deadLetters.connect();
    try {
      await deadLettersConnected;
      await deadLetters.send({ topic: config.KAFKA_DLQ_TOPIC, acks: -1, messages: poison.map(toDeadLetterMessage) });
    } catch (error) {
      deadLettersConnected = undefined;
      throw error;
    }
    console.log(JSON.stringify({ level: 'warn', msg: 'records dead-lettered', ...log, deadLettered: poison.length,
      reasons: poison.map((p) => ({ ...p.position, reason: p.reason })) }));
  }
  console.log(JSON.stringify({ level: 'info', msg: 'batch written', ...log, written: rows.length, deadLettered: poison.length }));
  return { written: rows.length, deadLettered: poison.length };
}

export const handler = middy<MSKEvent>().handler(writeBatch);
