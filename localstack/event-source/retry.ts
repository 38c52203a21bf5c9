/**
 * The retry policy of a failed batch, as AWS's event source mapping applies it: exponential
 * backoff, `maximumRetryAttempts` retries after the first invoke (-1: until it succeeds, capped at
 * 10 when an on-failure destination is set), then give up. Pure: no clock, no Kafka.
 */

export interface RetryBackoff {
  /** Delay before the first retry. Default 500 ms. */
  initialMs?: number;
  /** Upper bound of a delay. Default 30 000 ms. */
  maxMs?: number;
  /** Growth per retry. Default 2. */
  multiplier?: number;
}

const defaultBackoff = { initialMs: 500, maxMs: 30_000, multiplier: 2 };

// AWS applies at most 10 retries when retries are infinite and an on-failure destination is set.
const retriesWithDestination = 10;

/** Delay before retry number `retry` (0-based): exponential, capped. */
export function retryDelayMs(retry: number, backoff: RetryBackoff = {}): number {
  const { initialMs, maxMs, multiplier } = { ...defaultBackoff, ...backoff };
  return Math.min(maxMs, initialMs * multiplier ** retry);
}

/** Retries allowed after the first failure; -1 means no limit. */
export function effectiveRetryLimit(maximumRetryAttempts: number, hasDestination: boolean): number {
  return maximumRetryAttempts < 0 && hasDestination ? retriesWithDestination : maximumRetryAttempts;
}

/** What follows a failed invoke: another try after a delay, or giving the batch up. */
export type AfterFailure = { action: 'retry'; delayMs: number } | { action: 'give-up' };

/** The decision after invoke number `attempt` (1-based) failed, with `retryLimit` from effectiveRetryLimit. */
export function afterFailedAttempt(attempt: number, retryLimit: number, backoff?: RetryBackoff): AfterFailure {
  const retriesDone = attempt - 1;
  if (retryLimit >= 0 && retriesDone >= retryLimit) return { action: 'give-up' };
  return { action: 'retry', delayMs: retryDelayMs(retriesDone, backoff) };
}

/** errorType / errorMessage of whatever an invoke rejected with. */
export function describeError(error: unknown): { errorType: string; errorMessage: string } {
  if (error instanceof Error) {
    const errorType = (error as Error & { errorType?: unknown }).errorType;
    return { errorType: typeof errorType === 'string' ? errorType : error.name, errorMessage: error.message };
  }
  return { errorType: 'Error', errorMessage: String(error) };
}
