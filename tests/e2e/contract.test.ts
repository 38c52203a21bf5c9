import { execFile, spawn } from 'node:child_process';
import { resolve } from 'node:path';
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
// Run with `npm run contract`, not yet part of `npm test`: about one run in ten, the fuzzing phase
// sends a batch in which one event violates its schema, and the server answers 202 with that event in
// `rejected` (each event is checked on its own: one bad event must not lose the others), while the
// document's EventBatch says every item is a ClientEvent. Allowing any item in the document instead
// makes a batch of only invalid events a valid request answered 400 no_valid_events. Which one gives
// (the document's batch, or the all-invalid answer) is open; until then this test would fail at random.
const repoRoot = resolve(import.meta.dirname, '../..');
const secret = 'a-contract-secret-of-sufficient-length';
// CONTRACT_SEED replays a run; otherwise each run explores anew and prints its seed.
const seed = Number(process.env.CONTRACT_SEED ?? Math.floor(Math.random() * 2 ** 31));
const maxExamples = Number(process.env.CONTRACT_MAX_EXAMPLES ?? 100);
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

describe('the API against its OpenAPI document (Schemathesis)', () => {
  it('answers every generated request as the document says: a documented status, headers and body, never a 5xx', async () => {
    const token = await signDevToken('viewer-contract', { secret });
    const { code, output } = await runSchemathesis([
      '--config-file', 'tests/e2e/schemathesis.toml', 'run', `${offline.url}/v1/openapi.json`,
      '--seed', String(seed), '--max-examples', String(maxExamples), '--workers', '2',
    ], { ...process.env, UGC_CONTRACT_TOKEN: token, PYTHONPATH: resolve(repoRoot, 'tests/e2e'), SCHEMATHESIS_HOOKS: 'contract_hooks', NO_COLOR: '1' });
    const generated = /(\d+) generated/.exec(output)?.[1];
    console.log(`[contract] seed ${seed} (CONTRACT_SEED=${seed} replays it), max ${maxExamples} examples an operation: ${generated ?? '?'} requests`);
    expect(code, `Schemathesis found answers the document does not allow:\n${output}`).toBe(0);
    expect(output).toMatch(/Selected: 6\/6/);
    expect(Number(generated)).toBeGreaterThan(1_000);
  }, 600_000);
});
