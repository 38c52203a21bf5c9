import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';

// One place that knows where the test browser comes from and how it is started, for every
// browser test (demo, unload, pipeline page). In order: CHROMIUM_PATH; a system Chromium
// (CHROMIUM_SEARCH_PATHS, colon-separated, overrides the list: empty hides them all); else the
// Chromium shipped in the npm package @sparticuz/chromium (a devDependency, so `npm install`
// brings it on a machine with none), unpacked once into ~/.cache/ugc-ingest/.
const systemChromiums = (process.env.CHROMIUM_SEARCH_PATHS ?? '/usr/bin/chromium:/usr/bin/chromium-browser')
  .split(':').filter(Boolean);
const packageBin = fileURLToPath(new URL('../../node_modules/@sparticuz/chromium/bin/', import.meta.url));
// Unpacked per package version, so an upgrade of the package unpacks anew.
const packageVersion = existsSync(packageBin)
  ? (JSON.parse(readFileSync(join(packageBin, '..', 'package.json'), 'utf8')) as { version: string }).version
  : 'none';
const unpackedDir = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'ugc-ingest', `chromium-${packageVersion}`);

/** Where the test browser is (the npm one may not be unpacked yet: launchChromium() does that). */
export const chromiumPath = process.env.CHROMIUM_PATH
  ?? systemChromiums.find((path) => existsSync(path))
  ?? join(unpackedDir, 'chromium');
const fromPackage = chromiumPath === join(unpackedDir, 'chromium');

const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',

  // The npm build is a headless shell without a zygote helper binary.
  ...(fromPackage ? ['--no-zygote', '--use-gl=angle', '--use-angle=swiftshader'] : [])];

/** A headless Chromium; playwright gives it a new temporary profile of its own. */
export async function launchChromium(): Promise<Browser> {
  // A viewer's browser has a language; under LANG=C.UTF-8 (CI, containers) Chromium reports
  // navigator.language 'en-US@posix', which Intl refuses: uPlot then fails to load on /pipeline.
  const env = { ...process.env, LANG: 'en_US.UTF-8' };
  if (!fromPackage) return chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs, env });
  await unpackPackagedChromium();
  return chromium.launch({
    executablePath: chromiumPath, headless: true, args: chromiumArgs,
    env: {
      ...env,
      // Its own NSS/NSPR/expat (built for Amazon Linux 2023, older glibc than Debian's): a machine
      // without a Chromium of its own usually lacks them. And its fonts, so pages render text.
      LD_LIBRARY_PATH: [join(unpackedDir, 'al2023', 'lib'), process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
      FONTCONFIG_PATH: join(unpackedDir, 'fontconfig'),
    },
  });
}

/**
 * Unpacks @sparticuz/chromium's brotli files (binary, fonts, SwiftShader, the Amazon Linux libs)
 * into the cache, once: into a folder of its own, renamed into place when complete, so test
 * files launching at the same time never run a half-written binary.
 */
async function unpackPackagedChromium(): Promise<void> {
  if (existsSync(join(unpackedDir, 'chromium'))) return;
  if (!existsSync(packageBin)) {
    throw new Error(`no Chromium: none at ${systemChromiums.join(', ') || '(no system paths)'} and no ${packageBin}; run \`npm install\` (it brings @sparticuz/chromium) or set CHROMIUM_PATH`);
  }
  await mkdir(join(unpackedDir, '..'), { recursive: true });
  const staging = await mkdtemp(`${unpackedDir}.partial-`);
  try {
    // The package unpacks into os.tmpdir(); a child with TMPDIR set keeps it off /tmp and off
    // this process's environment.
    await runNode(staging, `
      import chromium, { inflate } from '@sparticuz/chromium';
      await chromium.executablePath(${JSON.stringify(packageBin)});
      await inflate(${JSON.stringify(join(packageBin, 'al2023.tar.br'))});`);
    await mkdir(join(staging, 'fontconfig'));
    await writeFile(join(staging, 'fontconfig', 'fonts.conf'), `<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig><dir>${join(unpackedDir, 'fonts')}</dir><cachedir>${join(unpackedDir, 'fontconfig', 'cache')}</cachedir></fontconfig>
`);
    await rename(staging, unpackedDir).catch((error: NodeJS.ErrnoException) => {
      // Another test file unpacked it first: use theirs.
      if (!existsSync(join(unpackedDir, 'chromium'))) throw error;
    });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

function runNode(tmpDir: string, code: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)), env: { ...process.env, TMPDIR: tmpDir }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`unpacking @sparticuz/chromium failed (${code}): ${stderr.trim()}`))));
  });
}
