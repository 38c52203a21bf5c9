// Reads the pipeline once a second and keeps the last few minutes: the ingest's HTTP answers
// (from serverless offline, see http-answers.ts), the events topic's and the dead-letter topic's
// offsets and the writer group's committed offsets (Kafka's admin API), and the events table's
// rows and freshness (ClickHouse). The page and the status line are computed from these readings.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { ClickHouseClient } from '@clickhouse/client';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { parse } from 'yaml';
import { clickHouseEnv, createClickHouse } from '../../shared/clickhouse.ts';
import { loadConfig } from '../../shared/config.ts';
import { ConfigError } from '../../shared/errors.ts';
import { productTopics } from '../../shared/kafka-topics.ts';
import { answersOf, httpRoutes, listenForHttpAnswers, type HttpAnswersListener } from './http-answers.ts';
import { figuresOver, isIdle, statusLine, toSeries, type PipelineReading, type PipelineSeries } from './metrics.ts';

/** What one reading asks each source; a source that fails leaves its part out. */
export interface PipelineSources {
  ingestAnswers(): Record<string, number> | undefined;
  kafka(): Promise<Pick<PipelineReading, 'eventsTopic' | 'writerCommitted' | 'deadLetters'>>;
  /** Rows, and the freshness of rows inserted since the previous call. */
  clickhouse(): Promise<Pick<PipelineReading, 'rows' | 'freshnessMs'>>;
}

export interface CollectorOptions {
  sources: PipelineSources;
  /** How much the page shows. Default 300 s. */
  windowSeconds?: number;
  /** The status line and the page's "now" figures sum up this much. Default 5 s. */
  recentSeconds?: number;
  now?: () => number;
}

/** Keeps readings for the window and turns them into the page's series and the status line. */
export class PipelineCollector {
  readonly #sources: PipelineSources;
  readonly #readings: PipelineReading[] = [];
  readonly #windowSeconds: number;
  readonly #recentSeconds: number;
  readonly #now: () => number;

  constructor(options: CollectorOptions) {
    this.#sources = options.sources;
    this.#windowSeconds = options.windowSeconds ?? 300;
    this.#recentSeconds = options.recentSeconds ?? 5;
    this.#now = options.now ?? Date.now;
  }

