/**
 * The embedded Kafka's jars: the pinned list in jars.json (written by lock-jars.ts from pom.xml),
 * downloaded from Maven Central once into a cache, and checked against their SHA-256 on every start,
 * so a corrupted or half-written jar is fetched again and never put on the classpath.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalStackError } from '../errors.ts';

/** One pinned jar: Maven coordinates group:artifact:version and the SHA-256 of its bytes. */
export interface LockedJar {
  coords: string;
  sha256: string;
}

export const jarsManifest = fileURLToPath(new URL('jars.json', import.meta.url));

const defaults = {
  repository: 'https://repo.maven.apache.org/maven2',
  cacheDir: join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'ugc-ingest', 'maven'),
  timeoutMs: 120_000,
  concurrency: 6,
};

/** The jar's path inside a Maven repository layout: group/as/dirs/artifact/version/artifact-version.jar. */
export function jarPath(coords: string): string {
  const [group, artifact, version] = coords.split(':') as [string, string, string];
  return [...group.split('.'), artifact, version, `${artifact}-${version}.jar`].join('/');
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

async function readIfPresent(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch {
    return undefined;
  }
}

/** What the caller can do when Maven Central cannot serve the jars. */
const fallbackHint = 'set KAFKA_BROKERS to a running Kafka instead (or use localstack/compose.yml)';

const causeOf = (error: unknown): string =>
  error instanceof Error ? ((error.cause as Error | undefined)?.message ?? error.message) : String(error);

/** The jar's bytes, or `cut` when the connection dropped in the middle of its body (worth one more try). */
async function download(jar: LockedJar, repository: string, timeoutMs: number): Promise<Buffer | { cut: string }> {
  const url = `${repository.replace(/\/+$/, '')}/${jarPath(jar.coords)}`;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    throw new LocalStackError(`cannot download Kafka's jars from ${new URL(repository).host} (${causeOf(error)}); ${fallbackHint}`, { cause: error });
  }
  if (!response.ok) throw new LocalStackError(`cannot download ${url} (HTTP ${response.status}); ${fallbackHint}`);
  try {
    return Buffer.from(await response.arrayBuffer());
  } catch (error) {
    // A connection cut mid-body rejects here ("terminated"); it does not give a short body.
    return { cut: `${url} broke off (${causeOf(error)})` };
  }
}

/** Returns the cached path of one jar, fetching it (again) unless the cached bytes match its SHA-256. */
async function ensureJar(jar: LockedJar, cacheDir: string, repository: string, timeoutMs: number, onFetch: (coords: string) => void): Promise<string> {
  const path = join(cacheDir, jarPath(jar.coords));
  const cached = await readIfPresent(path);
  if (cached && sha256(cached) === jar.sha256) return path;
  if (cached) await rm(path, { force: true }); // corrupted or truncated: never run it
  onFetch(jar.coords);
  // One retry: a connection cut mid-body, or bytes that do not match.
  for (let attempt = 1; ; attempt++) {
    const bytes = await download(jar, repository, timeoutMs);
    if (!Buffer.isBuffer(bytes)) {
      if (attempt >= 2) throw new LocalStackError(`cannot download ${jar.coords}: ${bytes.cut}; ${fallbackHint}`);
      continue;
    }
    const actual = sha256(bytes);
    if (actual === jar.sha256) {
      await mkdir(dirname(path), { recursive: true });
      // Written under a temporary name and renamed: a killed start leaves no half jar under the real name.
      const tmp = `${path}.${process.pid}.part`;
      try {
        await writeFile(tmp, bytes);
        await rename(tmp, path);
      } catch (error) {
        await rm(tmp, { force: true }); // a full disk, say: leave no partial file behind
        throw error;
      }
      return path;
    }
    if (attempt >= 2) {
      throw new LocalStackError(`${jar.coords} from ${repository} has SHA-256 ${actual}, not the pinned ${jar.sha256}: refusing to run it`);
    }
  }
}

/** Where the jars are cached unless KAFKA_JARS_DIR (or the cacheDir option) says otherwise. */
export const defaultJarsCacheDir = defaults.cacheDir;

/** Options of {@link ensureKafkaJars}. */
export interface KafkaJarsOptions {
  /** Default ~/.cache/ugc-ingest/maven (KAFKA_JARS_DIR). */
  cacheDir?: string;
  /** Default Maven Central (KAFKA_MAVEN_REPOSITORY, e.g. a company mirror). */
  repository?: string;
  /** Called once for each jar that has to be downloaded. */
  onFetch?: (coords: string) => void;
  jars?: LockedJar[];
}

/** Every pinned jar, verified, in manifest order: the broker's classpath. */
export async function ensureKafkaJars(options: KafkaJarsOptions = {}): Promise<string[]> {
  const cacheDir = options.cacheDir ?? (process.env.KAFKA_JARS_DIR || defaults.cacheDir);
  const repository = options.repository ?? (process.env.KAFKA_MAVEN_REPOSITORY || defaults.repository);
  const jars = options.jars ?? (JSON.parse(await readFile(jarsManifest, 'utf8')) as { jars: LockedJar[] }).jars;
  const onFetch = options.onFetch ?? (() => {});
  const paths: string[] = new Array(jars.length);
  let next = 0;
  const worker = async () => {
    while (next < jars.length) {
      const i = next++;
      paths[i] = await ensureJar(jars[i]!, cacheDir, repository, defaults.timeoutMs, onFetch);
    }
  };
  await Promise.all(Array.from({ length: defaults.concurrency }, worker));
  return paths;
}
