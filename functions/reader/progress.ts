import type { ClickHouseClient } from '@clickhouse/client';
import { HttpError } from '../../shared/errors.ts';
import type { FilmProgress } from '../../shared/api.ts';
import { filmProgressQuery, recentProgressQuery, toFilmProgress, type BoundQuery, type FilmProgressRow } from './queries.ts';

/** Raised when ClickHouse did not answer: the viewer may retry, so 503 rather than 500. */
export function clickHouseUnavailable(cause: unknown): HttpError {
  return new HttpError(503, 'clickhouse_unavailable', 'progress could not be read; retry later', { 'Retry-After': '1' }, { cause });
}

/**
 * Reads viewers' positions with one bound query each. `clickhouse` may be a getter, so a password
 * read from a secret store on first use (and its failure) happens inside the 503 guard.
 */
export function createProgressReader(clickhouse: ClickHouseClient | ((() => Promise<ClickHouseClient>) & { rejected?(error: unknown): void })) {
  async function rows(bound: BoundQuery): Promise<FilmProgressRow[]> {
    try {
      const client = typeof clickhouse === 'function' ? await clickhouse() : clickhouse;
      const result = await client.query({ ...bound, format: 'JSONEachRow' });
      return await result.json<FilmProgressRow>();
    } catch (cause) {
      if (typeof clickhouse === 'function') clickhouse.rejected?.(cause);
      throw clickHouseUnavailable(cause);
    }
  }
  return {
    /** The viewer's latest position in one film, or undefined if they never watched it. */
    async filmProgress(userId: string, filmId: string): Promise<FilmProgress | undefined> {
      const [row] = await rows(filmProgressQuery(userId, filmId));
      return row ? toFilmProgress(row) : undefined;
    },
    /** The viewer's most recently watched films, newest first. */
    async recentProgress(userId: string, limit: number): Promise<FilmProgress[]> {
      return (await rows(recentProgressQuery(userId, limit))).map(toFilmProgress);
    },
  };
}

export type ProgressReader = ReturnType<typeof createProgressReader>;
