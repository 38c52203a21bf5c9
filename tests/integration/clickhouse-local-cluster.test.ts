import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { ClickHouseClient } from '@clickhouse/client';
import type { Context, MSKEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeByNodeNote } from '../../clickhouse/cluster.ts';
import { startEmbeddedCluster, type EmbeddedCluster } from '../../localstack/clickhouse/embedded.ts';
import { buildKafkaEvent, type AwsKafkaRecord } from '../../localstack/event-source/aws-kafka-event.ts';
import { enrich, toKafkaMessage } from '../../functions/ingest/messages.ts';
import { createProgressReader } from '../../functions/reader/progress.ts';
import { createClickHouse } from '../../shared/clickhouse.ts';
import { clientEvent } from '../../shared/events.ts';
import { stackEnv, uniqueName } from '../setup/context.ts';

// The cluster form of the migrations, run for real as far as this engine allows: two embedded
// servers, one replica per shard, Distributed tables across them over the native protocol.
// ON CLUSTER and Replicated tables stay out of reach here (no DDL worker, no Keeper):
// clickhouse-cluster.test.ts parse-checks that part.
const cluster = 'ugc_cluster';
const database = uniqueName('cluster');
const viewers = 40;
const eventsPerViewer = 25;
let dataDir: string;
let embedded: EmbeddedCluster;
const clients: ClickHouseClient[] = [];

const clientOf = (url: string, db = database): ClickHouseClient => {
  const client = createClickHouse({ CLICKHOUSE_URL: url, CLICKHOUSE_USER: 'default', CLICKHOUSE_PASSWORD: '', CLICKHOUSE_DATABASE: db, CLICKHOUSE_REQUEST_TIMEOUT_MS: 30_000 });
  clients.push(client);
  return client;
};
const count = async (client: ClickHouseClient, sql: string) =>
  Number((await (await client.query({ query: sql, format: 'JSONEachRow' })).json<{ n: string }>())[0]?.n);

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ugc-local-cluster-'));
  embedded = await startEmbeddedCluster({ dataDir, shards: 2, name: cluster });
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  await embedded?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

/** One AWS-shaped batch: every viewer watches film-N for N = 0..eventsPerViewer-1, later positions later. */
function batch(): MSKEvent {
  const records: AwsKafkaRecord[] = [];
  for (let v = 0; v < viewers; v++) {
    for (let i = 0; i < eventsPerViewer; i++) {
      const event = clientEvent.parse({ type: 'film_progress', film_id: `film-${i % 5}`, position_s: 100 * i + v, duration_s: 6000, client_ts: new Date(Date.now() - 60_000 + i * 1000).toISOString() });
      const message = toKafkaMessage(enrich(event, { userId: `viewer-${v}`, requestId: 'cluster', receivedAt: new Date() }));
      const offset = records.length;
      records.push({ topic: 'ugc.events', partition: 0, offset, timestamp: Date.now(), timestampType: 'CREATE_TIME',
        key: Buffer.from(String(message.key)).toString('base64'), value: Buffer.from(String(message.value)).toString('base64'), headers: [] });
    }
  }
  return buildKafkaEvent({ kind: 'msk', eventSourceArn: 'arn:aws:kafka:eu-west-1:1:cluster/c/1', bootstrapServers: '127.0.0.1:9092' }, records) as MSKEvent;
}

