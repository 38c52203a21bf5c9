import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { brokersOn, kmsKeyArn, prodParams, refusalOf, scramSecretArn } from './deploy-stage.ts';

// Settings that used to package with exit 0 and deploy a broken stack (issue 28). Each is refused while
// serverless.yml's variables resolve (plugins/template-values.cjs), before anything is built, with one
// line that names the parameter and the fix.
const { jwtSecretParameter: _stored, ...withoutJwtKey } = prodParams;
const scram = { ...prodParams, kafkaSaslMechanism: 'scram-sha-512', kafkaBrokers: brokersOn(9096), kafkaSaslSecretArn: scramSecretArn, secretsKmsKeyArn: kmsKeyArn };
const { kafkaSaslSecretArn: _secret, ...scramWithoutSecret } = scram;
const { secretsKmsKeyArn: _key, ...scramWithoutKey } = scram;
const { corsAllowedOrigins: _origins, ...withoutOrigins } = prodParams;

const refusals: [string, Record<string, string>, RegExp][] = [
  ['no JWT key: neither jwtSecretParameter nor jwtJwksUrl (every call would fail)', withoutJwtKey,
    /jwtSecretParameter: set it \(the SSM SecureString of the HS256 key, e\.g\. \/ugc-ingest\/prod\/jwt-secret\) or jwtJwksUrl \(the Auth service's JWKS URL\)/],
  ['both jwtSecretParameter and jwtJwksUrl (the functions refuse to start)', { ...prodParams, jwtJwksUrl: 'https://auth.cinema.example.com/.well-known/jwks.json' },
    /jwtJwksUrl: set jwtSecretParameter or jwtJwksUrl, not both/],
  ['jwtSecretParameter without its leading / (a malformed ARN: reads denied)', { ...prodParams, jwtSecretParameter: 'ugc-jwt' },
    /jwtSecretParameter: ugc-jwt has no leading \/; pass the full path name \(\/ugc-jwt\)/],
  ['scram-sha-512 without kafkaSaslSecretArn (the mapping gets no credentials)', scramWithoutSecret,
    /kafkaSaslSecretArn: required with kafkaSaslMechanism=scram-sha-512: the ARN of the AmazonMSK_ secret/],
  ['scram-sha-512 without secretsKmsKeyArn (no kms:Decrypt for the customer-key secret MSK requires)', scramWithoutKey,
    /secretsKmsKeyArn: required with kafkaSaslMechanism=scram-sha-512: MSK takes SCRAM secrets only under a customer-managed KMS key/],
  ["writerStalledAlarmHours past CloudWatch's 7-day evaluation limit (the deploy fails)", { ...prodParams, writerStalledAlarmHours: '200' },
    /writerStalledAlarmHours: 200 is outside 1-168 \(CloudWatch evaluates an alarm over 7 days at most, and the deploy fails\)/],
  ['alarmTopicArn that is not an SNS topic ARN (every alarm action fails)', { ...prodParams, alarmTopicArn: 'ugc-alarms' },
    /alarmTopicArn: ugc-alarms is not an SNS topic ARN; pass arn:aws:sns:<region>:<account>:<topic>/],
  ['no corsAllowedOrigins: a deployed stage names its pages', withoutOrigins,
    /corsAllowedOrigins: expected the cinema's page origins, comma-separated \(https:\/\/cinema\.example\.com,https:\/\/www\.cinema\.example\.com\), or \*; got ""/],
  ['an origin with a path or trailing slash (no browser sends one)', { ...prodParams, corsAllowedOrigins: 'https://cinema.example.com/' },
    /corsAllowedOrigins: expected the cinema's page origins[^\n]*got "https:\/\/cinema\.example\.com\/"/],
  ["httpThrottleRateLimit above what the ingest's reserved concurrency serves", { ...prodParams, httpThrottleRateLimit: '5000' },
    /httpThrottleRateLimit: 5000\/s needs 150 ingests at once \(2 x 15 ms a request, docs\/capacity-and-cost\.md\), more than ingestReservedConcurrency \(100\): lower it, or raise ingestReservedConcurrency to 150/],
];

describe('serverless package --stage prod refuses settings that deploy a broken stack (issue 28)', () => {
  it.each(refusals)('%s', async (_what, params, message) => {
    const output = await refusalOf('prod', params);
    expect(output).toMatch(message);
    // One line: the parameter, what is wrong, the fix.
    const line = output.split('\n').find((l) => message.test(l));
    expect(line, output).toBeDefined();
  }, 60_000);

  it('lists every broken setting at once, one line each', async () => {
    const output = await refusalOf('prod', { ...scramWithoutKey, jwtSecretParameter: 'ugc-jwt', writerStalledAlarmHours: '200' });
    for (const parameter of ['writerStalledAlarmHours', 'jwtSecretParameter', 'secretsKmsKeyArn']) expect(output).toMatch(new RegExp(`^\\s*(- |.*": )${parameter}: `, 'm'));
  }, 60_000);
});

// The route throttles (plugins/http-routes.cjs), as a unit: the stack-wide packages are in deploy-package.test.ts.
const { routeSettings } = createRequire(import.meta.url)('../../plugins/http-routes.cjs') as {
  routeSettings: (routes: Record<string, string[]>, config: { ceilings: Record<string, { rate: number; burst: number }>; publicRoutes: string[]; publicRouteRate: number }) =>
    Record<string, { ThrottlingRateLimit: number; ThrottlingBurstLimit: number }>;
};

describe("route throttles: each function's routes share its ceiling", () => {
  const routes = { ingest: ['POST /v1/events', 'POST /v1/films/{film_id}/progress', 'GET /v1/health'], reader: ['GET /v1/progress'], writer: [] };
  const config = { ceilings: { ingest: { rate: 1000, burst: 400 }, reader: { rate: 200, burst: 100 } }, publicRoutes: ['GET /v1/health'], publicRouteRate: 10 };

  it('gives a public route its own small limit and the other routes equal shares of the rest', () => {
    expect(routeSettings(routes, config)).toEqual({
      'GET /v1/health': { ThrottlingRateLimit: 10, ThrottlingBurstLimit: 10 },
      'POST /v1/events': { ThrottlingRateLimit: 495, ThrottlingBurstLimit: 195 },
      'POST /v1/films/{film_id}/progress': { ThrottlingRateLimit: 495, ThrottlingBurstLimit: 195 },
      'GET /v1/progress': { ThrottlingRateLimit: 200, ThrottlingBurstLimit: 100 },
    });
  });

  it("refuses public routes that take a function's whole ceiling, and a function with routes and no ceiling", () => {
    expect(() => routeSettings(routes, { ...config, publicRouteRate: 400 }))
      .toThrow("httpPublicRouteRateLimit: 1 public routes at 400/s leave ingest's other routes nothing of its ceiling (1000/s, burst 400); lower it or raise the ceiling");
    expect(() => routeSettings({ ...routes, search: ['GET /v1/search'] }, config)).toThrow("custom.httpRoutes.ceilings: no ceiling for search's routes (GET /v1/search)");
  });
});
