// The pipeline page's figures, computed from what the collector reads each second: counters and
// offsets at two moments become rates, offsets become lag, samples become percentiles. Pure.

/** The nearest-rank percentile `p` (0-100) of the samples; NaN for none. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Kafka offsets of one partition: the first offset still held and the next one to be written. */
export interface PartitionOffsets { partition: number; low: number; high: number }

/** What the collector read at one moment; a part is undefined when its source did not answer. */
export interface PipelineReading {
  /** Milliseconds since the epoch. */
  at: number;
  /** The ingest's HTTP answers by status code, counted since serverless offline started. */
  ingestAnswers?: Readonly<Record<string, number>>;
  /** Offsets of the events topic, per partition. */
  eventsTopic?: readonly PartitionOffsets[];
  /** The writer group's committed offset per partition; a partition it never committed is absent. */
  writerCommitted?: Readonly<Record<number, number>>;
  /** Records ever written to the dead-letter topic (the sum of its partitions' end offsets). */
  deadLetters?: number;
  /** Rows in the events table. */
  rows?: number;
  /** Rows inserted since the previous reading: milliseconds from received_at to inserted_at. */
  freshnessMs?: readonly number[];
}

/** What an ingest answer means for the pipeline. */
export type AnswerClass = 'accepted' | 'clientError' | 'unavailable' | 'other';

/** 202 = durable in Kafka; 4xx = the client's fault; 503 = Kafka not reachable (retry); anything else. */
export function answerClass(status: number): AnswerClass {
  if (status === 202) return 'accepted';
  if (status >= 400 && status < 500) return 'clientError';
  if (status === 503) return 'unavailable';
  return 'other';
}

/** Answers by status code → answers by class. */
export function answersByClass(byStatus: Readonly<Record<string, number>>): Record<AnswerClass, number> {
  const sums: Record<AnswerClass, number> = { accepted: 0, clientError: 0, unavailable: 0, other: 0 };
  for (const [status, count] of Object.entries(byStatus)) sums[answerClass(Number(status))] += count;
  return sums;
}

/**
 * Per second, between two readings of a counter. A counter that went down (rows merged away,
 * a restarted process) counts as no progress rather than a negative rate.
 */
export function counterRate(before: number | undefined, after: number | undefined, seconds: number): number | null {
  if (before === undefined || after === undefined || seconds <= 0) return null;
  return Math.max(0, after - before) / seconds;
}

/**
 * Records of each partition the group has not committed yet: end offset minus committed offset.
 * A partition it never committed starts at its first offset (TRIM_HORIZON, the writer's setting).
 */
export function partitionLag(topic: readonly PartitionOffsets[], committed: Readonly<Record<number, number>>): Map<number, number> {
  const lag = new Map<number, number>();
  for (const { partition, low, high } of topic) {
    const from = committed[partition] ?? low;
    lag.set(partition, Math.max(0, high - Math.max(from, low)));
  }
  return lag;
}

const sumOffsets = (topic: readonly PartitionOffsets[] | undefined) => topic?.reduce((sum, p) => sum + p.high, 0);

/** The figures between two readings (a chart point, or the last few seconds for the status line). */
export interface PipelineFigures {
  /** Seconds since the epoch, of the later reading. */
  t: number;
  acceptedPerS: number | null;
  clientErrorsPerS: number | null;
  unavailablePerS: number | null;
  otherAnswersPerS: number | null;
  eventsPerS: number | null;
  /** Per partition, at the later reading. */
  lag: Map<number, number> | null;
  lagTotal: number | null;
  rowsPerS: number | null;
  deadLettersPerS: number | null;
  freshnessP50Ms: number | null;
  freshnessP99Ms: number | null;
}

/**
 * Rates from `before` to `after`, lag at `after`, and freshness percentiles of the rows inserted
 * in between (`freshnessMs`: every reading's samples after `before`, up to and including `after`).
 */
export function figuresBetween(before: PipelineReading, after: PipelineReading, freshnessMs: readonly number[] = after.freshnessMs ?? []): PipelineFigures {
  const seconds = (after.at - before.at) / 1000;
  const answers = (r: PipelineReading) => (r.ingestAnswers ? answersByClass(r.ingestAnswers) : undefined);
  const [a, b] = [answers(before), answers(after)];
  const lag = after.eventsTopic && after.writerCommitted ? partitionLag(after.eventsTopic, after.writerCommitted) : null;
  // Until serverless offline reports its first answer there were none: 0/s, not unknown.
  const answerRate = (key: AnswerClass) => counterRate(a?.[key] ?? 0, b?.[key] ?? 0, seconds);
  return {
    t: after.at / 1000,
    acceptedPerS: answerRate('accepted'),
    clientErrorsPerS: answerRate('clientError'),
    unavailablePerS: answerRate('unavailable'),
    otherAnswersPerS: answerRate('other'),
    eventsPerS: counterRate(sumOffsets(before.eventsTopic), sumOffsets(after.eventsTopic), seconds),
    lag,
    lagTotal: lag ? [...lag.values()].reduce((sum, n) => sum + n, 0) : null,
    rowsPerS: counterRate(before.rows, after.rows, seconds),
    deadLettersPerS: counterRate(before.deadLetters, after.deadLetters, seconds),
    freshnessP50Ms: freshnessMs.length > 0 ? percentile([...freshnessMs], 50) : null,
    freshnessP99Ms: freshnessMs.length > 0 ? percentile([...freshnessMs], 99) : null,
  };
}

