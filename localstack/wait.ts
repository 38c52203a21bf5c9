import { setTimeout as sleep } from 'node:timers/promises';
import { LocalStackError } from './errors.ts';

export interface PollOptions {
  timeoutMs: number;
  intervalMs: number;
  /** The timeout's message, a whole sentence; a function is called at the timeout (to say what is still missing). */
  what: string | (() => string);
}

/**
 * Calls `check` every `intervalMs` until it returns something other than false or undefined, and
 * resolves with that. Rejects with what `check` throws, or with a LocalStackError saying `what`
 * once `timeoutMs` has passed. The one poll loop of the local stack, the scripts and the benches.
 */
export async function pollUntil<T>(
  check: () => T | false | undefined | Promise<T | false | undefined>,
  { timeoutMs, intervalMs, what }: PollOptions,
): Promise<T> {
  const deadline = AbortSignal.timeout(timeoutMs);
  for (;;) {
    const result = await check();
    if (result !== false && result !== undefined) return result;
    if (deadline.aborted) throw new LocalStackError(typeof what === 'string' ? what : what());
    await sleep(intervalMs);
  }
}
