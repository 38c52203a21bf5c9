import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { eventTypes, registryExamples } from '../shared/events.ts';
import { fmt, type Row } from './stats.ts';

// One MiB, the ingest's default MAX_BODY_BYTES: the bomb is as large as a body may be when sent.
const maxBodyBytes = 1_048_576;
const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/** 100 events as the SDK sends them: the registry's examples in turn, each with its event_id and client_ts. */
function sdkBatch(n: number): string {
  const examples = eventTypes.flatMap((type) => registryExamples(type));
  const events = Array.from({ length: n }, (_, i) => ({ ...examples[i % examples.length], event_id: randomUUID(), client_ts: new Date(Date.now() + i * 1000).toISOString() }));
  return JSON.stringify({ events });
}

/** gzip as the browser's CompressionStream does it (Node has the same global). */
async function compressionStream(body: string): Promise<number> {
  return (await new Response(new Blob([body]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer()).byteLength;
}

/** A gzip body (base64, as API Gateway hands it over) of `inflatedBytes` spaces, written to a file. */
async function writeBomb(inflatedBytes: number): Promise<string> {
  const chunk = Buffer.alloc(16 * 1024 * 1024, 32);
  const members: Buffer[] = [];
  for (let n = 0; n < inflatedBytes; n += chunk.length) members.push(gzipSync(chunk, { level: 9 }));
  const file = join(await mkdtemp(join(tmpdir(), 'ugc-bench-bomb-')), 'bomb.b64');
  await writeFile(file, Buffer.concat(members).toString('base64'));
  return file;
}

/**
 * Peak RSS (MiB) of a fresh Node process that reads the bomb and decodes it: through the
 * ingest's readJsonBody (capped at maxBodyBytes), inflated whole (what a capless parser pays),
 * or not at all (the process's own footprint). A process each, so each peak is its own.
 */
function peakRssMiB(mode: 'capped' | 'whole' | 'idle', bombFile: string): { peakMiB: number; answer: string; bombBytes: number } {
  const script = `
    import { readFileSync } from 'node:fs';
    import { gunzipSync } from 'node:zlib';
    import { readJsonBody } from './functions/ingest/parse.ts';
    const bomb = readFileSync(${JSON.stringify(bombFile)}, 'utf8');
    let answer = 'idle';
    if ('${mode}' === 'capped') {
      try { readJsonBody(bomb, true, 'application/json', { maxBodyBytes: ${maxBodyBytes}, maxEvents: 500 }, { contentEncoding: 'gzip' }); answer = 'parsed'; }
      catch (e) { answer = e.statusCode + ' ' + e.code; }
    } else if ('${mode}' === 'whole') answer = 'inflated ' + gunzipSync(Buffer.from(bomb, 'base64')).length;
    console.log(JSON.stringify({ peakKiB: process.resourceUsage().maxRSS, answer, bombBytes: Buffer.byteLength(bomb, 'base64') }));
  `;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8', maxBuffer: 1 << 20 });
  const { peakKiB, answer, bombBytes } = JSON.parse(out.trim().split('\n').at(-1)!) as { peakKiB: number; answer: string; bombBytes: number };
  return { peakMiB: peakKiB / 1024, answer, bombBytes };
}

/** Bytes on the wire per 100 events, plain vs gzip; and the memory a zip bomb costs the ingest vs inflating it whole. */
export async function benchGzip(): Promise<{ rows: Row[]; json: Record<string, unknown> }> {
  const body = sdkBatch(100);
  const plain = Buffer.byteLength(body);
  const gzip = await compressionStream(body);
  const zlibLevel6 = gzipSync(body).length;
  const one = sdkBatch(1);
  const onePlain = Buffer.byteLength(one);
  const oneGzip = await compressionStream(one);
  // 512 MiB of one byte: gzip squeezes it about 1000:1, so the bomb itself is about 0.5 MiB, a legal body.
  const inflated = 512 * 1024 * 1024;
  const bombFile = await writeBomb(inflated);
  const [capped, whole, idle] = (['capped', 'whole', 'idle'] as const).map((mode) => peakRssMiB(mode, bombFile));
  await rm(dirname(bombFile), { recursive: true, force: true });
  const over = (r: { peakMiB: number }) => r.peakMiB - idle!.peakMiB;
  const rows: Row[] = [
    { benchmark: 'SDK batch of 100 events on the wire, gzip (CompressionStream)', measured: `${fmt(gzip)} B`, baseline: `${fmt(plain)} B plain JSON`, ratio: `${fmt(gzip / plain, 3)}×`, target: 'smaller', verdict: gzip < plain ? 'ok' : 'MISSED' },
    { benchmark: 'SDK batch of 1 event on the wire, gzip', measured: `${fmt(oneGzip)} B`, baseline: `${fmt(onePlain)} B plain JSON`, ratio: `${fmt(oneGzip / onePlain, 3)}×`, target: 'info', verdict: '' },
    {
      benchmark: `zip bomb (${fmt(capped!.bombBytes / 1024)} KiB sent, 512 MiB inflated) at the ingest: peak RSS above an idle process, answer ${capped!.answer}`,
      measured: `${fmt(over(capped!), 1)} MiB`, baseline: `${fmt(over(whole!), 1)} MiB inflating it whole (idle process: ${fmt(idle!.peakMiB, 1)} MiB)`,
      ratio: `${fmt(over(capped!) / over(whole!), 4)}×`, target: `< 16 MiB (the ${maxBodyBytes / 1048576} MiB cap, base64 and zlib buffers)`,
      verdict: capped!.answer === '413 payload_too_large' && over(capped!) < 16 ? 'ok' : 'MISSED',
    },
  ];
  return {
    rows,
    json: { gzip: { per100Events: { plainBytes: plain, gzipBytes: gzip, zlibLevel6Bytes: zlibLevel6 }, perEvent: { plainBytes: onePlain, gzipBytes: oneGzip }, zipBomb: { inflatedBytes: inflated, capped, whole, idle } } },
  };
}
