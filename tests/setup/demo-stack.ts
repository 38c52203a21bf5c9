import { afterAll, beforeAll } from 'vitest';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { startOffline, type Offline } from '../../localstack/offline.ts';
import { startDemoServer, type DemoServer } from '../../localstack/demo/server.ts';
import { startApiFaults, type ApiFaults } from './api-faults.ts';
import { launchChromium } from './browser.ts';
import { freePort } from './context.ts';
import { ownPipeline, type OwnPipeline } from './pipeline.ts';

export interface ApiStack {
  offline: Offline; demo: DemoServer; pipeline: OwnPipeline; db: OwnPipeline['db'];
  /** With `faults`: the proxy between the demo page and the API (the page's apiUrl). */
  faults?: ApiFaults;
  /** Stops whatever was started, also after a failed start. */
  stop(): Promise<void>;
}
export interface DemoStack extends ApiStack { browser: Browser }

interface StackOptions {
  /** Put the fault proxy (tests/setup/api-faults.ts) between the page and the API. */
  faults?: boolean;
}

/**
 * For the browser tests: serverless offline on a database, topics and writer group of its own, the demo server (another
 * port, so another origin) and Chromium. Each file gets its own serverless-esbuild folder: other
 * e2e files run serverless offline at the same time.
 */
export async function startDemoStack(name: string, jwtSecret: string): Promise<DemoStack> {
  return startStack(name, jwtSecret, { chromium: true }) as Promise<DemoStack>;
}

/** The demo stack without a browser, for tests that bring their own engines (tests/setup/browsers.ts). */
export async function startApiStack(name: string, jwtSecret: string, options: StackOptions = {}): Promise<ApiStack> {
  return startStack(name, jwtSecret, { ...options, chromium: false });
}

async function startStack(name: string, jwtSecret: string, { chromium, faults }: StackOptions & { chromium: boolean }): Promise<ApiStack & Partial<DemoStack>> {
  const workFolder = `.esbuild-${name}-${process.pid}`;
  const started: Partial<DemoStack> = {};
  const stop = async () => {
    await started.browser?.close();
    await started.demo?.stop();
    await started.faults?.stop();
    await started.offline?.stop();
    await started.pipeline?.drop();
    await rm(fileURLToPath(new URL(`../../${workFolder}`, import.meta.url)), { recursive: true, force: true });
  };
  try {
    started.pipeline = await ownPipeline(name);
    started.db = started.pipeline.db;
    const [httpPort, lambdaPort] = [await freePort(), await freePort()];
    // Settled, not Promise.all: if one fails, stop() must still find (and stop) the other.
    const results = await Promise.allSettled([
      startOffline({ env: { ...started.pipeline.env, JWT_SECRET: jwtSecret, ESBUILD_WORK_FOLDER: workFolder }, httpPort, lambdaPort })
        .then((o) => (started.offline = o)),
      chromium ? launchChromium().then((b) => (started.browser = b)) : undefined,
    ]);
    for (const result of results) if (result.status === 'rejected') throw result.reason;
    if (faults) started.faults = await startApiFaults(started.offline!.url);
    started.demo = await startDemoServer({ port: 0, apiUrl: started.faults?.url ?? started.offline!.url, jwtSecret });
  } catch (error) {
    await stop();
    throw error;
  }
  return { ...(started as Omit<DemoStack, 'stop'>), stop };
}

/** The demo stack for one test file: started before its tests, stopped after them. */
export function useDemoStack(name: string, jwtSecret: string): DemoStack {
  const stack = {} as DemoStack;
  beforeAll(async () => { Object.assign(stack, await startDemoStack(name, jwtSecret)); }, 180_000);
  afterAll(async () => { await stack.stop?.(); });
  return stack;
}

/** The browserless demo stack for one test file, like useDemoStack. */
export function useApiStack(name: string, jwtSecret: string, options: StackOptions = {}): ApiStack {
  const stack = {} as ApiStack;
  beforeAll(async () => { Object.assign(stack, await startApiStack(name, jwtSecret, options)); }, 180_000);
  afterAll(async () => { await stack.stop?.(); });
  return stack;
}
