import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePortRange } from '../../localstack/ports.ts';

const ephemeralLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);

describe('free ports for the stack', () => {
  it('hands out consecutive ports below the ephemeral range, each one bindable', async () => {
    const ports = await freePortRange(6);
    expect(ports).toEqual(Array.from({ length: 6 }, (_, i) => ports[0]! + i));
    expect(ports.at(-1)!).toBeLessThan(ephemeralLow);
    for (const port of ports) {
      await new Promise<void>((resolve, reject) => {
        const server = createServer().once('error', reject);
        server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
      });
    }
  });

  it('never hands out a port that is taken', async () => {
    const [taken] = await freePortRange(1);
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(taken, '127.0.0.1', () => r()));
    try {
      for (let i = 0; i < 200; i++) expect(await freePortRange(3)).not.toContain(taken);
    } finally {
      holder.close();
    }
  });
});
