import type { MSKEvent, MSKRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { batchRecords, batchToken, decodeBatch, decodeRecord, decodeRows, type PoisonRecord } from '../../functions/writer/decode.ts';
import { deadLetterSends, toDeadLetterMessage } from '../../functions/writer/dead-letter.ts';
import { eventColumns, jsonCompactChunks, rowObject, toClickHouseRow } from '../../functions/writer/rows.ts';
import { eventTypes, registryExamples, type AcceptedEvent } from '../../shared/events.ts';
import { eventFieldColumns } from '../../shared/generated/event-columns.ts';

const accepted = {
  type: 'film_rating', film_id: 'f1', score: 8, event_id: '0190b6b0-0000-7000-8000-000000000001', user_id: 'u1',
  received_at: '2026-11-23T10:00:00.000Z', occurred_at: '2026-11-23T10:00:00.000Z', request_id: 'r1', schema_version: 1,
};
const b64 = (s: string) => Buffer.from(s).toString('base64');
const record = (offset: number, value: string, partition = 0): MSKRecord => ({
  topic: 'ugc.events', partition, offset, timestamp: 0, timestampType: 'CREATE_TIME', key: b64('u1'), value: b64(value),
  headers: [{ 'event-type': [...Buffer.from('film_rating')] }],
});

describe('writer decoding', () => {
  it('decodes a base64 JSON value and maps it to a row with NULLs for fields the type lacks', () => {
    const decoded = decodeRecord(record(7, JSON.stringify(accepted)));
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    const row = rowObject(toClickHouseRow(decoded.event, decoded.position));
    expect(row).toMatchObject({ event_type: 'film_rating', score: 8, film_id: 'f1', position_s: null, url: null, kafka_offset: 7 });
  });

  it('puts every field of every registered type in its own column, and NULL in the others (each registry example)', () => {
    expect(new Set(eventColumns).size).toBe(eventColumns.length);
    const { type: _type, film_id: _film, score: _score, ...enrichment } = accepted;
    for (const type of eventTypes) {
      for (const example of registryExamples(type)) {
        const event = { ...enrichment, ...example } as Record<string, unknown>;
        const row = rowObject(toClickHouseRow(event as unknown as AcceptedEvent, { topic: 't', partition: 2, offset: 9 }));
        for (const { field, column, time } of eventFieldColumns) {
          const sent = event[field] as string | number | undefined;
          expect(row[column], `${type}.${field}`).toEqual(sent === undefined ? null : time ? new Date(sent).toISOString() : sent);
        }
        expect(row).toMatchObject({ kafka_topic: 't', kafka_partition: 2, kafka_offset: 9 });
      }
    }
  });

  it('drops fields its type does not declare (a newer ingest\'s, another type\'s) before they reach a column', () => {
    // accepted is a film_rating: position_s and results_count belong to other types; device to none.
    const decoded = decodeRecord(record(3, JSON.stringify({ ...accepted, device: 'tv', position_s: 1e12, results_count: -1 })));
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    expect(decoded.event).not.toHaveProperty('device');
    expect(rowObject(toClickHouseRow(decoded.event, decoded.position))).toMatchObject({ score: 8, position_s: null, results_count: null });
  });

  it('marks undecodable and invalid records as poison with a reason', () => {
    expect(decodeRecord(record(1, '{not json'))).toMatchObject({ ok: false, reason: 'value is not JSON' });
    const invalid = decodeRecord(record(2, JSON.stringify({ ...accepted, score: 11 })));
    expect(invalid.ok).toBe(false);
    if (!invalid.ok) expect(invalid.reason).toContain('score');
  });

  it('names a batch by its offset ranges, the same however AWS orders the groups and records', () => {
    const event = (records: MSKEvent['records']): MSKEvent => ({ eventSource: 'aws:kafka', eventSourceArn: 'arn', bootstrapServers: 'b', records });
    const value = (n: number) => JSON.stringify({ ...accepted, event_id: `0190b6b0-0000-7000-8000-00000000000${n}` });
    const a = event({ 'ugc.events-1': [record(5, value(1), 1), record(4, value(2), 1)], 'ugc.events-0': [record(9, value(3)), record(10, '{poison')] });
    const b = event({ 'ugc.events-0': [record(10, '{poison'), record(9, value(3))], 'ugc.events-1': [record(4, value(2), 1), record(5, value(1), 1)] });
    const records = batchRecords(a);
    expect(records.map((r) => `${r.partition}:${r.offset}`)).toEqual(['0:9', '0:10', '1:4', '1:5']);
    const { token } = decodeBatch(a);
    expect(token).toMatch(/^ugc\.events-0:9-10,ugc\.events-1:4-5\/[\w-]{22}$/);
    expect(decodeBatch(b).token).toBe(token);
  });

  it('gives different events or poison at reused offsets a different token, so they are not dropped as a repeat', () => {
    const token = (value: string) => decodeBatch({ eventSource: 'aws:kafka', eventSourceArn: 'arn', bootstrapServers: 'b', records: { 'ugc.events-0': [record(0, value)] } }).token;
    const first = JSON.stringify(accepted);
    expect(token(first)).toBe(token(first));
    expect(token(JSON.stringify({ ...accepted, event_id: '0190b6b0-0000-7000-8000-000000000002' }))).not.toBe(token(first));
    expect(token('{"a":1}')).not.toBe(token('{"a":2}'));
  });

  it('dead-letters the original bytes with the reason and origin in headers', () => {
    const poison = decodeRecord(record(3, '{not json'));
    if (poison.ok) throw new Error('expected poison');
    const message = toDeadLetterMessage(poison);
    expect(String(message.value)).toBe('{not json');
    expect(String(message.key)).toBe('u1');
    expect(message.headers).toMatchObject({ 'event-type': Buffer.from('film_rating'), 'dlq-reason': Buffer.from('value is not JSON'),
      'dlq-original-offset': Buffer.from('3') });
  });
});

describe('dead-letter sends', () => {
  it('split a batch of poison into sends under the broker\'s message size, in order, none lost', () => {
    const message = (i: number, size = 1_000) => ({ key: Buffer.from(`k${i}`), value: Buffer.alloc(size, i % 256), headers: { 'dlq-reason': Buffer.from('value is not JSON') } });
    const poison = Array.from({ length: 3_000 }, (_, i) => message(i));
    const sends = deadLetterSends(poison);
    expect(sends.length).toBeGreaterThan(5);
    expect(sends.flat()).toEqual(poison);
    for (const send of sends) expect(send.reduce((n, m) => n + (m.value?.length ?? 0), 0)).toBeLessThanOrEqual(512 * 1024);
    // A record larger than a send goes alone, not dropped.
    const big = message(7, 600 * 1024);
    expect(deadLetterSends([message(1), big, message(2)])).toEqual([[message(1)], [big], [message(2)]]);
    expect(deadLetterSends([])).toEqual([]);
  });

  it('streams a batch: the token comes from the records before any is decoded, rows are decoded as they are pulled, poison is set aside', () => {
    const records = [record(0, JSON.stringify(accepted)), record(1, '{poison'), record(2, JSON.stringify({ ...accepted, event_id: '0190b6b0-0000-7000-8000-000000000002' }))];
    const poison: PoisonRecord[] = [];
    const rows = decodeRows(records, poison);
    expect(poison).toHaveLength(0); // nothing decoded until pulled
    expect(rows.next().done).toBe(false);
    expect(poison).toHaveLength(0);
    expect([...rows]).toHaveLength(1);
    expect(poison.map((p) => p.position.offset)).toEqual([1]);
    // The token needs no decoding: a poison record's bytes count like any other.
    expect(batchToken(records)).not.toBe(batchToken([records[0]!, record(1, '{other poison'), records[2]!]));
  });

  it('writes rows as JSONCompactEachRow text in chunks of about the size asked, every row once and whole', () => {
    const rows = Array.from({ length: 1000 }, (_, i) => [`film-${i}`, i, null, 'é "quoted"']);
    const chunks = [...jsonCompactChunks(rows, 4096)];
    expect(chunks.length).toBeGreaterThan(5);
    for (const chunk of chunks.slice(0, -1)) expect(chunk.length).toBeGreaterThanOrEqual(4096);
    for (const chunk of chunks) expect(chunk.endsWith('\n')).toBe(true);
    expect(chunks.join('').split('\n').slice(0, -1).map((line) => JSON.parse(line))).toEqual(rows);
    expect([...jsonCompactChunks([])]).toEqual([]);
  });
});
