import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { cacheControl } from '../../shared/api.ts';
import { createConfiguredViewerVerifier, unauthorized, type Viewer } from '../../shared/auth.ts';
import { HttpError } from '../../shared/errors.ts';
import { httpFunction, json, type HttpHandlerResult } from '../../shared/http.ts';
import { createKafka, createProducer, createSender, eventCompression } from '../../shared/kafka.ts';
import { buildOpenApiDocument, renderDocsPage } from '../../shared/openapi.ts';
import { countByCode, logger, metricNames, metrics, MetricUnit } from '../../shared/telemetry.ts';
import { config } from './config.ts';
import { enrich, toKafkaMessage } from './messages.ts';
import { filmProgressPayload, isPlainText, parseEvents, readJsonBody, takeBodyToken } from './parse.ts';
import { createEventProducer, createKafkaProbe } from './produce.ts';

// Created once per container and reused; connected on first use.
const verifyViewer = createConfiguredViewerVerifier(config);
const kafka = createKafka(config);
const produce = createEventProducer(createSender(() => createProducer(kafka, config), { compression: eventCompression }), config.KAFKA_TOPIC);
const kafkaReachable = createKafkaProbe(kafka);
const limits = { maxBodyBytes: config.MAX_BODY_BYTES, maxEvents: config.MAX_EVENTS_PER_REQUEST };
const openApiDocument = buildOpenApiDocument({ maxEventsPerRequest: config.MAX_EVENTS_PER_REQUEST, maxBodyBytes: config.MAX_BODY_BYTES });
const openApiJson = JSON.stringify(openApiDocument);
const docsPage = renderDocsPage(openApiDocument);
// Leave the Lambda this much time to answer 503 before its own timeout.
const answerReserveMs = 500;

async function accept(payload: unknown, event: APIGatewayProxyEventV2, context: Context, userId: string): Promise<HttpHandlerResult> {
  const { valid, rejected } = parseEvents(payload, limits);
  if (rejected.length > 0) countByCode(metricNames.eventsRejected, countCodes(rejected));
  if (valid.length === 0) return json(400, { code: 'no_valid_events', message: 'no event was valid', accepted: 0, rejected });
  const receivedAt = new Date();
  const requestId = event.requestContext.requestId ?? context.awsRequestId;
  const messages = valid.map(({ event: clientEvent }) => toKafkaMessage(enrich(clientEvent, { userId, requestId, receivedAt })));
  const deadline = Math.max(1_000, Math.min(config.PRODUCE_TIMEOUT_MS, context.getRemainingTimeInMillis() - answerReserveMs));
  const started = performance.now();
  try {
    await produce(messages, deadline);
  } catch (error) {
    logger.error('kafka produce failed', { events: messages.length, error: String((error as Error).cause ?? error) });
    throw error;
  }
  metrics.addMetric(metricNames.produceLatency, MetricUnit.Milliseconds, performance.now() - started);
  metrics.addMetric(metricNames.eventsAccepted, MetricUnit.Count, valid.length);
  // On the request's one access log line (shared/telemetry.ts), not a line of its own: a log line costs ~5% of a request's CPU.
  logger.appendKeys({ userId, accepted: valid.length, rejected: rejected.length });
  return json(202, { accepted: valid.length, rejected });
}

function countCodes(rejected: { code: string }[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { code } of rejected) counts.set(code, (counts.get(code) ?? 0) + 1);
  return counts;
}

const conflictingTokens = () => new HttpError(400, 'conflicting_tokens', 'send the token in the Authorization header or in the body, not both');

/**
 * The viewer and events of POST /v1/events, in one of two forms. The header form: a Bearer token
 * and a JSON body. The unload form: `Content-Type: text/plain` with `{ token, events }`, a
 * CORS-simple request that navigator.sendBeacon (or fetch keepalive without custom headers) can
 * send on page hide with no preflight. Both tokens go through the one verifier, so the same
 * checks (signature, alg, iss, aud, exp, nbf) apply. A request with both tokens is refused: it is
 * a client bug, and guessing which viewer it meant could file events under the wrong one.
 */
async function eventsRequest(event: APIGatewayProxyEventV2): Promise<{ viewer: Viewer; payload: unknown }> {
  const { authorization } = event.headers;
  const unloadForm = isPlainText(event.headers['content-type']);
  // The header form answers 401 for a bad token before it looks at the body.
  const headerViewer = unloadForm ? undefined : await verifyViewer(authorization);
  const { token, payload } = takeBodyToken(readJsonBody(event.body, event.isBase64Encoded, event.headers['content-type'], limits, { contentEncoding: event.headers['content-encoding'], allowPlainText: unloadForm }));
  if (headerViewer) {
    if (token !== undefined) throw conflictingTokens();
    return { viewer: headerViewer, payload };
  }
  if (token !== undefined && authorization !== undefined) throw conflictingTokens();
  // text/plain is the unload form only: a header-token request says its JSON is application/json.
  if (token === undefined && authorization !== undefined) throw new HttpError(415, 'unsupported_media_type', 'Content-Type must be application/json; text/plain carries the token in the body');
  if (token === undefined) throw unauthorized('missing_token', 'a token is required: an Authorization: Bearer header, or "token" in a text/plain body');
  if (typeof token !== 'string') throw unauthorized('invalid_token', 'the token is malformed');
  return { viewer: await verifyViewer(`Bearer ${token}`), payload };
}

async function route(event: APIGatewayProxyEventV2, context: Context): Promise<HttpHandlerResult> {
  switch (event.routeKey) {
    case 'POST /v1/events': {
      const { viewer, payload } = await eventsRequest(event);
      return accept(payload, event, context, viewer.userId);
    }
    case 'POST /v1/films/{film_id}/progress': {
      const viewer = await verifyViewer(event.headers.authorization);
      const body = readJsonBody(event.body, event.isBase64Encoded, event.headers['content-type'], limits, { contentEncoding: event.headers['content-encoding'] });
      return accept(filmProgressPayload(event.pathParameters?.film_id, body), event, context, viewer.userId);
    }
    case 'GET /v1/health':
      return (await kafkaReachable())
        ? json(200, { status: 'ok', kafka: 'reachable' })
        : json(503, { status: 'degraded', code: 'kafka_unavailable', kafka: 'unreachable' }, { 'Retry-After': '5' });
    case 'GET /v1/openapi.json':
      return { statusCode: 200, headers: { 'content-type': 'application/json', 'cache-control': cacheControl.document }, body: openApiJson };
    case 'GET /v1/docs':
      return { statusCode: 200, headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': cacheControl.document }, body: docsPage };
    default:
      throw new HttpError(404, 'not_found', `no route ${event.routeKey}`);
  }
}

export const handler = httpFunction(route);
