/** Child processes of the local stack that cannot outlive it. */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';

let setprivPath: string | null | undefined;

/**
 * Spawns a child that the kernel sends `deathSignal` when this process dies, even by kill -9
 * (util-linux's setpriv --pdeathsig, where there is one: Linux). Otherwise a plain spawn: the
 * child's own exit hooks, or a stdin it watches, are then all that stop it.
 */
export function spawnTiedToParent(command: string, args: string[], options: SpawnOptions, deathSignal: 'TERM' | 'KILL' = 'TERM'): ChildProcess {
  setprivPath ??= ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p)) ?? null;
  return setprivPath
    ? spawn(setprivPath, ['--pdeathsig', deathSignal, '--', command, ...args], options)
    : spawn(command, args, options);
}
