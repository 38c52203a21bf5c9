import { describe, expect, it } from 'vitest';
import { buildSdk, sdkGzipBudget } from '../../sdk/build.ts';

describe('sdk: the bundle browsers load', () => {
  it('is one self-contained ESM file under 5 KB gzipped, with no runtime imports', async () => {
    const bundle = await buildSdk();
    expect(bundle.gzipBytes).toBeLessThanOrEqual(sdkGzipBudget);
    expect(bundle.code).not.toMatch(/\bimport\s*[\w{*]|\brequire\(/);
    expect(bundle.code).toMatch(/export\s*{/);
    // Both unload paths (sendBeacon, fetch keepalive) and gzip through the browser's own CompressionStream.
    for (const api of ['sendBeacon', 'keepalive', 'CompressionStream']) expect(bundle.code).toContain(api);
  });

  it('exports init, track, progress, flush and createTracker', async () => {
    const { code } = await buildSdk();
    const url = `data:text/javascript;base64,${Buffer.from(code).toString('base64')}`;
    const sdk = (await import(/* @vite-ignore */ url)) as Record<string, unknown>;
    for (const name of ['init', 'track', 'progress', 'flush', 'createTracker']) expect(typeof sdk[name]).toBe('function');
  });
});
