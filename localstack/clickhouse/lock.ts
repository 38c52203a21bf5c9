import { closeSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** Name of the lock file inside a data directory. */
export const LOCK_FILE = 'embedded-clickhouse.lock';

/** What the lock file records about its owner. */
export interface LockOwner {
  readonly pid: number;
  readonly url?: string;
}

/** The data directory already belongs to a live process. */
export class DataDirInUseError extends Error {
  constructor(
    readonly dataDir: string,
    readonly owner: LockOwner,
  ) {
    super(
      `data dir ${dataDir} is already used by another embedded ClickHouse server (pid ${owner.pid}` +
        `${owner.url ? `, ${owner.url}` : ''}); stop it first or use another --data-dir`,
    );
    this.name = 'DataDirInUseError';
  }
}

/** A held lock: record the URL once listening, release on shutdown. */
export interface DataDirLock {
  update(owner: LockOwner): void;
  release(): void;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return e instanceof Error && 'code' in e && e.code === 'EPERM';
  }
}

function readOwner(path: string): LockOwner | undefined {
  try {
    const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (typeof parsed === 'object' && parsed !== null && 'pid' in parsed && typeof parsed.pid === 'number') {
      const url = 'url' in parsed && typeof parsed.url === 'string' ? parsed.url : undefined;
      return { pid: parsed.pid, url };
    }
  } catch {
    // unreadable or half-written: treated as stale
  }
  return undefined;
}

/**
 * Takes the data directory for this process. A lock left by a dead process is taken over;
 * a live owner makes it throw {@link DataDirInUseError}. (chDB's own file lock stays the
 * last line of defence; this one gives the clear message.)
 */
export function acquireDataDirLock(dataDir: string): DataDirLock {
  const path = join(dataDir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx'); // atomic: fails if another process created it first
      writeSync(fd, JSON.stringify({ pid: process.pid }));
      closeSync(fd);
      let released = false;
      return {
        update(owner) {
          if (!released) writeFileSync(path, JSON.stringify(owner));
        },
        release() {
          if (released) return;
          released = true;
          if (readOwner(path)?.pid === process.pid) rmSync(path, { force: true });
        },
      };
    } catch (e) {
      if (!(e instanceof Error && 'code' in e && e.code === 'EEXIST')) throw e;
      const owner = readOwner(path);
      if (owner !== undefined && owner.pid !== process.pid && isAlive(owner.pid)) throw new DataDirInUseError(dataDir, owner);
      rmSync(path, { force: true }); // stale: its owner is gone
    }
  }
  throw new Error(`could not take the lock ${path}: it keeps reappearing`);
}
