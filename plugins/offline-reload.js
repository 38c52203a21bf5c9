/**
 * osls plugin: hot reload for `serverless offline --useInProcess`.
 *
 * In-process, serverless-offline import()s each bundle and Node caches the module by its URL, so
 * a rebuild by serverless-esbuild's watch would never run. This plugin registers a module resolve
 * hook (offline-reload-hooks.js) that gives the bundles a new URL (`?build=N`) after each rebuild:
 * the next invocation imports the new code, and invocations in flight finish on the old one.
 * In worker-thread mode every worker imports afresh, so nothing is needed there.
 */
import { register } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

export default class OfflineReloadPlugin {
  /** Shared with the hooks thread: the number of rebuilds since start. */
  #build = new Int32Array(new SharedArrayBuffer(4));
  #registered = false;

  constructor(serverless, cliOptions = {}) {
    this.serverless = serverless;
    this.cliOptions = cliOptions;
    this.hooks = {
      // serverless-esbuild spawns offline:functionsUpdated once a rebuild is written. The hook is
      // registered only then: until the first edit, imports cost no trip to the hooks thread.
      'offline:functionsUpdated:cleanup': () => {
        Atomics.add(this.#build, 0, 1);
        this.#register();
      },
    };
  }

  #register() {
    const custom = this.serverless.service.custom?.['serverless-offline'] ?? {};
    const inProcess = this.cliOptions.useInProcess ?? custom.useInProcess;
    if (this.#registered || !inProcess) return;
    const serviceDir = this.serverless.serviceDir ?? this.serverless.config.servicePath;
    // serverless-esbuild set `location` to its build folder (e.g. .esbuild/.build) before offline started.
    const buildDir = resolve(serviceDir, custom.location ?? '.');
    register('./offline-reload-hooks.js', import.meta.url, {
      data: { build: this.#build, urlPrefix: `${pathToFileURL(buildDir).href}/` },
    });
    this.#registered = true;
  }
}
