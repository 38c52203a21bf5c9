import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

// The rules live in .dependency-cruiser.cjs (dependency-cruiser reads every import, TypeScript and JS).
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const depcruise = fileURLToPath(new URL('../../node_modules/dependency-cruiser/bin/dependency-cruise.mjs', import.meta.url));
const folders = ['shared', 'functions', 'sdk', 'clickhouse', 'scripts', 'localstack', 'plugins', 'bench'];

describe('imports', () => {
  it('form no circle, and each folder imports only folders below it (.dependency-cruiser.cjs)', { timeout: 120_000 }, async () => {
    const run = await promisify(execFile)(process.execPath, [depcruise, ...folders, '--config', '.dependency-cruiser.cjs', '--output-type', 'err-long'], { cwd: repoRoot })
      .then(({ stdout }) => ({ code: 0, stdout }), (error: { code?: number; stdout?: string; stderr?: string }) => ({ code: error.code ?? 1, stdout: `${error.stdout ?? ''}${error.stderr ?? ''}` }));
    expect(run.code, run.stdout).toBe(0);
    expect(run.stdout).toMatch(/no dependency violations found \(\d{2,} modules/);
  });
});
