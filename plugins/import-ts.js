/**
 * Imports one of this repo's TypeScript modules from a serverless plugin (plain JS): esbuild
 * bundles it, its relative imports included and npm packages left as imports, into an .mjs file
 * under node_modules/.cache/ (not .esbuild/, which `serverless package` deletes), which is imported
 * and removed. A bundled module's import.meta.url is the bundle's, so the modules loaded so must not
 * resolve files by it. Not tsx's tsImport: that registers module
 * hooks, after which every import() in the process makes a round trip to Node's hooks thread, and
 * in-process serverless offline import()s the handler on every invocation (about 5% of its CPU
 * under load, and latency on each request).
 */
import { rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const serviceRoot = fileURLToPath(new URL('..', import.meta.url));
let imports = 0;

/** `import(specifier)` of a .ts module, resolved against `parentUrl` as import() would. */
export async function importTs(specifier, parentUrl) {
  const entry = fileURLToPath(new URL(specifier, parentUrl));
  // A file of its own per call: test files start several serverless offline at once.
  const name = `${relative(serviceRoot, entry).replace(/[/\\]/g, '_').replace(/\.ts$/, '')}-${process.pid}-${++imports}.mjs`;
  // Inside the service folder, so the bundle's npm imports resolve from its node_modules.
  const outfile = join(serviceRoot, 'node_modules', '.cache', 'ugc-ingest-plugins', name);
  await build({
    entryPoints: [entry], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20',
    packages: 'external', sourcemap: 'inline', logLevel: 'silent',
  });
  try {
    return await import(pathToFileURL(outfile).href);
  } finally {
    await rm(outfile, { force: true });
  }
}
