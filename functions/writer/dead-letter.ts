import type { Message } from 'kafkajs';
import type { PoisonRecord } from './decode.ts';

/** Header names a dead-lettered message carries besides its original headers. */
export const deadLetterHeaders = {
  reason: 'dlq-reason',
  topic: 'dlq-original-topic',
  partition: 'dlq-original-partition',
  offset: 'dlq-original-offset',
} as const;

/** The original record, byte for byte, plus why it was refused and where it came from. */
export function toDeadLetterMessage({ record, reason, position }: PoisonRecord): Message {
  const headers: Record<string, Buffer> = {};
  for (const header of record.headers ?? []) {
    for (const [name, bytes] of Object.entries(header)) headers[name] = Buffer.from(bytes);
  }
  headers[deadLetterHeaders.reason] = Buffer.from(reason);
  headers[deadLetterHeaders.topic] = Buffer.from(position.topic);
  headers[deadLetterHeaders.partition] = Buffer.from(String(position.partition));
  headers[deadLetterHeaders.offset] = Buffer.from(String(position.offset));
  const key = (record as { key?: string }).key;
  return {
    key: key === undefined ? null : Buffer.from(key, 'base64'),
    value: Buffer.from(record.value ?? '', 'base64'),
    headers,
  };
}
