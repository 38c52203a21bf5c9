import { execFile, spawn } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { dirname, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOffline, type Offline } from '../../localstack/offline.ts';
import { signDevToken } from '../../localstack/dev-token.ts';
import { freePort } from '../setup/context.ts';
import { ownPipeline, type OwnPipeline } from '../setup/pipeline.ts';

// The API against its own document: Schemathesis (PyPI, pinned by scripts/install-schemathesis.sh)
// reads /v1/openapi.json from serverless offline and generates requests for every operation (its
// examples, boundary values, schema-valid and schema-violating parameters and bodies, stateful
// sequences), sends them over HTTP and checks every answer against the document: a documented status,
// content type, headers and body schema, no 5xx, invalid requests refused, valid ones not.
// tests/e2e/schemathesis.toml says which checks are tuned and why; contract_hooks.py puts the
// viewer's token where the document says. A failure prints Schemathesis's report: a curl for each.
//
// Part of `npm test`; `npm run contract` runs it alone (CONTRACT_SEED and CONTRACT_MAX_EXAMPLES as below).
const repoRoot = resolve(import.meta.dirname, '../..');
const secret = 'a-contract-secret-of-sufficient-length';
// CONTRACT_SEED replays a run; otherwise each run explores anew and prints its seed.
const seed = Number(process.env.CONTRACT_SEED ?? Math.floor(Math.random() * 2 ** 31));
const maxExamples = Number(process.env.CONTRACT_MAX_EXAMPLES ?? 300);
let offline: Offline;
let pipeline: OwnPipeline;
let st: string;

beforeAll(async () => {
  [st, pipeline] = await Promise.all([
    promisify(execFile)(resolve(repoRoot, 'scripts/install-schemathesis.sh'), [], { timeout: 300_000 }).then(({ stdout }) => stdout.trim()),
    ownPipeline('contract'),
  ]);
  offline = await startOffline({ env: { ...pipeline.env, JWT_SECRET: secret }, httpPort: await freePort(), lambdaPort: await freePort() });
}, 360_000);

afterAll(async () => {
  await offline?.stop();
  await pipeline?.drop();
});

/** Runs `st` to its end; its output whole, for the report. */
function runSchemathesis(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(st, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolveRun({ code, output }));
  });
}

// Every operation of the document (tests/e2e/openapi.test.ts holds it to serverless.yml's routes);
// Schemathesis also sends undeclared methods to each path (TRACE /v1/events), counted on their own.
const operations = ['GET /v1/docs', 'GET /v1/films/{film_id}/progress', 'GET /v1/health', 'GET /v1/progress', 'POST /v1/events', 'POST /v1/films/{film_id}/progress'];
// Per process: two runs in one checkout must not read each other's.
const eventsFile = resolve(repoRoot, `test-results/contract-${process.pid}.ndjson`);

interface OperationCounts { requests: number; negative: number; statuses: Map<number, number> }

/** Requests sent per operation, read from Schemathesis's event stream (one JSON event a line). */
async function requestsPerOperation(file: string): Promise<Map<string, OperationCounts>> {
  const counts = new Map<string, OperationCounts>();
  for await (const line of createInterface({ input: createReadStream(file) })) {
    const recorder = (JSON.parse(line) as { ScenarioFinished?: { recorder: ScenarioRecorder } }).ScenarioFinished?.recorder;
    for (const [id, interaction] of Object.entries(recorder?.interactions ?? {})) {
      const { method, path, meta } = recorder!.cases[id]!.value;
      const op = counts.get(`${method} ${path}`) ?? { requests: 0, negative: 0, statuses: new Map() };
      counts.set(`${method} ${path}`, op);
      op.requests++;
      if (meta?.generation?.mode === 'negative') op.negative++;
      const status = interaction.response?.status_code ?? 0;
      op.statuses.set(status, (op.statuses.get(status) ?? 0) + 1);
    }
  }
  return counts;
}
interface ScenarioRecorder {
  cases: Record<string, { value: { method: string; path: string; meta?: { generation?: { mode?: string } } } }>;
  interactions?: Record<string, { response?: { status_code: number } }>;
}

describe('the API against its OpenAPI document (Schemathesis)', () => {
  it('answers every generated request as the document says: a documented status, headers and body, never a 5xx', async () => {
    const token = await signDevToken('viewer-contract', { secret });
    await mkdir(dirname(eventsFile), { recursive: true });
    const { code, output } = await runSchemathesis([
      '--config-file', 'tests/e2e/schemathesis.toml', 'run', `${offline.url}/v1/openapi.json`,
      // One worker: on Python 3.11 below 3.11.8, two threads parsing Hypothesis's lambdas at once fail
      // with SystemError "AST constructor recursion depth mismatch" (CPython gh-106905).
      '--seed', String(seed), '--max-examples', String(maxExamples), '--workers', '1',
      '--report', 'ndjson', '--report-ndjson-path', eventsFile,
    ], { ...process.env, UGC_CONTRACT_TOKEN: token, PYTHONPATH: resolve(repoRoot, 'tests/e2e'), SCHEMATHESIS_HOOKS: 'contract_hooks', NO_COLOR: '1' });
    expect(existsSync(eventsFile), `Schemathesis wrote no event stream:\n${output}`).toBe(true);
    const sent = await requestsPerOperation(eventsFile);
    const total = [...sent.values()].reduce((sum, op) => sum + op.requests, 0);
    const undeclared = [...sent].filter(([operation]) => !operations.includes(operation)).map(([, op]) => op);
    const line = (name: string, op: OperationCounts) => `  ${name.padEnd(36)} ${String(op.requests).padStart(5)} requests (${op.negative} schema-violating), answered ${[...op.statuses].sort().map(([status, n]) => `${status}×${n}`).join(' ')}`;
    console.log([
      `[contract] seed ${seed} (CONTRACT_SEED=${seed} replays it), max ${maxExamples} examples an operation: ${total} requests`,
      ...operations.filter((operation) => sent.has(operation)).map((operation) => line(operation, sent.get(operation)!)),
      line('undeclared methods on the paths', undeclared.reduce((sum, op) => {
        for (const [status, n] of op.statuses) sum.statuses.set(status, (sum.statuses.get(status) ?? 0) + n);
        return { requests: sum.requests + op.requests, negative: sum.negative + op.negative, statuses: sum.statuses };
      }, { requests: 0, negative: 0, statuses: new Map<number, number>() })),
    ].join('\n'));
    expect(code, `Schemathesis found answers the document does not allow:\n${output}`).toBe(0);
    await rm(eventsFile); // kept only when a run failed, to read
    expect(output).toMatch(/Selected: 6\/6/);
    expect(operations.filter((operation) => !sent.has(operation)), 'operations no request was generated for').toEqual([]);
    // A run alone sends 2,500-4,500 requests; in a full suite Hypothesis stops some operations early
    // (1,711 in all, 103 for POST /v1/films/{film_id}/progress once). The floors say no operation with
    // inputs went unfuzzed, not how far the fuzzing went.
    expect(total).toBeGreaterThan(3 * maxExamples);
    for (const operation of operations.filter((op) => !/\/v1\/(docs|health)$/.test(op))) {
      expect(sent.get(operation)!.requests, `requests generated for ${operation}`).toBeGreaterThan(maxExamples / 10);
    }
  }, 600_000);
});
