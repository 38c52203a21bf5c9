import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { PortInUseError } from './errors.ts';

/**
 * The kernel's range for outgoing connections' local ports. A port handed out by listen(0) lies
 * in it, so between our check and the service's bind any outgoing connection (a broker dialling
 * a controller, a client) may take it: CI saw "broker 3 could not listen on port 44252" that way.
 */
function ephemeralRange(): { low: number; high: number } {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && high && low < high) return { low, high };
  } catch { /* not Linux */ }
  return { low: 32_768, high: 60_999 };
}

/** Above every default port of the stack (3000-3002, 8123, 9092-9097) and below the ephemeral range. */
const lowestPicked = 10_000;

/** Whether nothing listens on this loopback port (we can bind it). */
export function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * `count` consecutive free loopback ports, outside the ephemeral range where the kernel can, so
 * that no outgoing connection takes one before its service binds it.
 */
export async function freePortRange(count: number): Promise<number[]> {
  const { low } = ephemeralRange();
  const span = low - count - lowestPicked;
  for (let attempt = 0; span > 0 && attempt < 200; attempt++) {
    const base = lowestPicked + Math.floor(Math.random() * span);
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if ((await Promise.all(ports.map(isFree))).every(Boolean)) return ports;
  }
  throw new Error(`no ${count} consecutive free ports between ${lowestPicked} and ${low}`);
}

/** A free TCP port on loopback (for a second offline run, a test's server, a bench). */
export async function freePort(): Promise<number> {
  return (await freePortRange(1))[0]!;
}

/** Fails in one line naming the port and the variable that moves it, when something holds the port. */
export async function assertPortFree(port: number, variable: string, service: string): Promise<void> {
  if (port !== 0 && !(await isFree(port))) {
    throw new PortInUseError(`port ${port} (${variable}, ${service}) is already in use: stop what holds it (another npm start?) or set ${variable} to another port`);
  }
}
