import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { cacheControl } from '../../shared/api.ts';
import { createConfiguredViewerVerifier } from '../../shared/auth.ts';
import { HttpError } from '../../shared/errors.ts';
import { httpFunction, json, type HttpHandlerResult } from '../../shared/http.ts';
import { clickHouseWithStoredPassword } from '../../shared/clickhouse.ts';
import { config } from './config.ts';
import { createProgressReader } from './progress.ts';
import { parseFilmId, parseLimit, progressNotFound } from './queries.ts';

// Created once per container and reused; secrets (JWT key, ClickHouse password) read on first use.
const verifyViewer = createConfiguredViewerVerifier(config);
const reader = createProgressReader(clickHouseWithStoredPassword(config));
const limits = { defaultLimit: config.READ_DEFAULT_LIMIT, maxLimit: config.READ_MAX_LIMIT };
// A viewer's own data: never cached by a shared cache, always fresh for "continue from".
const privateAnswer = { 'Cache-Control': cacheControl.viewerData };

async function route(event: APIGatewayProxyEventV2): Promise<HttpHandlerResult> {
  switch (event.routeKey) {
    case 'GET /v1/films/{film_id}/progress': {
      const viewer = await verifyViewer(event.headers.authorization);
      const filmId = parseFilmId(event.pathParameters?.film_id);
      const progress = await reader.filmProgress(viewer.userId, filmId);
      if (!progress) throw progressNotFound(filmId);
      return json(200, progress, privateAnswer);
    }
    case 'GET /v1/progress': {
      const viewer = await verifyViewer(event.headers.authorization);
      const limit = parseLimit(event.queryStringParameters?.limit, limits);
      return json(200, { items: await reader.recentProgress(viewer.userId, limit), limit }, privateAnswer);
    }
    default:
      throw new HttpError(404, 'not_found', `no route ${event.routeKey}`);
  }
}

export const handler = httpFunction(route);
