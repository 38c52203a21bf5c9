import { readdir, readFile } from 'node:fs/promises';
import { cpus } from 'node:os';

/** What each process of the local stack does, told by its command line. */
const roles = [
  ['brokers', (cmd: string) => cmd.includes('kafka.Kafka')],
  ['serverless offline', (cmd: string) => cmd.includes('serverless.js')],
  ['ClickHouse', (cmd: string) => cmd.includes('clickhouse/server')],
] as const;
export type Role = (typeof roles)[number][0] | 'load generator' | 'other';

// Linux reports CPU time in clock ticks; USER_HZ is 100 on every distribution Node supports.
const msPerTick = 10;

/**
 * CPU time (ms, user + system) used so far by this process and its descendants, by role: the
 * load generator (this process), and the brokers, serverless offline and ClickHouse it started.
 * Empty where /proc is missing (macOS).
 */
export async function cpuByRole(): Promise<Map<Role, number>> {
  const procs = new Map<number, { ppid: number; ticks: number; cmd: string }>();
  let entries: string[] = [];
  try { entries = await readdir('/proc'); } catch { return new Map(); }
  await Promise.all(entries.filter((e) => /^\d+$/.test(e)).map(async (pid) => {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmd = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replaceAll('\0', ' ');
      procs.set(Number(pid), { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]), cmd });
    } catch { /* gone meanwhile */ }
  }));
  const ours = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 20; p = procs.get(p)?.ppid ?? 0, hops++) if (p === process.pid) return true;
    return false;
  };
  const byRole = new Map<Role, number>();
  for (const [pid, { ticks, cmd }] of procs) {
    if (!ours(pid)) continue;
    const role: Role = pid === process.pid ? 'load generator' : roles.find(([, is]) => is(cmd))?.[0] ?? 'other';
    byRole.set(role, (byRole.get(role) ?? 0) + ticks * msPerTick);
  }
  return byRole;
}

/** CPU ms each role spent per request between two readings, and the share of the machine used. */
export function cpuPerRequest(before: Map<Role, number>, after: Map<Role, number>, requests: number, wallMs: number) {
  const perRequestMs: Record<string, number> = {};
  let total = 0;
  for (const [role, ms] of after) {
    const used = ms - (before.get(role) ?? 0);
    total += used;
    perRequestMs[role] = requests > 0 ? used / requests : 0;
  }
  return { perRequestMs, machineBusy: total / (wallMs * cpus().length) };
}
