import { describe, expect, it } from 'vitest';
import { PipelineCollector, readServiceFacts, type PipelineSources } from '../../localstack/pipeline/collector.ts';
import { answersOf, countAnswer, parseAnswerCounts, routeMatchers, routeOf, type AnswerCounts } from '../../localstack/pipeline/http-answers.ts';
import {
  answersByClass, counterRate, figuresBetween, figuresOver, isIdle, partitionLag, statusLine, toSeries, type PipelineReading,
} from '../../localstack/pipeline/metrics.ts';

const topic = (highs: number[], low = 0) => highs.map((high, partition) => ({ partition, low, high }));

describe('pipeline page figures', () => {
  it('a rate is the counter\'s growth per second; unknown when a side is missing; a counter that went down is 0, not negative', () => {
    expect(counterRate(100, 350, 2.5)).toBe(100);
    expect(counterRate(undefined, 5, 1)).toBeNull();
    expect(counterRate(5, undefined, 1)).toBeNull();
    expect(counterRate(5, 9, 0)).toBeNull();
    expect(counterRate(500, 498, 1)).toBe(0); // two duplicate rows merged away
  });

  it('classes answers: 202 accepted, any 4xx the client\'s, 503 unavailable, the rest other', () => {
    expect(answersByClass({ 202: 40, 400: 1, 401: 2, 413: 1, 429: 3, 503: 5, 500: 1, 200: 9 }))
      .toEqual({ accepted: 40, clientError: 7, unavailable: 5, other: 10 });
  });

  it('lag per partition is end offset minus committed offset; a partition never committed counts from its first offset', () => {
    const lag = partitionLag([{ partition: 0, low: 0, high: 120 }, { partition: 1, low: 40, high: 90 }, { partition: 2, low: 0, high: 7 }], { 0: 100, 2: 7 });
    expect([...lag]).toEqual([[0, 20], [1, 50], [2, 0]]);
    // Committed below what retention kept: only what is still there waits.
    expect(partitionLag([{ partition: 0, low: 50, high: 60 }], { 0: 10 }).get(0)).toBe(10);
  });

  it('between two readings: answers/s by class, events/s over all partitions, rows/s, dead letters/s, lag at the later one, freshness percentiles', () => {
    const before: PipelineReading = { at: 10_000, ingestAnswers: { 202: 10, 401: 1 }, eventsTopic: topic([10, 20]), writerCommitted: { 0: 10, 1: 20 }, deadLetters: 3, rows: 30 };
    const freshnessMs = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100 ms
    const after: PipelineReading = {
      at: 12_000, ingestAnswers: { 202: 50, 401: 5, 503: 2 }, eventsTopic: topic([40, 50]), writerCommitted: { 0: 35, 1: 50 }, deadLetters: 5, rows: 80, freshnessMs,
    };
    const f = figuresBetween(before, after);
    expect(f).toMatchObject({
      t: 12, acceptedPerS: 20, clientErrorsPerS: 2, unavailablePerS: 1, otherAnswersPerS: 0,
      eventsPerS: 30, lagTotal: 5, rowsPerS: 25, deadLettersPerS: 1, freshnessP50Ms: 50, freshnessP99Ms: 99,
    });
    expect([...f.lag!]).toEqual([[0, 5], [1, 0]]);
  });

  it('no answer reported yet is 0 req/s; a source that did not answer is a gap (null), not 0', () => {
    const f = figuresBetween({ at: 0 }, { at: 1000, rows: 5 });
    expect(f.acceptedPerS).toBe(0);
    expect(f.eventsPerS).toBeNull();
    expect(f.lag).toBeNull();
    expect(f.rowsPerS).toBeNull();
    expect(f.freshnessP50Ms).toBeNull();
  });

  it('the last few seconds: from the newest reading that old to the last, with every sample in between', () => {
    const readings: PipelineReading[] = [0, 1, 2, 3, 4, 5, 6].map((s) => ({ at: s * 1000, rows: s * 10, freshnessMs: s === 0 ? [9999] : [s * 100] }));
    const f = figuresOver(readings, 5)!;
    expect(f.rowsPerS).toBe(10); // (60 - 10) / 5 s
    expect(f.freshnessP50Ms).toBe(400); // samples of seconds 2..6; second 1's belong before the window
    expect(f.freshnessP99Ms).toBe(600);
    expect(figuresOver(readings.slice(0, 1), 5)).toBeUndefined();
    // Fewer seconds kept than asked: from the oldest reading.
    expect(figuresOver(readings.slice(0, 3), 5)!.rowsPerS).toBe(10);
  });

  it('idle means nothing moved and nothing waits; a stuck writer (lag, no rows) is not idle', () => {
    const still: PipelineReading = { at: 0, ingestAnswers: { 202: 5 }, eventsTopic: topic([5]), writerCommitted: { 0: 5 }, rows: 5, deadLetters: 0 };
    expect(isIdle(figuresBetween(still, { ...still, at: 5000 }))).toBe(true);
    expect(isIdle(figuresBetween(still, { ...still, at: 5000, writerCommitted: { 0: 3 } }))).toBe(false);
    expect(isIdle(figuresBetween(still, { ...still, at: 5000, ingestAnswers: { 202: 5, 400: 1 } }))).toBe(false);
  });

  it('the status line names every stage\'s figure', () => {
    const f = figuresBetween(
      { at: 0, ingestAnswers: { 202: 0 }, eventsTopic: topic([0]), writerCommitted: { 0: 0 }, rows: 0, deadLetters: 0 },
      { at: 5000, ingestAnswers: { 202: 200, 400: 10, 503: 5 }, eventsTopic: topic([200]), writerCommitted: { 0: 188 }, rows: 190, deadLetters: 1, freshnessMs: [420, 1500] },
    );
    expect(statusLine(f, 5)).toBe(
      'pipeline (last 5 s): ingest 43 req/s (202 40, 4xx 2, 503 1) | kafka 40 events/s | writer lag 12'
      + ' | clickhouse 38 rows/s | dead letters 0.2/s | freshness p50 420 ms, p99 1.5 s',
    );
  });

  it('the page\'s series: one point per pair of readings, a lag column per partition, and the last seconds summed up', () => {
    const readings: PipelineReading[] = [
      { at: 1000, eventsTopic: topic([0, 0]), writerCommitted: {} },
      { at: 2000, eventsTopic: topic([4, 2]), writerCommitted: { 0: 1 } },
      { at: 3000, eventsTopic: topic([6, 2]), writerCommitted: { 0: 6, 1: 2 } },
    ];
    const series = toSeries(readings, 300, 5);
    expect(series.t).toEqual([2, 3]);
    expect(series.partitions).toEqual([0, 1]);
    expect(series.eventsPerS).toEqual([6, 2]);
    expect(series.lag).toEqual([[3, 0], [2, 0]]);
    expect(series.lagTotal).toEqual([5, 0]);
    expect(series.recent).toMatchObject({ eventsPerS: 4, lagTotal: 0, lag: { 0: 0, 1: 0 } });
    expect(JSON.parse(JSON.stringify(series))).toEqual(series); // what the page receives
  });
});

