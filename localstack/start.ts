// `npm start`: the whole pipeline on this machine. Embedded Kafka + ClickHouse unless
// KAFKA_BROKERS / CLICKHOUSE_URL point elsewhere, migrations, then `serverless offline start`.
import { startLocalStack } from './stack.ts';
import { assertOfflinePortsFree, startOffline } from './offline.ts';
import { PortInUseError } from './errors.ts';
import defaultPorts from './ports.json';
import { devJwtSecret, signDevToken } from './dev-token.ts';
import { startDemoServer, type DemoServer } from './demo/server.ts';
import { startPipeline } from './pipeline/collector.ts';
import { createLogger } from '../shared/telemetry.ts';

// The defaults live in ports.json, which serverless.yml and the event source plugin read too.
const httpPort = Number(process.env.HTTP_PORT ?? defaultPorts.http);
const lambdaPort = Number(process.env.LAMBDA_PORT ?? defaultPorts.lambda);
const demoPort = Number(process.env.DEMO_PORT ?? defaultPorts.demo);
// At info whatever POWERTOOLS_LOG_LEVEL says (that is for the functions): a person watches these lines.
const log = createLogger('local-stack', 'INFO');

// Ctrl-C while the stack starts (a first start downloads and formats): exit through the 'exit'
// hooks, which stop the brokers and ClickHouse already started. Replaced by shutdown() once up.
const exitWhileStarting = () => process.exit(130);
process.once('SIGINT', exitWhileStarting);
process.once('SIGTERM', exitWhileStarting);
// A taken HTTP or Lambda port is said before the brokers start, not a minute later.
await assertOfflinePortsFree(httpPort, lambdaPort).catch((error: unknown) => {
  console.error(`npm start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
const stack = await startLocalStack({ onProgress: (msg) => log.info(msg) }).catch((error: unknown) => {
  // An expected failure (no Java, a port taken, a data directory in use) is one line, not a trace.
  console.error(`npm start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
log.info('local stack ready', { ...stack.env, embeddedKafka: Boolean(stack.broker), embeddedClickHouse: Boolean(stack.clickhouse) });

const jwtSecret = process.env.JWT_SECRET || devJwtSecret;
// The live view of the pipeline (/pipeline beside the demo) and a status line while traffic flows.
const pipeline = await startPipeline({ env: { ...process.env, ...stack.env }, print: (line) => console.log(line) });
let offline: Awaited<ReturnType<typeof startOffline>> | undefined;
let demo: DemoServer | undefined;
let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info('stopping', { signal });
  await demo?.stop();
  await pipeline.stop();
  await offline?.stop();
  await stopStackPromptly();
  process.exit(0);
}
/**
 * stack.stop(), with the brokers killed past a short grace: the last KRaft controller to stop waits
 * about 5 s for a quorum that is leaving with it. A broker killed then loses nothing acknowledged
 * (its writes are in the page cache; the next start recovers its logs: stack-kill.test.ts).
 */
async function stopStackPromptly(graceMs = 3_000): Promise<void> {
  const stopped = stack.stop();
  const grace = setTimeout(() => {
    for (const id of stack.broker?.brokerIds ?? []) void stack.broker!.kill(id).catch(() => {});
  }, graceMs);
  await stopped;
  clearTimeout(grace);
}
process.off('SIGINT', exitWhileStarting);
process.off('SIGTERM', exitWhileStarting);
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));

try {
  offline = await startOffline({ env: { ...stack.env, JWT_SECRET: jwtSecret, ...pipeline.offlineEnv }, httpPort, lambdaPort, stdio: 'inherit' });
} catch (error) {
  // A port taken meanwhile is one line; anything else keeps serverless offline's output.
  console.error(error instanceof PortInUseError ? `npm start: ${error.message}` : String(error));
  await stopStackPromptly();
  process.exit(1);
}
offline.process.once('exit', (code) => {
  if (!stopping) void stopStackPromptly().then(() => process.exit(code ?? 1));
});

// The demo player (local only: it mints dev tokens for its viewers with the same secret).
try {
  demo = await startDemoServer({
    port: demoPort, apiUrl: offline.url, jwtSecret,
    jwtIssuer: process.env.JWT_ISSUER || undefined, jwtAudience: process.env.JWT_AUDIENCE || undefined,
    pipeline: pipeline.view,
  });
} catch (error) {
  // The pipeline works without it; say why the demo is missing (usually DEMO_PORT in use).
  log.warn('demo server not started', { port: demoPort, error: String(error) });
}

const token = await signDevToken('viewer-1', { secret: jwtSecret });
console.log(`
ugc-ingest is running.
  API:        ${offline.url}/v1/events
  Demo:       ${demo?.url ?? 'not started'}  (a player that reports progress through the browser SDK)
  Pipeline:   ${demo?.pipelineUrl ?? 'not started'}  (live charts: requests, Kafka, writer lag, rows, freshness)
  ClickHouse: ${stack.env.CLICKHOUSE_URL} (database ${stack.env.CLICKHOUSE_DATABASE})
  Kafka:      ${stack.env.KAFKA_BROKERS}

Try it (a dev token for viewer-1, valid 24 h):
  curl -i -X POST ${offline.url}/v1/events \\
    -H 'content-type: application/json' -H 'authorization: Bearer ${token}' \\
    -d '{"type":"film_progress","film_id":"tt0111161","position_s":120,"duration_s":8520}'
  curl '${stack.env.CLICKHOUSE_URL}/?database=${stack.env.CLICKHOUSE_DATABASE}' --data-binary 'SELECT event_type, user_id, film_id, position_s FROM events FORMAT PrettyCompact'

Ctrl-C stops everything.
`);
