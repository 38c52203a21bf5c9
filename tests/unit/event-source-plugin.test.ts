import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLambdaInvoker } from '../../localstack/event-source/lambda-invoke.ts';
import { LambdaInvokeError } from '../../localstack/errors.ts';
import { ConfigError } from '../../shared/errors.ts';
import {
  kafkaDestinationTopic,
  planEventSources,
  type ServiceDescription,
} from '../../localstack/event-source/offline-config.ts';

const arn = 'arn:aws:kafka:us-east-1:000000000000:cluster/ugc/abc-1';

function service(functions: ServiceDescription['functions'], custom: Record<string, unknown> = {}): ServiceDescription {
  return { service: 'ugc-ingest', stage: 'dev', region: 'us-east-1', functions, custom };
}

describe('serverless.yml msk/kafka events → event source settings', () => {
  it('maps an msk event, with brokers from KAFKA_BROKERS and the function deployed name', () => {
    const { sources } = planEventSources(
      service(
        {
          writer: {
            name: 'ugc-ingest-dev-writer',
            events: [
              { httpApi: 'GET /x' },
              {
                msk: {
                  arn,
                  topic: 'ugc.events',
                  consumerGroupId: 'ugc-ingest-writer',
                  batchSize: 1000,
                  maximumBatchingWindow: 1,
                  startingPosition: 'LATEST',
                },
              },
            ],
          },
        },
        // A string, as `serverless offline --param writerMaximumRetryAttempts=3` gives it.
        { kafkaEventSource: { maximumRetryAttempts: '3', onFailureTopic: 'ugc.events.dlq', retryBackoffMs: 100 } },
      ),
      { KAFKA_BROKERS: '127.0.0.1:1, 127.0.0.1:2' },
    );
    expect(sources).toEqual([
      {
        functionKey: 'writer',
        functionName: 'ugc-ingest-dev-writer',
        eventType: 'msk',
        config: {
          kind: 'msk',
          eventSourceArn: arn,
          brokers: ['127.0.0.1:1', '127.0.0.1:2'],
          topic: 'ugc.events',
          consumerGroupId: 'ugc-ingest-writer',
          batchSize: 1000,
          maximumBatchingWindowSeconds: 1,
          startingPosition: 'LATEST',
          startingPositionTimestamp: undefined,
          maximumRetryAttempts: 3,
          retryBackoff: { initialMs: 100 },
          onFailure: { topic: 'ugc.events.dlq' },
          functionName: 'ugc-ingest-dev-writer',
        },
      },
    ]);
  });

  it('maps a kafka event: its own bootstrap servers without KAFKA_BROKERS, kafka:// destination, default group', () => {
    const { sources } = planEventSources(
      service({
        reader: {
          events: [
            {
              kafka: {
                accessConfigurations: { saslScram512Auth: ['arn:aws:secretsmanager:x'] },
                bootstrapServers: ['b1:9092', 'b2:9092'],
                topic: 't',
                onFailureDestination: 'kafka://t.dlq',
              },
            },
          ],
        },
      }),
      {},
    );
    expect(sources[0]?.config).toMatchObject({
      kind: 'kafka',
      brokers: ['b1:9092', 'b2:9092'],
      consumerGroupId: 'ugc-ingest-dev-reader',
      startingPosition: 'TRIM_HORIZON',
      onFailure: { topic: 't.dlq' },
    });
    expect(sources[0]?.config).not.toHaveProperty('eventSourceArn');
  });

  it('gives each topic of a function its own default group', () => {
    const { sources } = planEventSources(
      service({ w: { name: 'svc-w', events: [{ msk: { arn, topic: 'a' } }, { msk: { arn, topic: 'b' } }] } }),
      { KAFKA_BROKERS: 'k:1' },
    );
    expect(sources.map((s) => s.config.consumerGroupId)).toEqual(['svc-w-a', 'svc-w-b']);
  });

  it('skips disabled events and functions, and everything when the plugin is disabled', () => {
    const functions = {
      a: { events: [{ msk: { arn, topic: 'a', enabled: false } }] },
      b: { events: [{ msk: { arn, topic: 'b' } }] },
      c: { events: [{ msk: { arn, topic: 'c' } }] },
    };
    const env = { KAFKA_BROKERS: 'k:1' };
    const planned = planEventSources(service(functions, { kafkaEventSource: { functions: { c: { enabled: false } } } }), env);
    expect(planned.sources.map((s) => s.functionKey)).toEqual(['b']);
    expect(planEventSources(service(functions, { kafkaEventSource: { enabled: false } }), env).sources).toEqual([]);
  });

  it('names a placeholder ARN when the msk arn is a CloudFormation reference', () => {
    const { sources } = planEventSources(service({ w: { events: [{ msk: { arn: { Ref: 'Cluster' }, topic: 't' } }] } }), { KAFKA_BROKERS: 'k:1' });
    expect(sources[0]?.config.eventSourceArn).toMatch(/^arn:aws:kafka:us-east-1:000000000000:cluster\//);
  });

  it('refuses an msk event with no brokers to reach, naming the function', () => {
    expect(() => planEventSources(service({ writer: { events: [{ msk: { arn, topic: 't' } }] } }), {})).toThrow(
      new ConfigError('functions.writer.events.msk: no brokers to consume from; set KAFKA_BROKERS (an MSK cluster ARN cannot be reached locally)'),
    );
  });

  it('notes what it does not emulate', () => {
    const { notes } = planEventSources(
      service({
        r: {
          events: [
            {
              kafka: {
                bootstrapServers: ['b:1'],
                topic: 't',
                onFailureDestination: 'arn:aws:sqs:us-east-1:000000000000:dlq',
                filterPatterns: [{ value: { a: [1] } }],
              },
            },
          ],
        },
      }),
      {},
    );
    expect(notes).toHaveLength(2);
    expect(kafkaDestinationTopic('arn:aws:sqs:x')).toBeUndefined();
    expect(kafkaDestinationTopic('kafka://dlq')).toBe('dlq');
  });
});

describe('invoking through serverless-offline\'s Lambda API', () => {
  let server: Server;
  let endpoint: string;
  const requests: { url: string; invocationType: string | undefined; body: unknown }[] = [];

  beforeAll(async () => {
    // Answers the way serverless-offline's invocations route does.
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const event = JSON.parse(body) as { mode: string };
        requests.push({ url: req.url ?? '', invocationType: req.headers['x-amz-invocation-type'] as string | undefined, body: event });
        if (event.mode === 'throw') {
          res.writeHead(200, { 'X-Amz-Function-Error': 'Unhandled', 'content-type': 'application/json' });
          res.end(JSON.stringify({ errorMessage: 'insert failed', errorType: 'ClickHouseError', trace: [] }));
        } else if (event.mode === 'missing') {
          res.writeHead(404, { 'x-amzn-ErrorType': 'ResourceNotFoundException', 'content-type': 'application/json' });
          res.end(JSON.stringify({ Message: 'Function not found: x', Type: 'User' }));
        } else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ ok: true }));
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('posts the event synchronously to the function\'s invocations URL and returns its result', async () => {
    const invoke = createLambdaInvoker({ endpoint, functionName: 'ugc-ingest-dev-writer' });
    await expect(invoke({ mode: 'ok' })).resolves.toEqual({ ok: true });
    expect(requests.at(-1)).toEqual({
      url: '/2015-03-31/functions/ugc-ingest-dev-writer/invocations',
      invocationType: 'RequestResponse',
      body: { mode: 'ok' },
    });
  });

  it('rejects with the function\'s errorType and message on a function error', async () => {
    const invoke = createLambdaInvoker({ endpoint, functionName: 'f' });
    const error = await invoke({ mode: 'throw' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LambdaInvokeError);
    expect(error).toMatchObject({ errorType: 'ClickHouseError', message: 'insert failed', statusCode: 200 });
  });

  it('rejects on a non-2xx answer', async () => {
    const invoke = createLambdaInvoker({ endpoint, functionName: 'f' });
    await expect(invoke({ mode: 'missing' })).rejects.toMatchObject({
      errorType: 'ResourceNotFoundException',
      message: 'Function not found: x',
      statusCode: 404,
    });
  });
});
