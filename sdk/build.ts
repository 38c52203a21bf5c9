// Bundles the browser SDK (one ESM file, minified) and measures its gzipped size.
// `node --import tsx sdk/build.ts` writes dist/sdk/ugc.min.js.
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

export const sdkEntry = fileURLToPath(new URL('./src/index.ts', import.meta.url));
/** The size budget the SDK must stay under, gzipped. */
export const sdkGzipBudget = 5 * 1024;

export interface SdkBundle { code: string; bytes: number; gzipBytes: number }

/** The SDK as browsers load it: ES2020, ESM, minified, no runtime dependencies. */
export async function buildSdk({ minify = true }: { minify?: boolean } = {}): Promise<SdkBundle> {
  const result = await build({
    entryPoints: [sdkEntry], bundle: true, format: 'esm', target: 'es2020', platform: 'browser',
    minify, write: false, legalComments: 'none', logLevel: 'silent',
  });
  const code = result.outputFiles[0]!.text;
  return { code, bytes: Buffer.byteLength(code), gzipBytes: gzipSync(code, { level: 9 }).length };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const bundle = await buildSdk();
  const out = fileURLToPath(new URL('../dist/sdk/', import.meta.url));
  await mkdir(out, { recursive: true });
  await writeFile(`${out}ugc.min.js`, bundle.code);
  console.log(JSON.stringify({ file: `${out}ugc.min.js`, bytes: bundle.bytes, gzipBytes: bundle.gzipBytes, budget: sdkGzipBudget }));
}
