import type { KafkaMessage } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { enrich, toKafkaMessage } from '../../functions/ingest/messages.ts';
import { clientEvent } from '../../shared/events.ts';
import { firstFromEachOrigin, formatReport, parseRedriveArgs, redriveDecision, redriveDecisions } from '../../scripts/redrive.ts';
import { documentedOnFailureRecord } from './fixtures/aws-on-failure-record.ts';
import { eraseStatements, parseEraseArgs, sqlString } from '../../scripts/erase.ts';

const deadLetter = (value: string | null, headers: Record<string, string>): KafkaMessage => ({
  key: Buffer.from('viewer-1'), value: value === null ? null : Buffer.from(value), offset: '7', timestamp: '0', attributes: 0,
  headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Buffer.from(v)])),
});

describe('redrive decisions', () => {
  it('replays a valid event with its key, value and original headers, without the dead-letter headers', () => {
    const message = toKafkaMessage(enrich(clientEvent.parse({ type: 'film_progress', film_id: 'tt01', position_s: 5 }), { userId: 'viewer-1', requestId: 'r', receivedAt: new Date() }));
    const decision = redriveDecision('ugc.events.dlq', 0, deadLetter(String(message.value), {
      'event-type': 'film_progress', 'dlq-reason': 'Error: connect ECONNREFUSED', 'dlq-original-offset': '12', 'dlq-source': 'event-source-mapping',
    }));
    expect(decision.replay).toBe(true);
    if (!decision.replay) return;
    expect(decision.reason).toBe('Error: connect ECONNREFUSED');
    expect(String(decision.message.key)).toBe('viewer-1');
    expect(String(decision.message.value)).toBe(String(message.value));
    expect(Object.keys(decision.message.headers ?? {}).sort()).toEqual(['event-type', 'redriven-from']);
    expect(String(decision.message.headers?.['redriven-from'])).toBe('ugc.events.dlq/0/7');
  });

  it('keeps a record that still fails, with the reason it fails now', () => {
    const notJson = redriveDecision('d', 0, deadLetter('{"type":', { 'dlq-reason': 'value is not JSON' }));
    expect(notJson).toEqual({ replay: false, reason: 'value is not JSON', now: 'value is not JSON' });
    const tombstone = redriveDecision('d', 0, deadLetter(null, {}));
    expect(tombstone).toEqual({ replay: false, reason: 'no dlq-reason header', now: 'value is not JSON' });
    const clientOnly = redriveDecision('d', 0, deadLetter(JSON.stringify({ type: 'click', url: '/', element: 'e' }), { 'dlq-reason': 'x' }));
    expect(clientOnly.replay).toBe(false);
    expect(!clientOnly.replay && clientOnly.now).toMatch(/^invalid event: /);
  });

  it("reads AWS's documented on-failure record: the failed record inside it, with the condition as its reason", () => {
    // The example as AWS prints it: its value is the text "test-value", so it still fails, and says where it came from.
    const decisions = redriveDecisions('ugc.events.failed', 2, deadLetter(JSON.stringify(documentedOnFailureRecord), {}));
    expect(decisions).toEqual([{
      replay: false, reason: 'event source mapping: RetriesExhausted (function error: Unhandled)', now: 'value is not JSON', origin: 'my-topic/0/100',
    }]);
  });

  it("replays a valid event out of AWS's on-failure record with the key, value and headers of the original record", () => {
    const message = toKafkaMessage(enrich(clientEvent.parse({ type: 'film_progress', film_id: 'tt01', position_s: 5 }), { userId: 'viewer-1', requestId: 'r', receivedAt: new Date() }));
    const record = (offset: number) => ({
      ...documentedOnFailureRecord.payload.records['my-topic-0'][0], topic: 'ugc.events', partition: 3, offset,
      key: Buffer.from('viewer-1').toString('base64'), value: Buffer.from(String(message.value)).toString('base64'),
      headers: [{ 'event-type': [...Buffer.from('film_progress')] }],
    });
    // Two records of one batch in one document, under the payload's "topic-partition" key.
    const failure = { ...documentedOnFailureRecord, payload: { ...documentedOnFailureRecord.payload, records: { 'ugc.events-3': [record(41), record(40)] } } };
    const decisions = redriveDecisions('ugc.events.failed', 0, deadLetter(JSON.stringify(failure), {}));
    expect(decisions.map((d) => d.origin)).toEqual(['ugc.events/3/40', 'ugc.events/3/41']);
    const [first] = decisions;
    expect(first?.replay).toBe(true);
    if (!first?.replay) return;
    expect(first.reason).toBe('event source mapping: RetriesExhausted (function error: Unhandled)');
    expect(String(first.message.key)).toBe('viewer-1');
    expect(String(first.message.value)).toBe(String(message.value));
    expect(Object.fromEntries(Object.entries(first.message.headers ?? {}).map(([k, v]) => [k, String(v)]))).toEqual({
      'event-type': 'film_progress', 'redriven-from': 'ugc.events.failed/0/7',
    });
    // The same batch carried again by another message (the page does not say whether AWS writes a
    // document per record or per batch): each record is replayed once per run.
    const seen = new Set<string>();
    expect(firstFromEachOrigin(decisions, seen).repeated).toBe(0);
    expect(firstFromEachOrigin(redriveDecisions('ugc.events.failed', 0, deadLetter(JSON.stringify(failure), {})), seen)).toEqual({ fresh: [], repeated: 2 });
  });

  it('reads a value that only looks like an on-failure record as a dead letter of its own layout', () => {
    // A dlq-reason header means the writer or the emulator wrote it, whatever the value says.
    const ours = redriveDecisions('d', 0, deadLetter(JSON.stringify(documentedOnFailureRecord), { 'dlq-reason': 'x' }));
    expect(ours).toEqual([{ replay: false, reason: 'x', now: expect.stringMatching(/^invalid event: /) }]);
    // Neither layout: one decision for the message, still failing.
    const { payload: _payload, ...noPayload } = documentedOnFailureRecord;
    expect(redriveDecisions('d', 0, deadLetter(JSON.stringify(noPayload), {}))).toEqual([
      { replay: false, reason: 'no dlq-reason header', now: expect.stringMatching(/^invalid event: /) },
    ]);
  });

  it('needs exactly one starting point, and a well-formed one', () => {
    expect(parseRedriveArgs(['--from-offset', '42'])).toEqual({ from: { offset: 42 }, apply: false, json: false });
    expect(parseRedriveArgs(['--from-time', '2026-12-01T06:00:00Z', '--apply'])).toEqual({ from: { time: new Date('2026-12-01T06:00:00Z') }, apply: true, json: false });
    expect(() => parseRedriveArgs([])).toThrow('give one of --from-offset N or --from-time');
    expect(() => parseRedriveArgs(['--from-offset', '1', '--from-time', '2026-12-01T00:00:00Z'])).toThrow('give one of');
    expect(() => parseRedriveArgs(['--from-offset', '1e3'])).toThrow('whole number');
    expect(() => parseRedriveArgs(['--from-time', 'yesterday'])).toThrow('ISO 8601');
    expect(() => parseRedriveArgs(['--from-offset', '1', '--replay'])).toThrow();
  });

  it('prints a dry run as what it would replay, by reason, and where to start next', () => {
    const text = formatReport({
      deadLetterTopic: 'ugc.events.dlq', eventsTopic: 'ugc.events', applied: false, endsTakenAt: '2026-12-01T06:00:00.000Z', partitions: [{ partition: 0, from: '0', to: '22' }], read: 22, duplicates: 0,
      replayable: [{ reason: 'Error: connect ECONNREFUSED', records: 20 }], replayed: 0,
      stillFailingByReason: [{ reason: 'value is not JSON', records: 2 }], stillFailing: [{ partition: 0, offset: '20', reason: 'r', now: 'value is not JSON' }],
    });
    expect(text).toContain('would replay 20 to ugc.events (dry run: nothing produced; add --apply)');
    expect(text).toContain('     20  Error: connect ECONNREFUSED');
    expect(text).toContain('partition 0 offset 20: value is not JSON');
    expect(text).toContain('next run from here: --from-offset 22');
  });
});

describe('erase statements', () => {
  it('quotes any user id as a ClickHouse string literal', () => {
    expect(sqlString("o'brien\\x")).toBe("'o\\'brien\\\\x'");
    const sql = eraseStatements('ugc', 'events', ["a'b", 'c']);
    expect(sql.delete).toBe("ALTER TABLE `ugc`.`events` DELETE WHERE user_id IN ('a\\'b', 'c') SETTINGS mutations_sync = 2");
    expect(sql.count).toBe("SELECT count() AS n FROM `ugc`.`events` WHERE user_id IN ('a\\'b', 'c')");
  });

  it('needs at least one non-empty --user', () => {
    expect(parseEraseArgs(['--user', 'a', '--user', 'b', '--dry-run'])).toEqual({ users: ['a', 'b'], dryRun: true, json: false });
    expect(() => parseEraseArgs([])).toThrow('--user ID');
    expect(() => parseEraseArgs(['--user', ''])).toThrow('--user ID');
  });
});