  /** Takes one reading (each source at once; one that fails is a gap, not an error). */
  async read(): Promise<PipelineReading> {
    const [kafka, clickhouse] = await Promise.allSettled([this.#sources.kafka(), this.#sources.clickhouse()]);
    const reading: PipelineReading = {
      at: this.#now(),
      ingestAnswers: this.#sources.ingestAnswers(),
      ...(kafka.status === 'fulfilled' ? kafka.value : {}),
      ...(clickhouse.status === 'fulfilled' ? clickhouse.value : {}),
    };
    this.#readings.push(reading);
    const oldest = reading.at - (this.#windowSeconds + 1) * 1000;
    while (this.#readings.length > 0 && this.#readings[0]!.at < oldest) this.#readings.shift();
    return reading;
  }

  /** The page's data. */
  series(): PipelineSeries {
    return toSeries(this.#readings, this.#windowSeconds, this.#recentSeconds);
  }

  /** The status line for the last few seconds, or undefined when nothing moved. */
  status(): string | undefined {
    const figures = figuresOver(this.#readings, this.#recentSeconds);
    return figures && !isIdle(figures) ? statusLine(figures, this.#recentSeconds) : undefined;
  }
}

/** What the page needs from serverless.yml: the writer's consumer group, the ingest's routes that take events. */
export interface ServiceFacts { writerGroupId: string; ingestEventRoutes: string[] }

/** Reads {@link ServiceFacts} from serverless.yml, the one place they are declared, as its dev stage resolves them in `env`. */
export async function readServiceFacts(env: Record<string, string | undefined> = process.env, serverlessYml = new URL('../../serverless.yml', import.meta.url)): Promise<ServiceFacts> {
  type Fn = { events?: Record<string, { consumerGroupId?: unknown } | unknown>[] };
  type Params = Record<string, Record<string, unknown> | undefined>;
  const service = parse(await readFile(serverlessYml, 'utf8')) as { functions?: Record<string, Fn>; params?: Params };
  const writerEvents = (service.functions?.writer?.events ?? []) as { msk?: { consumerGroupId?: unknown }; kafka?: { consumerGroupId?: unknown } }[];
  const declared = writerEvents.map((e) => (e.msk ?? e.kafka)?.consumerGroupId).find((g) => typeof g === 'string');
  const writerGroupId = typeof declared === 'string' ? devValue(declared, service.params ?? {}, env, new URL('.', serverlessYml)) : undefined;
  if (writerGroupId === undefined) throw new ConfigError(`serverless.yml: the writer's msk event has no consumerGroupId the dev stage resolves (${String(declared)})`);
  // The ingest's POST routes take events; its GETs (health, docs) are not traffic.
  const ingestEventRoutes = httpRoutes(service.functions?.ingest ?? {}).filter((route) => route.startsWith('POST '));
  return { writerGroupId, ingestEventRoutes };
}

/**
 * A value as serverless resolves it in the dev stage, for the forms serverless.yml uses there:
 * `${param:name}` (params.dev, else params.default), `${file(./x.json):key}` and
 * `${env:NAME, 'default'}` or `${env:NAME, file(./x.json):key}`. Anything else with a variable in
 * it is undefined, not guessed.
 */
function devValue(value: string, params: Record<string, Record<string, unknown> | undefined>, env: Record<string, string | undefined>, serviceDir: URL): string | undefined {
  const param = /^\$\{param:(\w+)\}$/.exec(value);
  if (param) {
    const named = params.dev?.[param[1]!] ?? params.default?.[param[1]!];
    return typeof named === 'string' ? devValue(named, params, env, serviceDir) : undefined;
  }
  const fromFile = /^\$\{(file\([^)]+\):\w+)\}$/.exec(value);
  if (fromFile) return fileValue(fromFile[1]!, serviceDir);
  const fromEnv = /^\$\{env:(\w+), (?:'([^']*)'|(file\([^)]+\):\w+))\}$/.exec(value);
  // As serverless: the default only when the variable is unset (an empty one is its value).
  if (fromEnv) return env[fromEnv[1]!] ?? fromEnv[2] ?? fileValue(fromEnv[3]!, serviceDir);
  return value.includes('${') ? undefined : value;
}

/** `file(./x.json):key`: the key's value in that JSON file, if it is a string. */
function fileValue(source: string, serviceDir: URL): string | undefined {
  const [, path, key] = /^file\(([^)]+)\):(\w+)$/.exec(source) ?? [];
  const value: unknown = path && key ? (JSON.parse(readFileSync(new URL(path, serviceDir), 'utf8')) as Record<string, unknown>)[key] : undefined;
  return typeof value === 'string' ? value : undefined;
}

/** Offsets of the events topic, the writer group's commits on it, and the dead letters. */
export async function readKafka(admin: Admin, topics: { events: string; deadLetters: string }, groupId: string): Promise<Pick<PipelineReading, 'eventsTopic' | 'writerCommitted' | 'deadLetters'>> {
  const [events, committed, deadLetters] = await Promise.all([
    admin.fetchTopicOffsets(topics.events),
    admin.fetchOffsets({ groupId, topics: [topics.events] }),
    admin.fetchTopicOffsets(topics.deadLetters),
  ]);
  const writerCommitted: Record<number, number> = {};
  for (const { partition, offset } of committed[0]?.partitions ?? []) if (Number(offset) >= 0) writerCommitted[partition] = Number(offset);
  return {
    eventsTopic: events.map((p) => ({ partition: p.partition, low: Number(p.low), high: Number(p.high) })),
    writerCommitted,
    deadLetters: deadLetters.reduce((sum, p) => sum + Number(p.high), 0),
  };
}

/** At most this many freshness samples a second (a 500-event request makes 500 rows). */
const maxFreshnessSamples = 20_000;

/**
 * Rows in `events` and, for rows inserted since the last call, received_at → inserted_at: from the
 * ingest's clock when it took the event (just before its 202) to ClickHouse's when it took the row.
 * Rows are found by inserted_at after the newest one seen; an insert that commits after a later
 * one was seen is missed, which only thins the samples. Asks for freshness only when rows came.
 */
export function clickHouseReader(client: ClickHouseClient): () => Promise<Pick<PipelineReading, 'rows' | 'freshnessMs'>> {
  let newestMs: number | undefined;
  let lastRows: number | undefined;
  const select = async <T>(query: string, params: Record<string, unknown> = {}) =>
    (await (await client.query({ query, query_params: params, format: 'JSONEachRow' })).json<T>())[0]!;
  return async () => {
    const { rows } = await select<{ rows: string }>('SELECT count() AS rows FROM events');
    const count = Number(rows);
    if (newestMs === undefined) {
      // Freshness of what arrives from now on, not of the rows already stored.
      const { newest } = await select<{ newest: string }>('SELECT toUnixTimestamp64Milli(max(inserted_at)) AS newest FROM events');
      newestMs = Number(newest);
    } else if (count !== lastRows) {
      const found = await select<{ freshness: number[]; newest: string }>(
        `SELECT groupArray(${maxFreshnessSamples})(toInt64(dateDiff('millisecond', received_at, inserted_at))) AS freshness,
                toUnixTimestamp64Milli(max(inserted_at)) AS newest
         FROM events WHERE inserted_at > fromUnixTimestamp64Milli({since:Int64}, 'UTC')`,
        { since: newestMs },
      );
      lastRows = count;
      newestMs = Math.max(newestMs, Number(found.newest));
      return { rows: count, freshnessMs: found.freshness.map(Number) };
    }
    lastRows = count;
    return { rows: count, freshnessMs: [] };
  };
}

export interface PipelineView {
  series(): PipelineSeries;
}

export interface Pipeline {
  /** For serverless offline's environment: where it sends its HTTP answers. */
  readonly offlineEnv: Record<string, string>;
  readonly view: PipelineView;
  stop(): Promise<void>;
}

export interface StartPipelineOptions {
  /** The stack's environment (KAFKA_BROKERS, CLICKHOUSE_URL, CLICKHOUSE_DATABASE, topics). */
  env: Record<string, string | undefined>;
  /** Receives the status line every `statusEveryMs` while something moves. */
  print?: (line: string) => void;
  statusEveryMs?: number;
  everyMs?: number;
}

/** Starts reading the local pipeline once a second (`npm start`, the page's test). */
export async function startPipeline({ env, print, statusEveryMs = 5000, everyMs = 1000 }: StartPipelineOptions): Promise<Pipeline> {
  const [events, deadLetters] = productTopics(env).map((t) => t.name) as [string, string];
  const { writerGroupId, ingestEventRoutes } = await readServiceFacts(env);
  const kafka = new Kafka({ clientId: 'ugc-ingest-pipeline-view', brokers: env.KAFKA_BROKERS!.split(','), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  // Read as the functions read it (shared/clickhouse.ts), so the defaults are theirs.
  const clickhouse = createClickHouse(loadConfig(clickHouseEnv, { ...env, CLICKHOUSE_REQUEST_TIMEOUT_MS: '5000' }));
  const answers: HttpAnswersListener = await listenForHttpAnswers();
  let connected: Promise<void> | undefined;
  const collector = new PipelineCollector({
    sources: {
      ingestAnswers: () => { const counts = answers.latest(); return counts && answersOf(counts, ingestEventRoutes); },
      kafka: async () => {
        // Connects lazily and again after a failure (a broker restarted, the cluster still starting).
        connected ??= admin.connect().catch((error: unknown) => { connected = undefined; throw error; });
        await connected;
        return readKafka(admin, { events, deadLetters }, writerGroupId);
      },
      clickhouse: clickHouseReader(clickhouse),
    },
  });

  // One reading at a time: a slow one (a busy machine) skips a tick instead of piling up.
  let reading: Promise<unknown> | undefined;
  const readTimer = setInterval(() => {
    reading ??= collector.read().finally(() => { reading = undefined; });
  }, everyMs);
  const statusTimer = print
    ? setInterval(() => { const line = collector.status(); if (line) print(line); }, statusEveryMs)
    : undefined;
  readTimer.unref();
  statusTimer?.unref();
  return {
    offlineEnv: answers.env,
    view: collector,
    async stop() {
      clearInterval(readTimer);
      clearInterval(statusTimer);
      await reading;
      await Promise.allSettled([admin.disconnect(), clickhouse.close(), answers.close()]);
    },
  };
}