describe('pipeline collector (fake sources)', () => {
  it('keeps the window\'s readings, turns a failed source into a gap, and prints a status line only while something moves', async () => {
    let now = 0;
    let rows = 0;
    let events = 0;
    let kafkaDown = false;
    const sources: PipelineSources = {
      ingestAnswers: () => ({ 202: events }),
      kafka: async () => {
        if (kafkaDown) throw new Error('no broker');
        return { eventsTopic: topic([events]), writerCommitted: { 0: rows }, deadLetters: 0 };
      },
      clickhouse: async () => ({ rows, freshnessMs: [] }),
    };
    const collector = new PipelineCollector({ sources, windowSeconds: 10, recentSeconds: 3, now: () => now });
    const tick = async (add: number) => { events += add; rows += add; await collector.read(); now += 1000; };
    for (let i = 0; i < 5; i++) await tick(0);
    expect(collector.status()).toBeUndefined();
    for (let i = 0; i < 3; i++) await tick(30);
    expect(collector.status()).toMatch(/^pipeline \(last 3 s\): ingest 30 req\/s \(202 30, 4xx 0, 503 0\) \| kafka 30 events\/s \| writer lag 0 \| clickhouse 30 rows\/s/);
    kafkaDown = true;
    await tick(0);
    const series = collector.series();
    expect(series.eventsPerS.at(-1)).toBeNull();
    expect(series.rowsPerS.at(-1)).toBe(0);
    for (let i = 0; i < 20; i++) await tick(0);
    // 10 s of points (11 readings), not everything ever read.
    expect(collector.series().t.length).toBeLessThanOrEqual(11);
  });
});

