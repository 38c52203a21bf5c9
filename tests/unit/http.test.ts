import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { HttpError } from '../../shared/errors.ts';
import { httpFunction, json } from '../../shared/http.ts';
import { logger } from '../../shared/telemetry.ts';

const event = { routeKey: 'POST /v1/events', requestContext: { requestId: 'r1' }, headers: {} } as unknown as APIGatewayProxyEventV2;
const context = { awsRequestId: 'a1', functionName: 'test', getRemainingTimeInMillis: () => 1000 } as unknown as Context;

/** The access log line's fields for one request through httpFunction. */
async function accessLog(route: () => Promise<ReturnType<typeof json>>) {
  vi.restoreAllMocks();
  const info = vi.spyOn(logger, 'info').mockImplementation(() => undefined);
  const error = vi.spyOn(logger, 'error').mockImplementation(() => undefined);
  const answer = await httpFunction(route)(event, context);
  const line = [...info.mock.calls, ...error.mock.calls].find(([message]) => message === 'request' || message === 'request failed');
  return { answer, fields: line?.[1] as Record<string, unknown> | undefined };
}

afterEach(() => vi.restoreAllMocks());

describe('the access log of an HTTP function', () => {
  it('names the code of an error answer a route returns, not only of one it throws', async () => {
    const returned = await accessLog(async () => json(400, { code: 'no_valid_events', message: 'no event was valid' }));
    expect(returned.answer.statusCode).toBe(400);
    expect(returned.fields).toMatchObject({ status: 400, code: 'no_valid_events' });

    const thrown = await accessLog(async () => { throw new HttpError(401, 'invalid_token', 'the token is invalid'); });
    expect(thrown.fields).toMatchObject({ status: 401, code: 'invalid_token' });
  });

  it('calls an unexpected failure internal_error and reveals nothing in the answer', async () => {
    const failed = await accessLog(async () => {
      vi.spyOn(console, 'error').mockImplementation(() => undefined); // httpErrors logs the stack
      throw new Error('secret detail');
    });
    expect(failed.fields).toMatchObject({ status: 500, code: 'internal_error' });
    expect(failed.answer.body).not.toContain('secret detail');
  });

  it('gives a success no code', async () => {
    const ok = await accessLog(async () => json(202, { accepted: 1, rejected: [] }));
    expect(ok.fields).toMatchObject({ status: 202 });
    expect(ok.fields).not.toHaveProperty('code');
  });
});
