import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HttpError } from '../../shared/errors.ts';
import { filmProgressQuery, parseFilmId, parseLimit, recentProgressQuery, toFilmProgress } from '../../functions/reader/queries.ts';

const bounds = { defaultLimit: 20, maxLimit: 100 };
const codeOf = (fn: () => unknown) => {
  try { fn(); } catch (error) { return error instanceof HttpError ? `${error.statusCode} ${error.code}` : String(error); }
  return 'no error';
};

describe('reader: request parsing', () => {
  it('limit: absent means the default; 1..100 accepted; anything else is 400 invalid_limit', () => {
    expect(parseLimit(undefined, bounds)).toBe(20);
    expect(parseLimit('1', bounds)).toBe(1);
    expect(parseLimit('100', bounds)).toBe(100);
    for (const bad of ['', '0', '101', '-1', '1.5', '1e2', 'ten', '5,6', ' 5', '9999999999', '0x10']) {
      expect(codeOf(() => parseLimit(bad, bounds)), bad).toBe('400 invalid_limit');
    }
  });

  it('limit: any string either parses into 1..100 or is refused with 400, never anything else', () => {
    fc.assert(fc.property(fc.string(), (raw) => {
      let limit: number | undefined;
      try { limit = parseLimit(raw, bounds); } catch (error) {
        expect(error).toBeInstanceOf(HttpError);
        expect((error as HttpError).statusCode).toBe(400);
        return;
      }
      expect(Number.isInteger(limit) && limit >= 1 && limit <= 100).toBe(true);
    }));
  });

  it('film_id: as API Gateway hands it over (already decoded, never decoded again), 1..64 characters', () => {
    expect(parseFilmId('tt0111161')).toBe('tt0111161');
    expect(parseFilmId("a b';")).toBe("a b';");
    expect(parseFilmId('a%41b')).toBe('a%41b');
    expect(parseFilmId('50%off')).toBe('50%off');
    expect(codeOf(() => parseFilmId(undefined))).toBe('400 invalid_film_id');
    expect(codeOf(() => parseFilmId(''))).toBe('400 invalid_film_id');
    expect(codeOf(() => parseFilmId('x'.repeat(65)))).toBe('400 invalid_film_id');
    // The registry's film_id, which the ingest checks: code points, whole Unicode text.
    expect(parseFilmId('\u{1f3ac}'.repeat(64))).toBe('\u{1f3ac}'.repeat(64));
    expect(codeOf(() => parseFilmId('a\ud800'))).toBe('400 invalid_film_id');
  });
});

describe('reader: queries', () => {
  it('binds the user, film and limit as query parameters; no value ever enters the SQL text', () => {
    fc.assert(fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), fc.integer({ min: 1, max: 100 }), (user, film, limit) => {
      const one = filmProgressQuery(user, film);
      const recent = recentProgressQuery(user, limit);
      expect(one.query).toBe(filmProgressQuery('u', 'f').query);
      expect(recent.query).toBe(recentProgressQuery('u', 1).query);
      expect(one.query_params).toEqual({ u: user, f: film });
      expect(recent.query_params).toEqual({ u: user, limit });
    }));
    expect(filmProgressQuery('u', 'f').query).toMatch(/FROM film_progress_latest FINAL WHERE user_id = \{u:String\} AND film_id = \{f:String\}/);
    expect(recentProgressQuery('u', 1).query).toMatch(/ORDER BY occurred_at DESC.*LIMIT \{limit:UInt32\}$/);
  });

  it('maps a row to the API shape: numbers, null duration kept, event time as ISO 8601', () => {
    expect(toFilmProgress({ film_id: 'f', position_s: 61, duration_s: null, updated_at_ms: '1704067205000' }))
      .toEqual({ film_id: 'f', position_s: 61, duration_s: null, updated_at: '2024-01-01T00:00:05.000Z' });
    expect(toFilmProgress({ film_id: 'f', position_s: 1, duration_s: 90, updated_at_ms: 1704067205123 }).updated_at).toBe('2024-01-01T00:00:05.123Z');
  });
});