describe('HTTP answers counted in serverless offline', () => {
  const matchers = routeMatchers({
    ingest: { events: [{ httpApi: 'POST /v1/events' }, { httpApi: 'POST /v1/films/{film_id}/progress' }, { httpApi: 'GET /v1/health' }] },
    reader: { events: [{ httpApi: { method: 'get', path: '/v1/films/{film_id}/progress' } }, { httpApi: 'GET /v1/progress' }] },
    writer: { events: [{ msk: { topic: 'ugc.events' } }] },
  });

  it('finds the route from the method and path, as API Gateway routes them', () => {
    const route = (method: string, url: string) => routeOf(matchers, method, url)?.routeKey;
    expect(route('POST', '/v1/events')).toBe('POST /v1/events');
    expect(route('POST', '/v1/films/tt0111161/progress')).toBe('POST /v1/films/{film_id}/progress');
    expect(route('GET', '/v1/films/tt0111161/progress')).toBe('GET /v1/films/{film_id}/progress');
    expect(route('GET', '/v1/progress?limit=5')).toBe('GET /v1/progress');
    expect(route('OPTIONS', '/v1/events')).toBeUndefined(); // a CORS preflight
    expect(route('POST', '/v1/films/a/b/progress')).toBeUndefined();
    expect(route('POST', '/2015-03-31/functions/writer/invocations')).toBeUndefined(); // the Lambda API
  });

  it('counts per route and status, adds up the routes asked for, and reads back only well-formed datagrams', () => {
    const counts: AnswerCounts = {};
    for (const status of [202, 202, 401, 503]) countAnswer(counts, 'POST /v1/events', status);
    countAnswer(counts, 'POST /v1/films/{film_id}/progress', 202);
    countAnswer(counts, 'GET /v1/health', 200);
    expect(counts).toEqual({ 'POST /v1/events': { 202: 2, 401: 1, 503: 1 }, 'POST /v1/films/{film_id}/progress': { 202: 1 }, 'GET /v1/health': { 200: 1 } });
    expect(answersOf(counts, ['POST /v1/events', 'POST /v1/films/{film_id}/progress'])).toEqual({ 202: 3, 401: 1, 503: 1 });
    expect(parseAnswerCounts(JSON.stringify({ answers: counts }))).toEqual(counts);
    expect(parseAnswerCounts('not json')).toBeUndefined();
    expect(parseAnswerCounts('{"answers":{"POST /v1/events":{"202":-1}}}')).toBeUndefined();
    expect(parseAnswerCounts('{"other":1}')).toBeUndefined();
  });

  it('serverless.yml gives the writer\'s consumer group and the ingest\'s routes that take events (not its health check)', async () => {
    expect(await readServiceFacts({})).toEqual({
      writerGroupId: 'ugc-ingest-writer',
      ingestEventRoutes: ['POST /v1/events', 'POST /v1/films/{film_id}/progress'],
    });
  });

  it('reads the writer\'s group as the dev stage resolves it: WRITER_CONSUMER_GROUP when set', async () => {
    expect((await readServiceFacts({ WRITER_CONSUMER_GROUP: 'writer-of-one-test' })).writerGroupId).toBe('writer-of-one-test');
  });
});
