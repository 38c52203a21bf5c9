/**
 * Hot reload of `serverless offline` in its default mode (npm start's): an edit of a handler's
 * source is answered over HTTP without a restart. The edit goes to a copy of the service, so the
 * other test files (which build the same sources at the same time) never see it.
 */
import { randomUUID } from 'node:crypto';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOffline, type Offline } from '../../localstack/offline.ts';
import { signDevToken } from '../../localstack/dev-token.ts';
import { eventually, freePort } from '../setup/context.ts';
import { ownPipeline, type OwnPipeline } from '../setup/pipeline.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
// Inside the repo (node_modules resolves from its parents), under the git-ignored build folder.
const serviceCopy = join(repoRoot, '.esbuild', `reload-test-${process.pid}`);
const secret = 'a-reload-e2e-secret-of-sufficient-length';
const healthLine = "json(200, { status: 'ok', kafka: 'reachable' })";

let offline: Offline;
let pipeline: OwnPipeline;

beforeAll(async () => {
  await mkdir(serviceCopy, { recursive: true });
  // All of localstack/: serverless.yml's plugins live there too (event source, pipeline, API Gateway);
  // scripts/: localstack/ imports it (the topics' code).
  for (const part of ['serverless.yml', 'package.json', 'tsconfig.json', 'functions', 'shared', 'plugins', 'localstack', 'scripts']) {
    await cp(join(repoRoot, part), join(serviceCopy, part), { recursive: true });
  }
  pipeline = await ownPipeline('reload');
  offline = await startOffline({
    env: { ...pipeline.env, JWT_SECRET: secret },
    httpPort: await freePort(),
    lambdaPort: await freePort(),
    serviceDir: serviceCopy,
  });
}, 180_000);

afterAll(async () => {
  await offline?.stop();
  await pipeline?.drop();
  await rm(serviceCopy, { recursive: true, force: true });
});

async function health(): Promise<Record<string, unknown>> {
  const res = await fetch(`${offline.url}/v1/health`);
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

async function postEvent(eventId: string): Promise<number> {
  const res = await fetch(`${offline.url}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${await signDevToken('viewer-reload', { secret })}` },
    body: JSON.stringify({ type: 'film_progress', event_id: eventId, film_id: 'tt0111161', position_s: 60, duration_s: 8520 }),
  });
  await res.arrayBuffer();
  return res.status;
}

describe('serverless offline, default mode: hot reload', () => {
  it('an edit of the ingest handler is answered over HTTP within seconds, by the same serverless offline process, and events still flow to ClickHouse', async () => {
    expect(await health()).toEqual({ status: 'ok', kafka: 'reachable' });
    const pid = offline.process.pid;

    const marker = randomUUID();
    const handlerFile = join(serviceCopy, 'functions', 'ingest', 'handler.ts');
    const source = await readFile(handlerFile, 'utf8');
    expect(source, 'the line this test edits').toContain(healthLine);
    const editedAt = performance.now();
    // In place, as an editor saves.
    await writeFile(handlerFile, source.replace(healthLine, `json(200, { status: 'ok', kafka: 'reachable', build: '${marker}' })`));

    await eventually(async () => ((await health()).build === marker ? true : undefined), 60_000, 'the edited handler to answer');
    const reloadMs = Math.round(performance.now() - editedAt);
    console.log(JSON.stringify({ reloadMs }));
    expect(offline.process.pid).toBe(pid);
    expect(offline.process.exitCode).toBeNull();
    // Every answer from now on is the new code's.
    for (let i = 0; i < 5; i++) expect((await health()).build).toBe(marker);

    // The reloaded ingest still produces, and the writer still stores.
    const eventId = randomUUID();
    expect(await postEvent(eventId)).toBe(202);
    const row = await eventually(async () => {
      const result = await pipeline.db.client.query({
        query: 'SELECT user_id FROM events WHERE event_id = {id:UUID}', query_params: { id: eventId }, format: 'JSONEachRow',
      });
      return (await result.json<{ user_id: string }>())[0];
    }, 30_000, 'the event in ClickHouse');
    expect(row).toEqual({ user_id: 'viewer-reload' });
  }, 120_000);
});
