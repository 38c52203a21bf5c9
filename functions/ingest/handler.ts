import middy from '@middy/core';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { createViewerVerifier } from '../../shared/auth.ts';
import { HttpError } from '../../shared/errors.ts';
import { httpErrors, json, type HttpHandlerResult } from '../../shared/http.ts';
import { CompressionTypes, createProducer } from '../../shared/kafka.ts';
import { config } from './config.ts';
import { enrich, toKafkaMessage } from './messages.ts';
import { parseEvents, readJsonBody } from './parse.ts';

// Created once per container and reused; connected on first use.
const verifyViewer = createViewerVerifier(config);
const producer = createProducer(config);
let connected: Promise<void> | undefined;
const limits = { maxBodyBytes: config.MAX_BODY_BYTES, maxEvents: config.MAX_EVENTS_PER_REQUEST };

function kafkaUnavailable(cause: unknown): HttpError {
  connected = undefined;
  console.error(JSON.stringify({ level: 'error', msg: 'kafka produce failed', error: String(cause) }));
  return new HttpError(503, 'kafka_unavailable', 'events could not be made durable; retry later', { 'Retry-After': '1' }, { cause });
}

async function postEvents(event: APIGatewayProxyEventV2, context: Context): Promise<HttpHandlerResult> {
  const viewer = await verifyViewer(event.headers.authorization);
  const body = readJsonBody(event.body, event.isBase64Encoded, event.headers['content-type'], limits);
  const { valid, rejected } = parseEvents(body, limits);
  if (valid.length === 0) return json(400, { code: 'no_valid_events', accepted: 0, rejected });

  const receivedAt = new Date();
  const messages = valid.map(({ event: clientEvent }) =>
    toKafkaMessage(enrich(clientEvent, { userId: viewer.userId, requestId: context.awsRequestId, receivedAt })),
  );
  try {
    connected ??= producer.connect();
    await connected;
    // acks -1: answered only once every in-sync replica has the events; a 202 means durable.
    await producer.send({ topic: config.KAFKA_TOPIC, acks: -1, compression: CompressionTypes.GZIP, messages });
  } catch (cause) {
    throw kafkaUnavailable(cause);
  }
  return json(202, { accepted: valid.length, rejected });
}

async function route(event: APIGatewayProxyEventV2, context: Context): Promise<HttpHandlerResult> {
  switch (event.routeKey) {
    case 'POST /v1/events':
      return postEvents(event, context);
    case 'GET /v1/health':
      return json(200, { status: 'ok' });
    default:
      throw new HttpError(404, 'not_found', `no route ${event.routeKey}`);
  }
}

export const handler = middy<APIGatewayProxyEventV2, HttpHandlerResult>().use(httpErrors()).handler(route);
