import { readFileSync } from 'node:fs';
import type { IHeaders, KafkaMessage } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import {
  buildKafkaEvent,
  recordJsonBytes,
  toAwsHeaders,
  toAwsKafkaRecord,
} from '../../localstack/event-source/aws-kafka-event.ts';
import { eventSourceDeadLetterHeaders as h, toEventSourceDeadLetter } from '../../localstack/event-source/dead-letter.ts';

const awsSample = JSON.parse(readFileSync(new URL('../fixtures/aws-msk-event.json', import.meta.url), 'utf8')) as {
  eventSourceArn: string;
  bootstrapServers: string;
  records: Record<string, unknown[]>;
};

/** A kafkajs message as the consumer hands it over (batchContext is there at runtime only). */
function kafkajsMessage(fields: {
  key?: Buffer | null;
  value?: Buffer | null;
  timestamp?: string;
  offset?: string;
  headers?: IHeaders;
  timestampType?: number;
}): KafkaMessage {
  const { timestampType = 0, ...rest } = fields;
  const message: KafkaMessage = {
    key: null,
    value: null,
    timestamp: '1545084650987',
    attributes: 0,
    offset: '15',
    headers: {},
    ...rest,
  };
  return Object.assign(message, { batchContext: { timestampType } });
}

describe('kafkajs message → AWS Kafka record', () => {
  it('reproduces the record of the AWS documentation sample exactly', () => {
    const record = toAwsKafkaRecord(
      'mytopic',
      0,
      kafkajsMessage({
        key: Buffer.from('recordKey'),
        value: Buffer.from('Hello, this is a test.'),
        headers: { headerKey: Buffer.from('headerValue') },
      }),
    );
    const event = buildKafkaEvent(
      { kind: 'msk', eventSourceArn: awsSample.eventSourceArn, bootstrapServers: awsSample.bootstrapServers },
      [record],
    );
    // The sample's key is a placeholder, not canonical base64 (no byte string encodes to it).
    const expected = structuredClone(awsSample);
    (expected.records['mytopic-0']?.[0] as { key: string }).key = Buffer.from('recordKey').toString('base64');
    expect(event).toEqual(expected);
    // Same key order as AWS, so the JSON text matches too.
    expect(JSON.stringify(event)).toBe(JSON.stringify(expected));
  });

  it('omits the key of a record that has none and sends an empty value for a tombstone', () => {
    const record = toAwsKafkaRecord('t', 3, kafkajsMessage({ key: null, value: null }));
    expect('key' in record).toBe(false);
    expect(record.value).toBe('');
  });

  it('encodes binary key and value as base64 and numbers offset and timestamp', () => {
    const bytes = Buffer.from([0, 255, 1, 254]);
    const record = toAwsKafkaRecord('t', 1, kafkajsMessage({ key: bytes, value: bytes, offset: '9007199254740', timestamp: '1700000000123' }));
    expect(Buffer.from(record.key ?? '', 'base64')).toEqual(bytes);
    expect(Buffer.from(record.value, 'base64')).toEqual(bytes);
    expect(record.offset).toBe(9007199254740);
    expect(record.timestamp).toBe(1700000000123);
  });

  it('reports LOG_APPEND_TIME when the batch says so', () => {
    expect(toAwsKafkaRecord('t', 0, kafkajsMessage({ timestampType: 1 })).timestampType).toBe('LOG_APPEND_TIME');
    expect(toAwsKafkaRecord('t', 0, kafkajsMessage({ timestampType: 0 })).timestampType).toBe('CREATE_TIME');
  });

  it('turns headers into one-entry objects of byte arrays, one per value, repeated names in order', () => {
    expect(
      toAwsHeaders({
        a: Buffer.from('x'),
        b: [Buffer.from('1'), Buffer.from('2')],
        s: 'é',
      }),
    ).toEqual([{ a: [120] }, { b: [49] }, { b: [50] }, { s: [0xc3, 0xa9] }]);
    expect(toAwsHeaders(undefined)).toEqual([]);
  });

  it('gives a null header value an empty byte array', () => {
    const headers = { n: null } as unknown as KafkaMessage['headers'];
    expect(toAwsHeaders(headers)).toEqual([{ n: [] }]);
  });
});

describe('AWS Kafka event envelope', () => {
  const rec = (topic: string, partition: number, offset: number) =>
    toAwsKafkaRecord(topic, partition, kafkajsMessage({ offset: String(offset), value: Buffer.from('v') }));

  it('groups records by "topic-partition", keeping each partition in delivery order', () => {
    const event = buildKafkaEvent({ kind: 'kafka', bootstrapServers: 'a:1,b:2' }, [
      rec('ugc', 1, 5),
      rec('ugc', 0, 7),
      rec('ugc', 1, 6),
    ]);
    expect(Object.keys(event.records)).toEqual(['ugc-1', 'ugc-0']);
    expect(event.records['ugc-1']?.map((r) => r.offset)).toEqual([5, 6]);
    expect(event.records['ugc-0']?.map((r) => r.offset)).toEqual([7]);
  });

  it('has eventSource SelfManagedKafka and no eventSourceArn for a kafka event', () => {
    const event = buildKafkaEvent({ kind: 'kafka', bootstrapServers: 'a:1,b:2' }, [rec('t', 0, 0)]);
    expect(event.eventSource).toBe('SelfManagedKafka');
    expect('eventSourceArn' in event).toBe(false);
    expect(event.bootstrapServers).toBe('a:1,b:2');
  });

  it('measures a record as its JSON size plus a separator', () => {
    const record = rec('t', 0, 1);
    expect(recordJsonBytes(record)).toBe(JSON.stringify(record).length + 1);
  });
});

describe('on-failure (dead-letter) record', () => {
  it('keeps key, value and headers and adds where it came from and why it failed', () => {
    const message = kafkajsMessage({
      key: Buffer.from('user-1'),
      value: Buffer.from('{"a":1}'),
      offset: '42',
      timestamp: '1700000000000',
      headers: { trace: Buffer.from('abc') },
    });
    const dead = toEventSourceDeadLetter(
      { topic: 'ugc.events', partition: 2, message },
      {
        errorType: 'Error',
        errorMessage: 'insert failed',
        attempts: 4,
        consumerGroupId: 'g',
        functionName: 'svc-dev-writer',
        failedAt: new Date('2024-01-01T00:00:00Z'),
      },
    );
    expect(dead.key).toEqual(Buffer.from('user-1'));
    expect(dead.value).toEqual(Buffer.from('{"a":1}'));
    expect(dead.headers).toMatchObject({
      trace: Buffer.from('abc'),
      [h.reason]: 'Error: insert failed',
      [h.topic]: 'ugc.events',
      [h.partition]: '2',
      [h.offset]: '42',
      [h.timestamp]: '1700000000000',
      [h.source]: 'event-source-mapping',
      [h.attempts]: '4',
      [h.consumerGroup]: 'g',
      [h.functionName]: 'svc-dev-writer',
      [h.failedAt]: '2024-01-01T00:00:00.000Z',
    });
  });
});
