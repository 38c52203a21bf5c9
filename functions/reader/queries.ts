import type { FilmProgress } from '../../shared/api.ts';
import { HttpError } from '../../shared/errors.ts';
import { filmId as filmIdText, maxFilmIdLength } from '../../shared/events.ts';

/** A row of `film_progress_latest` as the queries below select it. */
export interface FilmProgressRow {
  film_id: string;
  position_s: number;
  duration_s: number | null;
  // UInt64/Int64 may arrive quoted, depending on output_format_json_quote_64bit_integers.
  updated_at_ms: number | string;
}

/** A parameterised query: values travel as `query_params`, never inside the SQL text. */
export interface BoundQuery { query: string; query_params: Record<string, string | number> }

export interface LimitBounds { defaultLimit: number; maxLimit: number }

// FINAL: ReplacingMergeTree(occurred_at) keeps the newest position per (user_id, film_id) only
// after merges; FINAL applies that rule at read time. The WHERE uses the sorting key's prefix.
const columns = 'film_id, position_s, duration_s, toUnixTimestamp64Milli(occurred_at) AS updated_at_ms';

/** The latest position of one viewer in one film. */
export function filmProgressQuery(userId: string, filmId: string): BoundQuery {
  return {
    query: `SELECT ${columns} FROM film_progress_latest FINAL WHERE user_id = {u:String} AND film_id = {f:String} LIMIT 1`,
    query_params: { u: userId, f: filmId },
  };
}

/** One viewer's films, the most recently watched first. */
export function recentProgressQuery(userId: string, limit: number): BoundQuery {
  return {
    query: `SELECT ${columns} FROM film_progress_latest FINAL WHERE user_id = {u:String} ORDER BY occurred_at DESC, film_id LIMIT {limit:UInt32}`,
    query_params: { u: userId, limit },
  };
}

/** The `{film_id}` path parameter, as API Gateway hands it over (decoded), checked like the ingest checks it. */
export function parseFilmId(raw: string | undefined): string {
  const filmId = raw ?? '';
  if (!filmIdText.safeParse(filmId).success) {
    throw new HttpError(400, 'invalid_film_id', `film_id must be 1 to ${maxFilmIdLength} characters of Unicode text`);
  }
  return filmId;
}

/** `?limit=N`: an integer in 1..maxLimit; absent means the default. `limit=` is not an integer (the document's word). */
export function parseLimit(raw: string | undefined, { defaultLimit, maxLimit }: LimitBounds): number {
  if (raw === undefined) return Math.min(defaultLimit, maxLimit);
  if (!/^\d{1,6}$/.test(raw)) throw new HttpError(400, 'invalid_limit', `limit must be an integer from 1 to ${maxLimit}`);
  const limit = Number(raw);
  if (limit < 1 || limit > maxLimit) throw new HttpError(400, 'invalid_limit', `limit must be an integer from 1 to ${maxLimit}`);
  return limit;
}

/** A ClickHouse row as the API shape. */
export function toFilmProgress(row: FilmProgressRow): FilmProgress {
  return {
    film_id: row.film_id,
    position_s: Number(row.position_s),
    duration_s: row.duration_s === null ? null : Number(row.duration_s),
    updated_at: new Date(Number(row.updated_at_ms)).toISOString(),
  };
}

/** The answer when a viewer has no position in a film. */
export function progressNotFound(filmId: string): HttpError {
  return new HttpError(404, 'progress_not_found', `no progress for film ${JSON.stringify(filmId)}`);
}
