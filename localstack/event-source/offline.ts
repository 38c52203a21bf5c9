/**
 * Runs every planned event source mapping against serverless-offline's Lambda endpoint.
 * Loaded (bundled by plugins/import-ts.js) by plugins/offline-event-source.js; usable on its own from TypeScript too.
 */
import { eventSourceLogger, KafkaEventSource, type EventSourceLogLevel } from './kafka-event-source.ts';
import { createLambdaInvoker, waitForPort } from './lambda-invoke.ts';
import { planEventSources, type ServiceDescription } from './offline-config.ts';

export interface OfflineEventSourcesOptions {
  description: ServiceDescription;
  env: Record<string, string | undefined>;
  /** serverless-offline's Lambda API, e.g. http://localhost:3002 */
  lambdaHost: string;
  lambdaPort: number;
  /** How long to wait for serverless-offline's Lambda port before giving up. Default 120 s. */
  readyTimeoutMs?: number;
}

export interface OfflineEventSources {
  readonly sources: readonly KafkaEventSource[];
  /** Stops every mapping (each waits for its invoke in flight). */
  stop(): Promise<void>;
}

/** Starts one KafkaEventSource per `msk` / `kafka` event once the Lambda port answers. */
export async function startOfflineEventSources(options: OfflineEventSourcesOptions): Promise<OfflineEventSources> {
  const { sources: planned, notes } = planEventSources(options.description, options.env);
  const settings = options.description.custom?.kafkaEventSource as { logLevel?: EventSourceLogLevel } | undefined;
  const logger = eventSourceLogger(settings?.logLevel ?? 'info');
  for (const note of notes) logger('warn', note, {});

  const started: KafkaEventSource[] = [];
  let stopping = false;
  const stop = async (): Promise<void> => {
    stopping = true;
    await Promise.allSettled(started.map((s) => s.stop()));
  };
  if (planned.length === 0) return { sources: started, stop };

  await waitForPort(options.lambdaHost, options.lambdaPort, options.readyTimeoutMs ?? 120_000, () => stopping);
  const endpoint = `http://${options.lambdaHost}:${options.lambdaPort}`;
  const sources = planned.map(
    (plan) =>
      new KafkaEventSource({
        ...plan.config,
        invoke: createLambdaInvoker({ endpoint, functionName: plan.functionName }),
        logger,
      }),
  );
  started.push(...sources);
  // In parallel: each start() waits for its group's first join.
  const results = await Promise.allSettled(sources.map((s) => s.start()));
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) {
    await stop();
    throw failure.reason;
  }
  return { sources: started, stop };
}
