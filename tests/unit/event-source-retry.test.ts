import { describe, expect, it } from 'vitest';
import { afterFailedAttempt, describeError, effectiveRetryLimit, retryDelayMs } from '../../localstack/event-source/retry.ts';

describe('event source retry policy', () => {
  it('backs off exponentially up to the cap', () => {
    const backoff = { initialMs: 100, maxMs: 1000, multiplier: 2 };
    expect([0, 1, 2, 3, 4, 10].map((n) => retryDelayMs(n, backoff))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it("uses AWS-like defaults: 500 ms doubling up to 30 s", () => {
    expect([0, 1, 5, 6, 20].map((n) => retryDelayMs(n))).toEqual([500, 1000, 16_000, 30_000, 30_000]);
    expect(retryDelayMs(2, { initialMs: 10 })).toBe(40);
  });

  it('caps infinite retries at 10 when an on-failure destination is set, as AWS does', () => {
    expect(effectiveRetryLimit(-1, true)).toBe(10);
    expect(effectiveRetryLimit(-1, false)).toBe(-1);
    expect(effectiveRetryLimit(3, true)).toBe(3);
    expect(effectiveRetryLimit(0, false)).toBe(0);
  });

  it('retries up to the limit with growing delays, then gives up', () => {
    const backoff = { initialMs: 100, maxMs: 250 };
    const decisions = [1, 2, 3, 4].map((attempt) => afterFailedAttempt(attempt, 3, backoff));
    expect(decisions).toEqual([
      { action: 'retry', delayMs: 100 },
      { action: 'retry', delayMs: 200 },
      { action: 'retry', delayMs: 250 },
      { action: 'give-up' },
    ]);
  });

  it('gives up after the first failure with no retries, and never with no limit', () => {
    expect(afterFailedAttempt(1, 0)).toEqual({ action: 'give-up' });
    expect(afterFailedAttempt(1_000, -1, { maxMs: 5 })).toEqual({ action: 'retry', delayMs: 5 });
  });

  it('takes errorType from a Lambda function error', () => {
    const error = Object.assign(new Error('boom'), { errorType: 'ClickHouseError' });
    expect(describeError(error)).toEqual({ errorType: 'ClickHouseError', errorMessage: 'boom' });
    expect(describeError(new TypeError('bad'))).toEqual({ errorType: 'TypeError', errorMessage: 'bad' });
    expect(describeError('text')).toEqual({ errorType: 'Error', errorMessage: 'text' });
  });
});
