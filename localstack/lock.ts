import { linkSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalStackError } from './errors.ts';

/** Which embedded service a data directory belongs to: its lock file's name and how to call it. */
export interface LockKind {
  readonly file: string;
  readonly service: string;
  /** How to point it at another directory. */
  readonly elsewhere: string;
}

export const clickhouseLock: LockKind = { file: 'embedded-clickhouse.lock', service: 'embedded ClickHouse server', elsewhere: 'set CLICKHOUSE_DATA_DIR to another directory' };
export const kafkaLock: LockKind = { file: 'embedded-kafka.lock', service: 'embedded Kafka cluster', elsewhere: 'set KAFKA_DATA_DIR to another directory' };

/** What the lock file records about its owner. */
export interface LockOwner {
  readonly pid: number;
  readonly url?: string;
  /** Processes the owner started that hold the directory too (the Kafka brokers' JVMs). */
  readonly children?: number[];
  /** The boot the owner ran in (Linux boot_id): after a reboot its pid means nothing. */
  readonly boot?: string;
}

/** The data directory already belongs to a live process: the one line saying whose and what to do. */
function dataDirInUse(dataDir: string, owner: LockOwner, kind: LockKind): LocalStackError {
  return new LocalStackError(
    `data dir ${dataDir} is already used by another ${kind.service} (pid ${owner.pid}` +
      `${owner.url ? `, ${owner.url}` : ''}); stop it first or ${kind.elsewhere}`,
  );
}

// Lock files this process holds: its own pid in one does not make it stale.
const heldHere = new Set<string>();

/** A held lock: record the URL once listening, release on shutdown. */
export interface DataDirLock {
  update(owner: LockOwner): void;
  release(): void;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return e instanceof Error && 'code' in e && e.code === 'EPERM';
  }
  return !isZombie(pid);
}

/**
 * A killed process whose parent died too stays a zombie until its new parent reaps it, which a
 * container's init may do late: it holds no port and no file, so its lock is stale.
 */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false; // not Linux, or gone just now
  }
}

// A pid recorded before a reboot may since belong to any process: the boot id tells them apart (Linux).
const bootId = (() => {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
})();

/** Whether the lock's owner still runs: alive, not us, and (where known) since the same boot. */
export function ownerIsLive(owner: LockOwner): boolean {
  if (owner.pid === process.pid) return false;
  if (owner.boot !== undefined && bootId !== undefined && owner.boot !== bootId) return false;
  return isAlive(owner.pid);
}

/** Writes the lock file whole: 'create' fails with EEXIST if it exists, 'replace' swaps it in. */
function writeAtomically(path: string, owner: LockOwner, mode: 'create' | 'replace'): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ ...owner, boot: bootId }));
  try {
    if (mode === 'create') linkSync(tmp, path);
    else renameSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** The owner a lock file records, or undefined if there is none (or it is unreadable). */
export function readOwner(path: string): LockOwner | undefined {
  try {
    const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (typeof parsed === 'object' && parsed !== null && 'pid' in parsed && typeof parsed.pid === 'number') {
      const url = 'url' in parsed && typeof parsed.url === 'string' ? parsed.url : undefined;
      const children = 'children' in parsed && Array.isArray(parsed.children) ? parsed.children.filter((c): c is number => typeof c === 'number') : undefined;
      const boot = 'boot' in parsed && typeof parsed.boot === 'string' ? parsed.boot : undefined;
      return { pid: parsed.pid, url, children, boot };
    }
  } catch {
    // unreadable or half-written: treated as stale
  }
  return undefined;
}

/**
 * The owner of a lock its process left behind: gone, or from before a reboot (its pid may belong
 * to another process now). Undefined without a lock, with a live owner, or when this process holds it.
 */
export function staleOwner(dataDir: string, kind: LockKind): LockOwner | undefined {
  const path = join(dataDir, kind.file);
  const owner = readOwner(path);
  return owner !== undefined && !heldHere.has(path) && !ownerIsLive(owner) ? owner : undefined;
}

/** Fails with {@link dataDirInUse} when a live process (not this one) holds the data directory's lock. */
export function assertDataDirFree(dataDir: string, kind: LockKind): void {
  const owner = readOwner(join(dataDir, kind.file));
  if (owner !== undefined && ownerIsLive(owner)) throw dataDirInUse(dataDir, owner, kind);
}

/**
 * Takes the data directory for this process. A lock left by a dead process is taken over;
 * a live owner makes it throw {@link dataDirInUse}.
 * (chDB's and Kafka's own file locks stay the last line of defence; this one gives the clear message.)
 */
export function acquireDataDirLock(dataDir: string, kind: LockKind): DataDirLock {
  const path = join(dataDir, kind.file);
  if (heldHere.has(path)) throw dataDirInUse(dataDir, readOwner(path) ?? { pid: process.pid }, kind);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      // Written whole under a private name, then linked into place: the link fails if the lock
      // exists, so two starts cannot both take it, and nobody reads a half-written one.
      writeAtomically(path, { pid: process.pid }, 'create');
      heldHere.add(path);
      let released = false;
      return {
        update(owner) {
          if (!released) writeAtomically(path, owner, 'replace');
        },
        release() {
          if (released) return;
          released = true;
          heldHere.delete(path);
          if (readOwner(path)?.pid === process.pid) rmSync(path, { force: true });
        },
      };
    } catch (e) {
      if (!(e instanceof Error && 'code' in e && e.code === 'EEXIST')) throw e;
      assertDataDirFree(dataDir, kind);
      // Stale: its owner is gone. Claimed by a rename, so of two starts only one removes it, and
      // a lock another start made meanwhile is put back instead of deleted.
      const claimed = `${path}.stale.${process.pid}`;
      try {
        renameSync(path, claimed);
      } catch {
        continue; // another start claimed it first
      }
      const taken = readOwner(claimed);
      if (taken !== undefined && ownerIsLive(taken)) {
        try { linkSync(claimed, path); } catch { /* a third start holds it now */ }
        rmSync(claimed, { force: true });
        throw dataDirInUse(dataDir, taken, kind);
      }
      rmSync(claimed, { force: true });
    }
  }
  throw new Error(`could not take the lock ${path}: it keeps reappearing`);
}
