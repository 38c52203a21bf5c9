// The HTTP answers serverless offline sends, counted by route and status where they are sent:
// in its own process, from Node's `http.server.response.finish` diagnostics channel (every answer
// of its HTTP server, whatever runs the handler: worker threads, in-process, and its own 502s and
// 504s). The counts go to the `npm start` process as cumulative JSON datagrams over loopback UDP.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createSocket } from 'node:dgram';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The variable that tells serverless offline's process where to send its counts ("127.0.0.1:port"). */
export const httpAnswersTarget = 'PIPELINE_HTTP_ANSWERS_UDP';

/** Answers of each route (API Gateway's route key, "POST /v1/events") by status code, since the process started. */
export type AnswerCounts = Record<string, Record<string, number>>;

/** An HTTP route of a function, matched against what the server was asked. */
export interface RouteMatcher { routeKey: string; method: string; path: RegExp }

/** A function's httpApi events in serverless.yml (`'POST /v1/events'`, `{ method, path }`) as route keys. */
export function httpRoutes(fn: { events?: readonly unknown[] }): string[] {
  const routes: string[] = [];
  for (const event of fn.events ?? []) {
    const spec = (event as { httpApi?: unknown }).httpApi;
    if (spec === '*') routes.push('* /{proxy+}');
    else if (typeof spec === 'string') routes.push(spec.trim().replace(/\s+/, ' '));
    else if (spec && typeof spec === 'object' && typeof (spec as { path?: unknown }).path === 'string') {
      const { method, path } = spec as { method?: string; path: string };
      routes.push(`${(method ?? '*').toUpperCase()} ${path}`);
    }
  }
  return routes;
}

/** Every function's httpApi routes → matchers. */
export function routeMatchers(functions: Record<string, { events?: readonly unknown[] }>): RouteMatcher[] {
  const matchers: RouteMatcher[] = [];
  for (const fn of Object.values(functions)) {
    for (const routeKey of httpRoutes(fn)) {
      const [method, path] = routeKey.split(' ', 2) as [string, string];
      // {name} is one path segment, {name+} the rest of the path.
      const pattern = path.split(/(\{[^}]+\})/).map((part) => {
        if (/^\{[^}]+\+\}$/.test(part)) return '.+';
        if (/^\{[^}]+\}$/.test(part)) return '[^/]+';
        return part.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
      }).join('');
      matchers.push({ routeKey, method: method.toUpperCase(), path: new RegExp(`^${pattern}$`) });
    }
  }
  return matchers;
}

/** The route a request went to, or undefined (a preflight, the Lambda API, an unknown path). */
export function routeOf(matchers: readonly RouteMatcher[], method: string, url: string): RouteMatcher | undefined {
  const path = url.split('?', 1)[0]!;
  return matchers.find((m) => (m.method === '*' || m.method === method.toUpperCase()) && m.path.test(path));
}

/** Adds one answer to the counts. */
export function countAnswer(counts: AnswerCounts, routeKey: string, status: number): void {
  const byStatus = (counts[routeKey] ??= {});
  byStatus[status] = (byStatus[status] ?? 0) + 1;
}

/** The answers of some routes, added up by status code. */
export function answersOf(counts: AnswerCounts, routeKeys: readonly string[]): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const routeKey of routeKeys) {
    for (const [status, n] of Object.entries(counts[routeKey] ?? {})) sums[status] = (sums[status] ?? 0) + n;
  }
  return sums;
}

/** A datagram → counts, or undefined if it is not one of ours. */
export function parseAnswerCounts(message: string): AnswerCounts | undefined {
  try {
    const parsed = JSON.parse(message) as { answers?: unknown };
    const answers = parsed.answers;
    if (!answers || typeof answers !== 'object') return undefined;
    for (const byStatus of Object.values(answers)) {
      if (!byStatus || typeof byStatus !== 'object' || !Object.values(byStatus).every((n) => Number.isInteger(n) && (n as number) >= 0)) return undefined;
    }
    return answers as AnswerCounts;
  } catch {
    return undefined;
  }
}

interface ResponseFinish { request: IncomingMessage; response: ServerResponse }

/**
 * In serverless offline's process: counts every answer of a function's route and sends the totals
 * to `target` ("host:port") once a second when they changed. stop() ends both.
 */
export function reportHttpAnswers(target: string, matchers: readonly RouteMatcher[], everyMs = 1000): { stop(): void } {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const counts: AnswerCounts = {};
  let changed = false;
  const onFinish = (message: unknown) => {
    const { request, response } = message as ResponseFinish;
    const route = routeOf(matchers, request.method ?? '', request.url ?? '');
    if (!route) return;
    countAnswer(counts, route.routeKey, response.statusCode);
    changed = true;
  };
  subscribe('http.server.response.finish', onFinish);
  const socket = createSocket('udp4');
  socket.unref();
  socket.on('error', () => { /* the npm start process is gone or busy: the next send tries again */ });
  const timer = setInterval(() => {
    if (!changed) return;
    changed = false;
    socket.send(JSON.stringify({ answers: counts }), port, host);
  }, everyMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      unsubscribe('http.server.response.finish', onFinish);
      socket.close();
    },
  };
}

/** In the `npm start` process: the latest counts serverless offline sent. */
export interface HttpAnswersListener {
  /** For serverless offline's environment: `{ PIPELINE_HTTP_ANSWERS_UDP: "127.0.0.1:port" }`. */
  readonly env: Record<string, string>;
  latest(): AnswerCounts | undefined;
  close(): Promise<void>;
}

/** Listens on a free loopback UDP port for {@link reportHttpAnswers}' datagrams. */
export async function listenForHttpAnswers(): Promise<HttpAnswersListener> {
  const socket = createSocket('udp4');
  let latest: AnswerCounts | undefined;
  socket.on('message', (message) => { latest = parseAnswerCounts(message.toString('utf8')) ?? latest; });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => resolve());
  });
  socket.unref();
  const { port } = socket.address() as AddressInfo;
  return {
    env: { [httpAnswersTarget]: `127.0.0.1:${port}` },
    latest: () => latest,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
