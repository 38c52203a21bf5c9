import type { Message } from 'kafkajs';
import type { PoisonRecord } from './decode.ts';

/** What every dead-letter header's name starts with: `npm run redrive` strips them on replay. */
export const deadLetterHeaderPrefix = 'dlq-';

/** Header names a dead-lettered message carries besides its original headers. */
export const deadLetterHeaders = {
  reason: `${deadLetterHeaderPrefix}reason`,
  topic: `${deadLetterHeaderPrefix}original-topic`,
  partition: `${deadLetterHeaderPrefix}original-partition`,
  offset: `${deadLetterHeaderPrefix}original-offset`,
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

/** Bytes a message takes in a produce request, near enough: key, value and headers. */
function messageBytes({ key, value, headers }: Message): number {
  let bytes = (key?.length ?? 0) + (value?.length ?? 0);
  for (const [name, header] of Object.entries(headers ?? {})) bytes += name.length + (header?.length ?? 0);
  return bytes;
}

/**
 * The dead letters in order, in sends of at most `maxBytes` each (a larger message goes alone).
 * One send of a 10,000-record batch's poison could pass the broker's message.max.bytes (1 MB by
 * default); refused, it would fail the batch at every retry and stop the partition.
 */
export function deadLetterSends(messages: Message[], maxBytes = 512 * 1024): Message[][] {
  const sends: Message[][] = [];
  let current: Message[] = [];
  let size = 0;
  for (const message of messages) {
    const bytes = messageBytes(message);
    if (current.length > 0 && size + bytes > maxBytes) {
      sends.push(current);
      current = [];
      size = 0;
    }
    current.push(message);
    size += bytes;
  }
  if (current.length > 0) sends.push(current);
  return sends;
}
