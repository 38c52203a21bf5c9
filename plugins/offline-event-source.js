/**
 * osls (Serverless Framework v3) plugin: under `serverless offline`, does what AWS's Kafka event
 * source mapping does for every function's `msk` and `kafka` events (see kafka-event-source.ts).
 *
 *   plugins:
 *     - serverless-offline
 *     - ./plugins/offline-event-source
 *
 * Plain JavaScript (osls loads plugins with require/import, no TypeScript); the work is done by
 * localstack/event-source/offline.ts, bundled and loaded when offline starts (import-ts.js), so `serverless package`
 * never touches it.
 */

import { readFileSync } from 'node:fs';

// Read, not imported: JSON import attributes need Node 20.10, and engines says 20.
const defaultPorts = JSON.parse(readFileSync(new URL('../localstack/ports.json', import.meta.url), 'utf8'));

const logPrefix = 'kafka-event-source';

export default class KafkaEventSourcePlugin {
  /** @type {{ stop(): Promise<void> } | undefined} */
  #running;
  /** @type {Promise<void> | undefined} */
  #starting;
  /** @type {Promise<void> | undefined} */
  #stopping;

  constructor(serverless, cliOptions = {}, utils = {}) {
    this.serverless = serverless;
    this.cliOptions = cliOptions;
    this.log = utils.log;
    this.hooks = {
      // `serverless offline start`: the Lambda API listens once init is done.
      'after:offline:start:init': () => this.#start(),
      // `serverless offline`: one hook runs start, wait-for-signal and end, so start in the
      // background; offline.ts waits for the Lambda port first.
      'before:offline:start': () => {
        void this.#start().catch(() => {});
      },
      // Before serverless-offline's own end hook, which exits the process.
      'before:offline:start:end': () => this.#stop(),
    };
  }

  /** host/port of serverless-offline's Lambda API, merged as serverless-offline merges them. */
  #lambdaAddress() {
    const custom = this.serverless.service.custom?.['serverless-offline'] ?? {};
    const options = { host: 'localhost', lambdaPort: defaultPorts.lambda, ...custom, ...this.cliOptions };
    // A wildcard listen address is reached through loopback.
    const host = ['0.0.0.0', '::', ''].includes(options.host) ? '127.0.0.1' : options.host;
    return { host, port: Number(options.lambdaPort) };
  }

  #describeService() {
    const { service } = this.serverless;
    const functions = {};
    for (const key of service.getAllFunctions()) {
      const fn = service.getFunction(key);
      functions[key] = { name: fn.name, events: fn.events ?? [] };
    }
    return {
      service: service.service,
      stage: this.cliOptions.stage ?? service.provider.stage ?? 'dev',
      region: this.cliOptions.region ?? service.provider.region ?? 'us-east-1',
      functions,
      custom: service.custom ?? {},
    };
  }

  #start() {
    this.#starting ??= (async () => {
      const { importTs } = await import('./import-ts.js');
      /** @type {typeof import('../localstack/event-source/offline.ts')} */
      const offline = await importTs('../localstack/event-source/offline.ts', import.meta.url);
      const { host, port } = this.#lambdaAddress();
      try {
        this.#running = await offline.startOfflineEventSources({
          description: this.#describeService(),
          env: process.env,
          lambdaHost: host,
          lambdaPort: port,
        });
      } catch (error) {
        this.log?.error?.(`${logPrefix}: ${error instanceof Error ? error.message : String(error)}`);
        throw error;
      }
      const onSignal = () => void this.#stop();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
    })();
    return this.#starting;
  }

  /** Idempotent: the signal handler and the end hook both call it, and both must wait. */
  #stop() {
    this.#stopping ??= (async () => {
      await this.#starting?.catch(() => {});
      if (!this.#running) return;
      // An invoke in flight may run long; do not hold serverless-offline's shutdown forever.
      await Promise.race([this.#running.stop(), new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
    })();
    return this.#stopping;
  }
}
