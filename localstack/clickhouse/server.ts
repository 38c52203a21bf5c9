/**
 * The embedded ClickHouse server's own process: clickhouse-local's HTTP (and native) servers from
 * chDB's library, run through its command-line entry point until this process's stdin closes.
 *
 *   node --import tsx localstack/clickhouse/server.ts --data-dir DIR --url http://127.0.0.1:PORT [--tcp]
 *
 * The data directory holds the configuration embedded.ts wrote (config.ts). The call blocks this
 * process's main thread, on which ClickHouse's stack checks pass: an FFI that runs the call on a
 * stack of its own (koffi) fails them ("Stack size too large"), ffi-rs calls on the thread's own.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DataType, isNullPointer, load, open, type JsExternal } from 'ffi-rs';
import { ConfigError } from '../../shared/errors.ts';
import { acquireDataDirLock, clickhouseLock, type DataDirLock } from '../lock.ts';
import { configFileName } from './config.ts';

/** chdb's engine package per platform (chdb's optionalDependencies). */
const enginePackages: Record<string, string> = {
  'linux-x64': '@chdb/lib-linux-x64-gnu',
  'linux-arm64': '@chdb/lib-linux-arm64-gnu',
  'darwin-x64': '@chdb/lib-darwin-x64',
  'darwin-arm64': '@chdb/lib-darwin-arm64',
};

/** The process's exit codes, by reason (embedded.ts shows the reason's line, not the code). */
export const exitCodes = { usage: 2, dataDirInUse: 3, library: 4, server: 5 } as const;

/** One line on stderr (embedded.ts shows it as the reason), then exit. */
function fail(message: string, code: number): never {
  process.stderr.write(`embedded ClickHouse: ${message.trim().replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(code);
}

/**
 * The path of libchdb: CHDB_LIBRARY_PATH (a chDB build of one's own, for a platform chdb's npm
 * packages lack), else the one `npm install` brought with chdb; or one line saying what is missing.
 */
export function chdbLibraryPath(env: NodeJS.ProcessEnv = process.env): string {
  const own = env.CHDB_LIBRARY_PATH?.trim();
  if (own) {
    if (!existsSync(own)) throw new ConfigError(`CHDB_LIBRARY_PATH ${own} does not exist: point it at a libchdb, or unset it to use chdb's own`);
    return own;
  }
  const key = `${process.platform}-${process.arch}`;
  const pkg = enginePackages[key];
  if (!pkg) throw new Error(`chDB has no engine for ${key} (only ${Object.keys(enginePackages).join(', ')}): set CLICKHOUSE_URL to a ClickHouse server (localstack/compose.yml)`);
  let dir: string;
  try {
    const fromChdb = createRequire(createRequire(import.meta.url).resolve('chdb'));
    dir = dirname(fromChdb.resolve(`${pkg}/package.json`));
  } catch {
    throw new Error(`chDB's engine (${pkg}) is not installed: run npm install`);
  }
  const lib = readdirSync(dir).find((f) => /^libchdb\.(so|dylib)$/.test(f));
  if (!lib) throw new Error(`chDB's engine package ${dir} has no libchdb: run npm install again`);
  return join(dir, lib);
}

/** What clickhouse-local runs: open the listeners, then read stdin until it closes. */
export function startupQuery(tcp: boolean): string {
  const listen = tcp ? 'SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP;' : 'SYSTEM START LISTEN HTTP;';
  return `${listen} SELECT count() FROM file(stdin, 'LineAsString') FORMAT Null`;
}

/** Runs clickhouse-local with `argv`; resolves to its error text, or undefined when it ended cleanly. */
function runClickHouseLocal(library: string, argv: string[]): string | undefined {
  open({ library: 'chdb', path: library });
  const result = load({
    library: 'chdb', funcName: 'chdb_query_cmdline', retType: DataType.External,
    paramsType: [DataType.I32, DataType.StringArray], paramsValue: [argv.length, argv],
  }) as JsExternal;
  if (isNullPointer(result)) return 'chdb_query_cmdline returned no result';
  const error = load({ library: 'chdb', funcName: 'chdb_result_error', retType: DataType.External, paramsType: [DataType.External], paramsValue: [result] }) as JsExternal;
  if (isNullPointer(error)) return undefined;
  return load({ library: 'chdb', funcName: 'chdb_result_error', retType: DataType.String, paramsType: [DataType.External], paramsValue: [result] }) as string;
}

function main(): void {
  // When the parent dies our stdio pipes break; a failed write must not kill a shutdown.
  process.stderr.on('error', () => undefined);
  let values: { 'data-dir'?: string; url?: string; tcp?: boolean };
  try {
    ({ values } = parseArgs({ options: { 'data-dir': { type: 'string' }, url: { type: 'string' }, tcp: { type: 'boolean', default: false } }, strict: true }));
  } catch (e) {
    fail(`${e instanceof Error ? e.message : String(e)}\nusage: server.ts --data-dir DIR --url URL [--tcp]`, exitCodes.usage);
  }
  if (!values['data-dir'] || !values.url) fail('usage: server.ts --data-dir DIR --url URL [--tcp]', exitCodes.usage);
  const dataDir = resolve(values['data-dir']);
  const configFile = join(dataDir, configFileName);
  if (!existsSync(configFile)) fail(`${configFile} is missing: start the server through localstack/clickhouse/embedded.ts`, exitCodes.usage);

  let library: string;
  try {
    library = chdbLibraryPath();
  } catch (e) {
    fail(e instanceof Error ? e.message : String(e), exitCodes.library);
  }
  let lock: DataDirLock;
  try {
    lock = acquireDataDirLock(dataDir, clickhouseLock);
  } catch (e) {
    fail(e instanceof Error ? e.message : String(e), exitCodes.dataDirInUse);
  }
  lock.update({ pid: process.pid, url: values.url });
  let error: string | undefined;
  try {
    error = runClickHouseLocal(library, ['clickhouse', `--config-file=${configFile}`, '--multiquery', '--query', startupQuery(values.tcp ?? false)]);
  } catch (e) {
    error = `cannot load ${library} (${e instanceof Error ? e.message : String(e)}): run npm install again, or set CHDB_LIBRARY_PATH to a libchdb built for this machine`;
  } finally {
    lock.release();
  }
  if (error !== undefined) fail(error.trim(), exitCodes.server);
  process.exit(0);
}

// Run as the server's process; imported (tests), it only lends its pieces.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
