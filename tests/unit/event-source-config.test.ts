import { logLevel } from 'kafkajs';
import { describe, expect, it, vi } from 'vitest';
import { resolveEventSourceSettings, type KafkaEventSourceConfig } from '../../localstack/event-source/config.ts';
import { ConfigError } from '../../shared/errors.ts';
import { eventSourceLogger, fromKafkajsLog } from '../../localstack/event-source/log.ts';

const base: KafkaEventSourceConfig = { brokers: ['a:1', 'b:2'], topic: 'ugc.events', consumerGroupId: 'g', kind: 'kafka', invoke: async () => undefined };

describe('event source settings', () => {
  it('applies AWS’s defaults: 100 records, 0.5 s window, 6 MB payload, retries until success', () => {
    expect(resolveEventSourceSettings(base)).toEqual({
      source: { kind: 'kafka', bootstrapServers: 'a:1,b:2' },
      batchSize: 100,
      windowMs: 500,
      maxBatchBytes: 6 * 1024 * 1024 - 64 * 1024,
      retryLimit: -1,
      bufferCapacity: 200,
      startingPosition: 'TRIM_HORIZON',
      joinTimeoutMs: 30_000,
    });
  });

  it('builds an msk source with its ARN, and caps infinite retries at 10 with a destination', () => {
    const settings = resolveEventSourceSettings({ ...base, kind: 'msk', eventSourceArn: 'arn:aws:kafka:x', bootstrapServers: 'b-1:9098', onFailure: { topic: 'dlq' } });
    expect(settings.source).toEqual({ kind: 'msk', eventSourceArn: 'arn:aws:kafka:x', bootstrapServers: 'b-1:9098' });
    expect(settings.retryLimit).toBe(10);
  });

  it('takes a batching window of 0 and never a negative one', () => {
    expect(resolveEventSourceSettings({ ...base, maximumBatchingWindowSeconds: 0 }).windowMs).toBe(0);
    expect(resolveEventSourceSettings({ ...base, maximumBatchingWindowSeconds: -3 }).windowMs).toBe(0);
  });

  it.each([
    [{ kind: 'msk' as const }, 'an msk event source needs eventSourceArn'],
    [{ brokers: [] }, 'no brokers given'],
    [{ batchSize: 0 }, 'batchSize must be a positive integer, got 0'],
    [{ batchSize: 1.5 }, 'batchSize must be a positive integer, got 1.5'],
    [{ maximumRetryAttempts: -2 }, 'maximumRetryAttempts must be an integer >= -1, got -2'],
    [{ startingPosition: 'AT_TIMESTAMP' as const }, 'AT_TIMESTAMP needs startingPositionTimestamp (Unix seconds)'],
    [{ onFailure: { topic: 'ugc.events' } }, 'the on-failure topic must differ from the source topic'],
  ])('refuses %j: %s', (change, message) => {
    expect(() => resolveEventSourceSettings({ ...base, ...change })).toThrow(new ConfigError(message));
  });
});

describe('event source logs', () => {
  it('writes one JSON line per entry at or above the level, with the keys the functions log', () => {
    const written: string[] = [];
    const capture = (chunk: string | Uint8Array): boolean => { written.push(String(chunk)); return true; };
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(capture);
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(capture);
    try {
      const log = eventSourceLogger('warn');
      log('info', 'quiet', {});
      log('warn', 'loud', { batchId: 'b1' });
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
    }
    const lines = written.join('').split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'WARN', message: 'loud', service: 'kafka-event-source', timestamp: expect.any(String), batchId: 'b1' });
  });

  it('turns a kafkajs entry into ours, without its timestamp and logger name', () => {
    const entry = { namespace: 'Consumer', level: logLevel.ERROR, label: 'ERROR', log: { message: 'Crash', timestamp: 'x', logger: 'kafkajs', groupId: 'g' } };
    expect(fromKafkajsLog(entry)).toEqual({ level: 'error', msg: 'kafkajs: Crash', fields: { kafkajs: { label: 'ERROR', groupId: 'g' } } });
    expect(fromKafkajsLog({ ...entry, level: logLevel.DEBUG }).level).toBe('debug');
    expect(fromKafkajsLog({ ...entry, level: logLevel.INFO }).level).toBe('info');
  });
});
