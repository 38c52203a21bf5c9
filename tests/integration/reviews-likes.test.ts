import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signDevToken } from '../../localstack/dev-token.ts';
import { maxReviewTextLength } from '../../shared/events.ts';
import { eventually, settled } from '../setup/context.ts';
import { secret, startPipeline, type Pipeline } from '../reliability/harness.ts';

// Reviews and likes end to end: the ingest handler (JWT, validation, produce to the shared Kafka
// cluster), the event source emulator, the writer, and ClickHouse's views, read back as analysts do.
let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline({ partitions: 3, ingest: true });
  await pipeline.drive(pipeline.topic, undefined, { batchSize: 100, windowSeconds: 0.1 });
}, 120_000);

afterAll(async () => {
  await pipeline?.stop();
}, 60_000);

/** POST /v1/events as `userId`; the answer's status and body. */
async function post(userId: string, events: Record<string, unknown>[]): Promise<{ status: number; body: { accepted?: number; rejected?: { index: number; message: string }[]; code?: string } }> {
  const event = {
    routeKey: 'POST /v1/events', rawPath: '/v1/events', body: JSON.stringify({ events }), isBase64Encoded: false,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${await signDevToken(userId, { secret })}` },
    requestContext: { requestId: randomUUID() },
  } as unknown as APIGatewayProxyEventV2;
  const context = { awsRequestId: randomUUID(), getRemainingTimeInMillis: () => 10_000 } as unknown as Context;
  const res = await pipeline.ingest!(event, context);
  return { status: res.statusCode ?? 0, body: JSON.parse(String(res.body)) };
}

/** A client time `minutesAgo` before now: the event time the views order by. */
const ago = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();

// Texts as viewers write them: emoji (a ZWJ family, a flag, skin tones), right-to-left scripts with
// their marks, combining accents, CJK, and characters JSON and SQL escape.
const texts = {
  emoji: 'Loved it 🎬🍿 👨‍👩‍👧‍👦 🇫🇷 👍🏽 10/10 ❤️',
  arabic: 'فيلم رائع، تمثيل لا يُنسى والموسيقى مذهلة',
  hebrew: '\u202bסרט מצוין! ממליץ בחום\u202c',
  mixed: 'The ending (النهاية) was 完美 — café naïve Ζωή',
  escapes: 'He said "it\'s great"\\n\tnew line\nand a backslash \\ and a NUL-free ; DROP TABLE events; --',
  // At the bound (in code points), every one an emoji: 8,000 UTF-16 units, 16,000 bytes of UTF-8.
  atBound: '🎬'.repeat(maxReviewTextLength),
};

describe('reviews and likes, from the HTTP ingest to ClickHouse', () => {
  it('stores review texts byte for byte (emoji, RTL, a text at the bound) and refuses one over the bound with a 400 that names the field', async () => {
    const film = `film-${randomUUID().slice(0, 8)}`;
    const sent = Object.entries(texts).map(([name, review_text], i) => ({ viewer: `reviewer-${name}-${film}`, review_text, score: i % 2 === 0 ? i + 1 : undefined }));
    for (const { viewer, review_text, score } of sent) {
      const answer = await post(viewer, [{ type: 'review', film_id: film, review_text, ...(score === undefined ? {} : { score }) }]);
      expect(answer, viewer).toMatchObject({ status: 202, body: { accepted: 1, rejected: [] } });
    }
    expect([...texts.atBound]).toHaveLength(maxReviewTextLength);

    // One code point over the bound: refused alone (400), and listed as rejected beside a valid event (202).
    const over = `${texts.atBound}a`;
    const alone = await post(`over-${film}`, [{ type: 'review', film_id: film, review_text: over }]);
    expect(alone.status).toBe(400);
    expect(JSON.stringify(alone.body)).toContain('review_text');
    const beside = await post(`over-${film}`, [{ type: 'like', film_id: film, action: 'like' }, { type: 'review', film_id: film, review_text: over }]);
    expect(beside.status).toBe(202);
    expect(beside.body.accepted).toBe(1);
    expect(beside.body.rejected).toEqual([expect.objectContaining({ index: 1, message: expect.stringContaining('review_text') })]);

    const stored = await eventually(async () => {
      const rows = await pipeline.query<{ user_id: string; review_text: string; score: number | null; bytes: string }>(
        `SELECT user_id, review_text, score, toString(length(review_text)) AS bytes FROM film_reviews_latest FINAL WHERE film_id = {f:String} ORDER BY user_id`, { f: film });
      return rows.length >= sent.length ? rows : undefined;
    }, 60_000, 'the reviews in film_reviews_latest');
    expect(stored.map(({ user_id, review_text, score }) => ({ viewer: user_id, review_text, score })))
      .toEqual(sent.map(({ viewer, review_text, score }) => ({ viewer, review_text, score: score ?? null })).sort((a, b) => a.viewer.localeCompare(b.viewer)));
    // ClickHouse counts bytes: the text at the bound is 16,000 bytes of UTF-8 there, and nothing was cut.
    expect(stored.find((r) => r.review_text === texts.atBound)?.bytes).toBe(String(Buffer.byteLength(texts.atBound)));
    // The raw events hold the same text; the refused review is nowhere.
    const raw = await pipeline.query<{ n: string }>(`SELECT toString(count()) AS n FROM events WHERE film_id = {f:String} AND event_type = 'review'`, { f: film });
    expect(raw[0]!.n).toBe(String(sent.length));
  }, 90_000);

  it('keeps each viewer\'s newest review of a film (by event time, whatever the order of arrival) and counts reviews and current likes per film', async () => {
    const film = `film-${randomUUID().slice(0, 8)}`;
    const [alice, bob, carol, dan] = ['alice', 'bob', 'carol', 'dan'].map((name) => `${name}-${film}`) as [string, string, string, string];
    // Alice's newer review arrives first, her older one after it: the newer one must stay.
    expect((await post(alice, [{ type: 'review', film_id: film, review_text: 'Second thoughts: a masterpiece ✨', score: 10, client_ts: ago(5) }])).status).toBe(202);
    expect((await post(alice, [{ type: 'review', film_id: film, review_text: 'First take: too long', score: 4, client_ts: ago(30) }])).status).toBe(202);
    // Bob reviews twice in order; the second replaces the first.
    expect((await post(bob, [
      { type: 'review', film_id: film, review_text: 'מאכזב', score: 3, client_ts: ago(20) },
      { type: 'review', film_id: film, review_text: 'مقبول', client_ts: ago(10) },
    ])).status).toBe(202);
    // Likes: Carol likes the film; Dan likes it, then unlikes it (arriving in reverse order); Carol and
    // Dan like Alice's review; Bob likes Alice's review, then unlikes it.
    expect((await post(carol, [{ type: 'like', film_id: film, action: 'like', client_ts: ago(9) }, { type: 'like', film_id: film, reviewer_id: alice, action: 'like', client_ts: ago(4) }])).status).toBe(202);
    expect((await post(dan, [{ type: 'like', film_id: film, action: 'unlike', client_ts: ago(2) }])).status).toBe(202);
    expect((await post(dan, [{ type: 'like', film_id: film, action: 'like', client_ts: ago(8) }, { type: 'like', film_id: film, reviewer_id: alice, action: 'like', client_ts: ago(3) }])).status).toBe(202);
    expect((await post(bob, [{ type: 'like', film_id: film, reviewer_id: alice, action: 'like', client_ts: ago(4) }, { type: 'like', film_id: film, reviewer_id: alice, action: 'unlike', client_ts: ago(1) }])).status).toBe(202);

    // 4 reviews and 7 likes sent: wait until the raw events are all in, then read the views.
    await eventually(async () => {
      const rows = await pipeline.query<{ n: string }>(`SELECT toString(count()) AS n FROM events WHERE film_id = {f:String}`, { f: film });
      return rows[0]!.n === '11' ? true : undefined;
    }, 60_000, 'the 11 events of the film');
    // The views' parts are committed after the events part of the same insert, and ClickHouse's own
    // server runs requests side by side: a view is read until it shows what is expected, or 20 s.
    const expectedReviews = [
      { user_id: alice, review_text: 'Second thoughts: a masterpiece ✨', score: 10 },
      { user_id: bob, review_text: 'مقبول', score: null },
    ];
    expect(await settled(() => pipeline.query<{ user_id: string; review_text: string; score: number | null }>(
      'SELECT user_id, review_text, score FROM film_reviews_latest FINAL WHERE film_id = {f:String} ORDER BY user_id', { f: film }), expectedReviews)).toEqual(expectedReviews);
    const expectedLikes = [
      { user_id: carol, reviewer_id: '', liked: 1 },
      { user_id: dan, reviewer_id: '', liked: 0 },
      { user_id: bob, reviewer_id: alice, liked: 0 },
      { user_id: carol, reviewer_id: alice, liked: 1 },
      { user_id: dan, reviewer_id: alice, liked: 1 },
    ];
    expect(await settled(() => pipeline.query<{ user_id: string; reviewer_id: string; liked: number }>(
      'SELECT user_id, reviewer_id, liked FROM film_likes_latest FINAL WHERE film_id = {f:String} ORDER BY reviewer_id, user_id', { f: film }), expectedLikes)).toEqual(expectedLikes);
    const counts = await pipeline.query<Record<string, unknown>>(
      'SELECT film_id, toString(reviews) AS reviews, avg_review_score, toString(film_likes) AS film_likes, toString(review_likes) AS review_likes FROM film_review_counts_v WHERE film_id = {f:String}', { f: film });
    // Two current reviews (Bob's newest has no score: the average is Alice's 10), one current like of the film, two of Alice's review.
    expect(counts).toEqual([{ film_id: film, reviews: '2', avg_review_score: 10, film_likes: '1', review_likes: '2' }]);
  }, 90_000);
});