/** The figures over the last `seconds` of readings (oldest first), or undefined with fewer than two. */
export function figuresOver(readings: readonly PipelineReading[], seconds: number): PipelineFigures | undefined {
  const last = readings.at(-1);
  if (!last || readings.length < 2) return undefined;
  // The newest reading at least `seconds` old (else the oldest): the window starts there.
  let first = 0;
  for (let i = readings.length - 2; i >= 0; i--) {
    first = i;
    if (last.at - readings[i]!.at >= seconds * 1000) break;
  }
  const freshness = readings.slice(first + 1).flatMap((r) => r.freshnessMs ?? []);
  return figuresBetween(readings[first]!, last, freshness);
}

/** Nothing moved: no answers, no events, no rows, no dead letters, nothing waiting for the writer. */
export function isIdle(f: PipelineFigures): boolean {
  const moving = [f.acceptedPerS, f.clientErrorsPerS, f.unavailablePerS, f.otherAnswersPerS, f.eventsPerS, f.rowsPerS, f.deadLettersPerS, f.lagTotal];
  return moving.every((value) => !value);
}

/** The series the page draws: one column per figure, aligned on `t` (uPlot's data layout). */
export interface PipelineSeries {
  windowSeconds: number;
  partitions: number[];
  t: number[];
  acceptedPerS: (number | null)[];
  clientErrorsPerS: (number | null)[];
  unavailablePerS: (number | null)[];
  otherAnswersPerS: (number | null)[];
  eventsPerS: (number | null)[];
  /** One column per partition, in `partitions` order. */
  lag: (number | null)[][];
  lagTotal: (number | null)[];
  rowsPerS: (number | null)[];
  deadLettersPerS: (number | null)[];
  freshnessP50Ms: (number | null)[];
  freshnessP99Ms: (number | null)[];
  /** The last few seconds, as the status line prints them. */
  recent: Omit<PipelineFigures, 'lag'> & { lag: Record<number, number> | null } | null;
}

/** Each pair of consecutive readings is one point; `recentSeconds` sums up the end. */
export function toSeries(readings: readonly PipelineReading[], windowSeconds: number, recentSeconds: number): PipelineSeries {
  const points = readings.slice(1).map((r, i) => figuresBetween(readings[i]!, r));
  const partitions = [...new Set(points.flatMap((p) => [...(p.lag?.keys() ?? [])]))].sort((x, y) => x - y);
  const column = <K extends keyof PipelineFigures>(key: K) => points.map((p) => p[key] as PipelineFigures[K]);
  const recent = figuresOver(readings, recentSeconds);
  return {
    windowSeconds,
    partitions,
    t: points.map((p) => p.t),
    acceptedPerS: column('acceptedPerS'),
    clientErrorsPerS: column('clientErrorsPerS'),
    unavailablePerS: column('unavailablePerS'),
    otherAnswersPerS: column('otherAnswersPerS'),
    eventsPerS: column('eventsPerS'),
    lag: partitions.map((partition) => points.map((p) => p.lag?.get(partition) ?? null)),
    lagTotal: column('lagTotal'),
    rowsPerS: column('rowsPerS'),
    deadLettersPerS: column('deadLettersPerS'),
    freshnessP50Ms: column('freshnessP50Ms'),
    freshnessP99Ms: column('freshnessP99Ms'),
    recent: recent ? { ...recent, lag: recent.lag ? Object.fromEntries(recent.lag) : null } : null,
  };
}

const rate = (value: number | null) => (value === null ? '?' : value >= 10 ? value.toFixed(0) : value.toFixed(1).replace(/\.0$/, ''));
const duration = (ms: number | null) => (ms === null ? '-' : ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);

/** One line for `npm start`'s output: what flowed through each stage over the last few seconds. */
export function statusLine(f: PipelineFigures, seconds: number): string {
  const ingest = [f.acceptedPerS, f.clientErrorsPerS, f.unavailablePerS, f.otherAnswersPerS].reduce<number | null>((sum, v) => (v === null || sum === null ? null : sum + v), 0);
  const other = f.otherAnswersPerS ? `, other ${rate(f.otherAnswersPerS)}` : '';
  return `pipeline (last ${seconds} s): ingest ${rate(ingest)} req/s (202 ${rate(f.acceptedPerS)}, 4xx ${rate(f.clientErrorsPerS)}, 503 ${rate(f.unavailablePerS)}${other})`
    + ` | kafka ${rate(f.eventsPerS)} events/s | writer lag ${f.lagTotal ?? '?'}`
    + ` | clickhouse ${rate(f.rowsPerS)} rows/s | dead letters ${rate(f.deadLettersPerS)}/s`
    + ` | freshness p50 ${duration(f.freshnessP50Ms)}, p99 ${duration(f.freshnessP99Ms)}`;
}
