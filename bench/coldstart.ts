import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile, type Plugin } from 'esbuild';
import { SignJWT } from 'jose';
import { fmt, median, type Row } from './stats.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
// Inside the repo, so the externals (@aws-sdk/*) resolve from node_modules as on the runtime.
const outDir = join(repoRoot, '.bench-coldstart');
const processes = 5;
const targets = { bundleBytes: 400 * 1024, initMs: 150 };
// The esbuild plugins serverless.yml's custom.esbuild uses.
const plugins = createRequire(import.meta.url)('../plugins/esbuild.cjs') as Plugin[];

/** What each function's first invocation does here: real work that needs no Kafka or ClickHouse. */
async function firstInvocation(name: string): Promise<{ env: Record<string, string>; event: unknown }> {
  const secret = 'coldstart-secret-of-sufficient-length';
  const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('cold-viewer').setExpirationTime('1h').sign(new TextEncoder().encode(secret));
  const env = {
    KAFKA_BROKERS: '127.0.0.1:9', CLICKHOUSE_URL: 'http://127.0.0.1:9', JWT_SECRET: secret,
    POWERTOOLS_LOG_LEVEL: 'SILENT', POWERTOOLS_METRICS_DISABLED: 'true',
  };
  const http = (routeKey: string, body?: string) => ({
    version: '2.0', routeKey, rawPath: routeKey.split(' ')[1], body, isBase64Encoded: false,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, queryStringParameters: {},
    pathParameters: {}, requestContext: { requestId: 'cold', http: { method: routeKey.split(' ')[0] } },
  });
  switch (name) {
    // Verifies the token, parses and validates a batch (one invalid event: answers 400 before Kafka).
    case 'ingest': return { env, event: http('POST /v1/events', JSON.stringify({ events: [{ type: 'film_rating', film_id: 'f', score: 99 }] })) };
    // Decodes an empty AWS Kafka batch (nothing to insert).
    case 'writer': return { env, event: { eventSource: 'aws:kafka', eventSourceArn: 'arn:aws:kafka:::cluster/x/1', bootstrapServers: '127.0.0.1:9', records: {} } };
    // Verifies the token and routes; unknown route answers 404 before ClickHouse.
    default: return { env, event: http('GET /v1/nothing') };
  }
}

const probe = `
const t0 = performance.now();
const mod = await import(process.argv[2]);
const t1 = performance.now();
const event = JSON.parse(process.argv[3]);
let status = null;
if (event && mod.handler) {
  const result = await mod.handler(event, { awsRequestId: 'cold', functionName: 'cold', getRemainingTimeInMillis: () => 10000 });
  status = result && typeof result === 'object' && 'statusCode' in result ? result.statusCode : 'ok';
}
const t2 = performance.now();
process.stdout.write(JSON.stringify({ importMs: t1 - t0, invokeMs: t2 - t1, status }) + '\\n');
process.exit(0);
`;

function runProbe(file: string, event: unknown, env: Record<string, string>): Promise<{ importMs: number; invokeMs: number; status: unknown }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(outDir, 'probe.mjs'), file, JSON.stringify(event ?? null)], { cwd: outDir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', () => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop() ?? '';
      try { resolve(JSON.parse(line)); } catch { reject(new Error(`probe of ${file} failed: ${err.slice(-2000) || out.slice(-2000)}`)); }
    });
  });
}

/** Bytes in the bundle per npm package (or "(product code)"), biggest first. */
function contributors(metafile: Metafile): { name: string; bytes: number }[] {
  const byPackage = new Map<string, number>();
  for (const output of Object.values(metafile.outputs)) {
    for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
      const match = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
      const name = match ? match[1]! : '(product code)';
      byPackage.set(name, (byPackage.get(name) ?? 0) + bytesInOutput);
    }
  }
  return [...byPackage].map(([name, bytes]) => ({ name, bytes })).sort((a, b) => b.bytes - a.bytes);
}

/**
 * Each function bundled as serverless.yml's custom.esbuild does (bundle, minify, esm, node20,
 * createRequire banner, @aws-sdk/* external, plugins/esbuild.cjs), then init = import + first invocation in fresh
 * node processes (median of 5), beside the import of an empty module in the same conditions.
 */
export async function benchColdStart(): Promise<{ rows: Row[]; json: Record<string, unknown> }> {
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'probe.mjs'), probe);
  await writeFile(join(outDir, 'empty.mjs'), 'export const handler = async () => ({ statusCode: 200 });\n');
  const rows: Row[] = [];
  const json: Record<string, unknown> = {};
  try {
    const emptyRuns = [];
    for (let i = 0; i < processes; i++) emptyRuns.push(await runProbe(join(outDir, 'empty.mjs'), null, {}));
    const emptyInit = median(emptyRuns.map((r) => r.importMs + r.invokeMs));
    for (const name of ['ingest', 'writer', 'reader']) {
      const entry = join(repoRoot, 'functions', name, 'handler.ts');
      const outfile = join(outDir, `${name}.mjs`);
      const result = await build({
        entryPoints: [entry], outfile, bundle: true, minify: true, sourcemap: true, target: 'node20', platform: 'node', format: 'esm',
        banner: { js: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);" },
        external: ['@aws-sdk/*'], plugins, metafile: true, logLevel: 'silent',
      });
      const bytes = (await stat(outfile)).size;
      const top = contributors(result.metafile).slice(0, 6);
      const { env, event } = await firstInvocation(name);
      const runs = [];
      for (let i = 0; i < processes; i++) runs.push(await runProbe(outfile, event, env));
      const importMs = median(runs.map((r) => r.importMs));
      const invokeMs = median(runs.map((r) => r.invokeMs));
      const initMs = median(runs.map((r) => r.importMs + r.invokeMs));
      rows.push({ benchmark: `${name} bundle (KB)`, measured: fmt(bytes / 1024), baseline: `top: ${top.slice(0, 3).map((t) => `${t.name} ${fmt(t.bytes / 1024)}`).join(', ')}`,
        ratio: fmt(bytes / targets.bundleBytes, 2), target: '≤ 400 KB', verdict: bytes <= targets.bundleBytes ? 'ok' : 'MISSED' });
      rows.push({ benchmark: `${name} init: import + first invocation (ms)`, measured: `${fmt(initMs)} (${fmt(importMs)} + ${fmt(invokeMs)})`,
        baseline: `empty module ${fmt(emptyInit, 1)}`, ratio: '', target: '≤ 150 ms', verdict: initMs <= targets.initMs ? 'ok' : 'MISSED' });
      json[name] = { bundle_bytes: bytes, top_contributors: top, import_ms: importMs, first_invocation_ms: invokeMs, init_ms: initMs,
        first_status: runs[0]?.status, empty_module_init_ms: emptyInit, processes };
    }
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
  return { rows, json: { coldstart: json } };
}
