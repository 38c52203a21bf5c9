/** Processes as /proc shows them, for tests that check what a stack leaves running. */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ProcInfo { pid: number; ppid: number; pgid: number; zombie: boolean }

export function processTable(): ProcInfo[] {
  const table: ProcInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // After "(comm)": state ppid pgrp ...
      const [state, ppid, pgid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      table.push({ pid: Number(entry), ppid: Number(ppid), pgid: Number(pgid), zombie: state === 'Z' });
    } catch { /* ended while we read /proc */ }
  }
  return table;
}

/** `root` and every live process below it, and every process in their process groups. */
export function stackProcesses(root: number): number[] {
  const table = processTable().filter((p) => !p.zombie);
  const found = new Set<number>([root]);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of table) {
      if (!found.has(p.pid) && (found.has(p.ppid) || (p.pgid !== 1 && [...found].includes(p.pgid)))) {
        found.add(p.pid);
        grew = true;
      }
    }
  }
  return [...found].filter((pid) => table.some((p) => p.pid === pid));
}

export const alive = (pid: number): boolean => processTable().some((p) => p.pid === pid && !p.zombie);
export const cmdline = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
};
/** Live processes whose command line mentions one of `needles` (the data dirs). */
export const mentioning = (needles: string[]): number[] =>
  processTable().filter((p) => !p.zombie && p.pid !== process.pid && needles.some((n) => cmdline(p.pid).includes(n))).map((p) => p.pid);

export async function waitUntilGone(pids: number[], timeoutMs = 20_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(alive) && Date.now() < deadline) await sleep(100);
  return pids.filter(alive);
}

/** Runs `npm start`'s program (node --import tsx localstack/start.ts) until it exits; for its expected failures. */
export async function npmStartUntilExit(env: Record<string, string>, timeoutMs = 150_000): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const { KAFKA_BROKERS: _k, CLICKHOUSE_URL: _c, ...inherited } = process.env;
  const child = spawn(process.execPath, ['--import', 'tsx', 'localstack/start.ts'], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)), env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((r) => child.once('close', r));
  clearTimeout(timer);
  return { code, stderr, stdout };
}
