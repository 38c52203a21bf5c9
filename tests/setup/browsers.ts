// The three browser engines a viewer uses, behind one small interface, so a browser test is
// written once and run per engine: Chromium (@sparticuz/chromium's, or a system one, through
// playwright-core: tests/setup/browser.ts), Firefox (Debian's firefox-esr, through puppeteer-core
// over WebDriver BiDi: Firefox speaks it itself, no geckodriver) and WebKit (WebKitGTK's
// MiniBrowser, through Debian's WebKitWebDriver, which speaks classic W3C WebDriver only, under
// an Xvfb display of its own: WebKitGTK 2.50 has no headless mode).
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { launchChromium } from './browser.ts';
import { spawnTiedToParent } from '../../localstack/child.ts';
import { freePort } from '../../localstack/ports.ts';

export const engineNames = ['chromium', 'firefox', 'webkit'] as const;
export type EngineName = (typeof engineNames)[number];

/** One tab in a profile of its own: no cache, no storage, no cached CORS preflight from another. */
export interface EnginePage {
  goto(url: string): Promise<void>;
  reload(): Promise<void>;
  /** The value of a JavaScript expression in the page (a promise is awaited); it must be JSON. */
  evaluate<T>(expression: string): Promise<T>;
  /** Closes the tab as a viewer does (pagehide, unload); the browser stays, so what the page sent on the way out can leave. */
  closeTab(): Promise<void>;
  /** Ends the profile (and whatever it still had in flight). */
  dispose(): Promise<void>;
}

export interface Engine {
  name: EngineName;
  /** As the browser reports itself, e.g. "firefox/153.8.0". */
  version: string;
  newPage(): Promise<EnginePage>;
  close(): Promise<void>;
}

/** The Debian packages that bring the engines Chromium's npm package does not. */
export const engineAptLine = 'apt-get install -y --no-install-recommends firefox-esr webkit2gtk-driver xvfb';

/** The first of `paths` that exists; a variable, when set, is the only place looked at. */
const found = (variable: string | undefined, paths: string[]) => (variable !== undefined ? [variable] : paths).find((p) => existsSync(p));
const firefoxPath = found(process.env.FIREFOX_PATH, ['/usr/bin/firefox-esr', '/usr/bin/firefox']);
const webkitDriverPath = found(process.env.WEBKIT_WEBDRIVER_PATH, ['/usr/bin/WebKitWebDriver']);
/** MiniBrowser lives in libwebkit2gtk's multiarch folder (/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/ on amd64). */
const miniBrowserPath = process.env.WEBKIT_BROWSER_PATH !== undefined ? found(process.env.WEBKIT_BROWSER_PATH, []) : (() => {
  for (const arch of existsSync('/usr/lib') ? readdirSync('/usr/lib') : []) {
    const path = `/usr/lib/${arch}/webkit2gtk-4.1/MiniBrowser`;
    if (existsSync(path)) return path;
  }
  return undefined;
})();
const xvfbPath = ['/usr/bin/Xvfb'].find((p) => existsSync(p));

/** Why an engine cannot run on this machine, or undefined if it can. */
export function missingEngine(name: EngineName): string | undefined {
  switch (name) {
    case 'chromium':
      return undefined; // npm install brings it (@sparticuz/chromium)
    case 'firefox':
      return firefoxPath ? undefined : 'no firefox-esr';
    case 'webkit':
      if (!webkitDriverPath) return 'no WebKitWebDriver (webkit2gtk-driver)';
      if (!miniBrowserPath) return 'no MiniBrowser (libwebkit2gtk-4.1-0)';
      return xvfbPath || process.env.DISPLAY ? undefined : 'no Xvfb (xvfb) and no DISPLAY';
  }
}

/** Starts one engine. */
export function launchEngine(name: EngineName): Promise<Engine> {
  switch (name) {
    case 'chromium': return launchChromiumEngine();
    case 'firefox': return launchFirefoxEngine();
    case 'webkit': return launchWebKitEngine();
  }
}

async function launchChromiumEngine(): Promise<Engine> {
  const browser = await launchChromium();
  return {
    name: 'chromium',
    version: `chromium/${browser.version()}`,
    async newPage() {
      const context = await browser.newContext();
      const page = await context.newPage();
      return {
        goto: async (url) => { await page.goto(url); },
        reload: async () => { await page.reload(); },
        evaluate: (expression) => page.evaluate(expression),
        closeTab: () => page.close({ runBeforeUnload: true }),
        dispose: () => context.close(),
      };
    },
    close: () => browser.close(),
  };
}

async function launchFirefoxEngine(): Promise<Engine> {
  const { default: puppeteer } = await import('puppeteer-core');
  const browser = await puppeteer.launch({
    browser: 'firefox', protocol: 'webDriverBiDi', executablePath: firefoxPath, headless: true,
    // No update checks, telemetry or first-run pages: nothing but the test talks to the network.
    extraPrefsFirefox: { 'app.update.enabled': false, 'datareporting.policy.dataSubmissionEnabled': false, 'browser.shell.checkDefaultBrowser': false },
  });
  const version = await browser.version();
  return {
    name: 'firefox',
    version,
    async newPage() {
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      return {
        goto: async (url) => { await page.goto(url); },
        reload: async () => { await page.reload(); },
        evaluate: (expression) => page.evaluate(expression) as Promise<never>,
        closeTab: () => page.close({ runBeforeUnload: true }),
        dispose: () => context.close(),
      };
    },
    close: () => browser.close(),
  };
}