describe('a local cluster of embedded servers (2 shards, one replica each)', () => {
  it('takes `npm run migrate` with CLICKHOUSE_CLUSTER: every statement on every node, each Replicated engine as its twin, said in its log line', async () => {
    const [first, second] = embedded.nodes.map((n) => n.url);
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'clickhouse/migrate.ts'], {
      cwd: resolve(import.meta.dirname, '../..'),
      env: { ...process.env, CLICKHOUSE_URL: first, CLICKHOUSE_DATABASE: database, CLICKHOUSE_CLUSTER: cluster, CLICKHOUSE_CLUSTER_NODES: `${first},${second}` },
    });
    const line = JSON.parse(stdout.trim().split('\n').at(-1)!) as { cluster: string; form: string; applied: string[] };
    expect(line).toMatchObject({ cluster, form: nodeByNodeNote });
    expect(line.applied.length).toBeGreaterThan(5);
    for (const node of embedded.nodes) {
      const tables = await (await clientOf(node.url).query({
        query: 'SELECT name, engine FROM system.tables WHERE database = {d:String}', query_params: { d: database }, format: 'JSONEachRow' })).json<{ name: string; engine: string }>();
      const engineOf = new Map(tables.map((t) => [t.name, t.engine]));
      expect(engineOf.get('events_local'), node.url).toBe('ReplacingMergeTree');
      expect(engineOf.get('events'), node.url).toBe('Distributed');
      expect(engineOf.get('film_progress_latest_local'), node.url).toBe('ReplacingMergeTree');
      expect([...engineOf.values()].filter((e) => e.startsWith('Replicated')), node.url).toEqual([]);
    }
  }, 120_000);

  it('takes the writer’s insert through the Distributed table: split across the shards by viewer, every row once, a redelivered batch adds none', async () => {
    Object.assign(process.env, {
      KAFKA_BROKERS: stackEnv().KAFKA_BROKERS ?? '127.0.0.1:9', CLICKHOUSE_URL: embedded.nodes[0]!.url, CLICKHOUSE_DATABASE: database, CLICKHOUSE_REQUEST_TIMEOUT_MS: '30000',
    });
    const { handler } = (await import('../../functions/writer/handler.ts')) as unknown as { handler: (e: MSKEvent, c: Context) => Promise<{ written: number }> };
    const context = { awsRequestId: 'cluster-test', getRemainingTimeInMillis: () => 60_000 } as unknown as Context;
    // Without merges, a duplicate row stays visible: only the insert's token can keep it out.
    for (const node of embedded.nodes) await clientOf(node.url).command({ query: 'SYSTEM STOP MERGES events_local' });
    const event = batch();
    expect((await handler(event, context)).written).toBe(viewers * eventsPerViewer);
    await handler(event, context); // redelivered: the same token on every shard

    const perShard = await Promise.all(embedded.nodes.map((node) => count(clientOf(node.url), 'SELECT count() AS n FROM events_local')));
    console.log(`[cluster] rows per shard: ${perShard.join(' / ')}`);
    for (const rows of perShard) expect(rows).toBeGreaterThan(0);
    expect(perShard.reduce((a, b) => a + b, 0)).toBe(viewers * eventsPerViewer);
    // Every viewer's rows on one shard: what the per-viewer views need.
    for (const node of embedded.nodes) {
      const split = await count(clientOf(node.url), `SELECT count() AS n FROM (SELECT user_id FROM events_local GROUP BY user_id HAVING count() != ${eventsPerViewer})`);
      expect(split).toBe(0);
    }
    for (const node of embedded.nodes) expect(await count(clientOf(node.url), 'SELECT count() AS n FROM events')).toBe(viewers * eventsPerViewer);
  }, 60_000);

  it('answers "continue watching" through the Distributed table from either node', async () => {
    for (const node of embedded.nodes) {
      const reader = createProgressReader(clientOf(node.url));
      for (const v of [0, 7, viewers - 1]) {
        const recent = await reader.recentProgress(`viewer-${v}`, 10);
        // Five films; each viewer's latest position in film-k comes from its last event i ≡ k (mod 5).
        expect(recent.map((p) => p.film_id).sort()).toEqual(['film-0', 'film-1', 'film-2', 'film-3', 'film-4']);
        const film4 = await reader.filmProgress(`viewer-${v}`, 'film-4');
        expect(film4?.position_s).toBe(100 * (eventsPerViewer - 1) + v);
      }
    }
  });
});
