// `npm start`: the whole pipeline on this machine. Embedded Kafka + ClickHouse unless
// KAFKA_BROKERS / CLICKHOUSE_URL point elsewhere, migrations, then `serverless offline start`.
import { startLocalStack } from './stack.ts';
import { startOffline } from './offline.ts';
import { devJwtSecret, signDevToken } from './dev-token.ts';
import { startDemoServer, type DemoServer } from './demo/server.ts';

const httpPort = Number(process.env.HTTP_PORT ?? 3000);
const lambdaPort = Number(process.env.LAMBDA_PORT ?? 3002);
const demoPort = Number(process.env.DEMO_PORT ?? 3001);
const log = (msg: string, fields: Record<string, unknown> = {}) => console.log(JSON.stringify({ level: 'info', msg, ...fields }));

const stack = await startLocalStack();
log('local stack ready', { ...stack.env, embeddedKafka: Boolean(stack.broker), embeddedClickHouse: Boolean(stack.clickhouse) });

const jwtSecret = process.env.JWT_SECRET || devJwtSecret;
let offline: Awaited<ReturnType<typeof startOffline>> | undefined;
let demo: DemoServer | undefined;
let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log('stopping', { signal });
  await demo?.stop();
  await offline?.stop();
  await stack.stop();
  process.exit(0);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));

try {
  offline = await startOffline({ env: { ...stack.env, JWT_SECRET: jwtSecret }, httpPort, lambdaPort, stdio: 'inherit' });
} catch (error) {
  console.error(String(error));
  await stack.stop();
  process.exit(1);
}
offline.process.once('exit', (code) => {
  if (!stopping) void stack.stop().then(() => process.exit(code ?? 1));
});

// The demo player (local only: it mints dev tokens for its viewers with the same secret).
try {
  demo = await startDemoServer({
    port: demoPort, apiUrl: offline.url, jwtSecret,
    jwtIssuer: process.env.JWT_ISSUER || undefined, jwtAudience: process.env.JWT_AUDIENCE || undefined,
  });
} catch (error) {
  // The pipeline works without it; say why the demo is missing (usually DEMO_PORT in use).
  console.error(JSON.stringify({ level: 'warn', msg: 'demo server not started', port: demoPort, error: String(error) }));
}

const token = await signDevToken('viewer-1', { secret: jwtSecret });
console.log(`
ugc-ingest is running.
  API:        ${offline.url}/v1/events
  Demo:       ${demo?.url ?? 'not started'}  (a player that reports progress through the browser SDK)
  ClickHouse: ${stack.env.CLICKHOUSE_URL} (database ${stack.env.CLICKHOUSE_DATABASE})
  Kafka:      ${stack.env.KAFKA_BROKERS}

Try it (a dev token for viewer-1, valid 24 h):
  curl -i -X POST ${offline.url}/v1/events \\
    -H 'content-type: application/json' -H 'authorization: Bearer ${token}' \\
    -d '{"type":"film_progress","film_id":"tt0111161","position_s":120,"duration_s":8520}'
  curl '${stack.env.CLICKHOUSE_URL}/?database=${stack.env.CLICKHOUSE_DATABASE}' --data-binary 'SELECT event_type, user_id, film_id, position_s FROM events FORMAT PrettyCompact'

Ctrl-C stops everything.
`);