/** Starts a child and waits until `ready` resolves, or fails with what it printed if it exits first. */
async function startChild(command: string, args: string[], env: NodeJS.ProcessEnv, ready: (child: ChildProcess) => Promise<void>): Promise<ChildProcess> {
  const child = spawnTiedToParent(command, args, { env, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => { output += c.toString(); });
  child.stderr?.on('data', (c: Buffer) => { output = (output + c.toString()).slice(-4_000); });
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${command} exited (${code}) before it was ready: ${output.trim()}`))));
  try {
    await Promise.race([ready(child), exited]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  exited.catch(() => {});
  return child;
}

const stopChild = async (child: ChildProcess | undefined) => {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([gone, sleep(5_000).then(() => child.kill('SIGKILL'))]);
};

/** An X display of our own (Xvfb -displayfd writes its number once it accepts clients). */
async function startXvfb(): Promise<{ display: string; child: ChildProcess }> {
  let display = '';
  const child = await startChild(xvfbPath!, ['-displayfd', '3', '-screen', '0', '1280x800x24', '-nolisten', 'tcp'], process.env, (c) =>
    new Promise<void>((resolve) => {
      c.stdio[3]!.on('data', (chunk: Buffer) => {
        display += chunk.toString();
        if (display.includes('\n')) resolve();
      });
    }));
  return { display: `:${display.trim()}`, child };
}

interface WebDriverAnswer { value: unknown }

/**
 * WebKit through WebKitWebDriver: classic W3C WebDriver over HTTP (WebKitGTK 2.50 refuses the
 * BiDi capability `webSocketUrl`), so the handful of endpoints used here are plain fetch calls.
 * The driver holds one session at a time; each page is a session of its own, so a fresh profile.
 */
async function launchWebKitEngine(): Promise<Engine> {
  const xvfb = process.env.DISPLAY && !xvfbPath ? undefined : await startXvfb();
  let driver: ChildProcess | undefined;
  try {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env = { ...process.env, DISPLAY: xvfb?.display ?? process.env.DISPLAY, LANG: 'en_US.UTF-8' };
    driver = await startChild(webkitDriverPath!, [`--port=${port}`], env, async () => {
      for (;;) {
        const status = await fetch(`${base}/status`).then((r) => r.json() as Promise<{ value?: { ready?: boolean } }>, () => undefined);
        if (status?.value?.ready) return;
        await sleep(100);
      }
    });
    const call = async (method: string, path: string, body?: unknown): Promise<unknown> => {
      // A hung browser fails the test in a line, not at the test's timeout.
      const res = await fetch(base + path, {
        method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(30_000),
      });
      const answer = (await res.json()) as WebDriverAnswer;
      if (!res.ok) throw new Error(`WebKitWebDriver ${method} ${path}: ${res.status} ${JSON.stringify(answer.value)}`);
      return answer.value;
    };
    const probe = (await call('POST', '/session', { capabilities: { alwaysMatch: { 'webkitgtk:browserOptions': { binary: miniBrowserPath, args: ['--automation'] } } } })) as
      { sessionId: string; capabilities: { browserVersion: string } };
    await call('DELETE', `/session/${probe.sessionId}`);
    return {
      name: 'webkit',
      version: `webkitgtk/${probe.capabilities.browserVersion}`,
      async newPage() {
        const { sessionId } = (await call('POST', '/session', {
          capabilities: { alwaysMatch: { 'webkitgtk:browserOptions': { binary: miniBrowserPath, args: ['--automation'] }, pageLoadStrategy: 'normal' } },
        })) as { sessionId: string };
        const session = `/session/${sessionId}`;
        let ended = false;
        return {
          goto: async (url) => { await call('POST', `${session}/url`, { url }); },
          reload: async () => { await call('POST', `${session}/refresh`, {}); },
          evaluate: async (expression) => (await call('POST', `${session}/execute/sync`, { script: `return (${expression});`, args: [] })) as never,
          async closeTab() {
            // Closing a session's last window ends the session and quits the browser: open a
            // second one first, so the browser (and its network process) stays as a viewer's does.
            const { handle } = (await call('POST', `${session}/window/new`, { type: 'tab' })) as { handle: string };
            await call('DELETE', `${session}/window`);
            await call('POST', `${session}/window`, { handle });
          },
          async dispose() {
            if (ended) return;
            ended = true;
            await call('DELETE', session).catch(() => {});
          },
        };
      },
      async close() {
        await stopChild(driver);
        await stopChild(xvfb?.child);
      },
    };
  } catch (error) {
    await stopChild(driver);
    await stopChild(xvfb?.child);
    throw error;
  }
}
