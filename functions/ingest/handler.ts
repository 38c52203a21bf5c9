import middy from '@middy/core';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { createViewerVerifier } from '../../shared/auth.ts';
import { HttpError } from '../../shared/errors.ts';
import { httpErrors, json, type HttpHandlerResult } from '../../shared/http.ts';
import { createKafka, createProducer } from '../../shared/kafka.ts';
import { config } from './config.ts';
import { enrich, toKafkaMessage } from './messages.ts';
import { filmProgressPayload, parseEvents, readJsonBody } from './parse.ts';
import { createEventProducer, createKafkaProbe } from './produce.ts';

// Created once per container and reused; connected on first use.
const verifyViewer = createViewerVerifier(config);
const kafka = createKafka(config);
const produce = createEventProducer(createProducer(kafka, config), config.KAFKA_TOPIC);
const kafkaReachable = createKafkaProbe(kafka);
const limits = { maxBodyBytes: config.MAX_BODY_BYTES, maxEvents: config.MAX_EVENTS_PER_REQUEST };
// Leave the Lambda this much time to answer 503 before its own timeout.
const answerReserveMs = 500;

async function accept(payload: unknown, event: APIGatewayProxyEventV2, context: Context, userId: string): Promise<HttpHandlerResult> {
  const { valid, rejected } = parseEvents(payload, limits);
  if (valid.length === 0) return json(400, { code: 'no_valid_events', message: 'no event was valid', accepted: 0, rejected });
  const receivedAt = new Date();
  const requestId = event.requestContext.requestId ?? context.awsRequestId;
  const messages = valid.map(({ event: clientEvent }) => toKafkaMessage(enrich(clientEvent, { userId, requestId, receivedAt })));
  const deadline = Math.max(1_000, Math.min(config.PRODUCE_TIMEOUT_MS, context.getRemainingTimeInMillis() - answerReserveMs));
  try {
    await produce(messages, deadline);
  } catch (error) {
    console.error(JSON.stringify({ level: 'error', msg: 'kafka produce failed', requestId, events: messages.length,
      error: String((error as Error).cause ?? error) }));
    throw error;
  }
  return json(202, { accepted: valid.length, rejected });
}

async function route(event: APIGatewayProxyEventV2, context: Context): Promise<HttpHandlerResult> {
  switch (event.routeKey) {
    case 'POST /v1/events': {
      const viewer = await verifyViewer(event.headers.authorization);
      const body = readJsonBody(event.body, event.isBase64Encoded, event.headers['content-type'], limits);
      return accept(body, event, context, viewer.userId);
    }
    case 'POST /v1/films/{film_id}/progress': {
      const viewer = await verifyViewer(event.headers.authorization);
      const body = readJsonBody(event.body, event.isBase64Encoded, event.headers['content-type'], limits);
      return accept(filmProgressPayload(event.pathParameters?.film_id, body), event, context, viewer.userId);
    }
    case 'GET /v1/health':
      return (await kafkaReachable())
        ? json(200, { status: 'ok', kafka: 'reachable' })
        : json(503, { status: 'degraded', code: 'kafka_unavailable', kafka: 'unreachable' }, { 'Retry-After': '5' });
    default:
      throw new HttpError(404, 'not_found', `no route ${event.routeKey}`);
  }
}

export const handler = middy<APIGatewayProxyEventV2, HttpHandlerResult>().use(httpErrors()).handler(route);
