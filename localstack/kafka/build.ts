/**
 * Compiles the mock-broker launcher (mock-broker.c) against librdkafka into localstack/kafka/bin/.
 * CLI: `node --import tsx localstack/kafka/build.ts` prints the binary's path.
 */
import { execFile } from 'node:child_process';
import { mkdir, rename, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const kafkaDir = dirname(fileURLToPath(import.meta.url));
export const brokerSource = join(kafkaDir, 'mock-broker.c');
export const brokerBinary = join(kafkaDir, 'bin', 'mock-broker');

const installHint = 'install the toolchain with: apt-get install -y gcc librdkafka-dev';

/** Raised when the launcher cannot be compiled; the message says what to install. */
export class BrokerBuildError extends Error {
  override readonly name = 'BrokerBuildError';
}

async function mtimeMs(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return undefined;
  }
}

/** Compiler flags for librdkafka: pkg-config when present, plain -lrdkafka otherwise. */
async function rdkafkaFlags(): Promise<string[]> {
  try {
    const { stdout } = await execFileAsync('pkg-config', ['--cflags', '--libs', 'rdkafka']);
    return stdout.trim().split(/\s+/).filter(Boolean);
  } catch {
    return ['-lrdkafka'];
  }
}

let building: Promise<string> | undefined;

/** Returns the launcher's path, compiling it first when it is missing or older than its source. */
export function ensureBrokerBinary(): Promise<string> {
  // One compile per process even when several brokers start at once.
  building ??= build().finally(() => {
    building = undefined;
  });
  return building;
}

async function build(): Promise<string> {
  const [src, bin] = await Promise.all([mtimeMs(brokerSource), mtimeMs(brokerBinary)]);
  if (src === undefined) throw new BrokerBuildError(`launcher source missing: ${brokerSource}`);
  if (bin !== undefined && bin >= src) return brokerBinary;

  await mkdir(dirname(brokerBinary), { recursive: true });
  // Compile to a temporary name and rename, so a concurrent process never runs a half-written file.
  const tmp = `${brokerBinary}.${process.pid}.tmp`;
  const args = ['-O2', '-o', tmp, brokerSource, ...(await rdkafkaFlags())];
  try {
    await execFileAsync('gcc', args);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    const reason = e.code === 'ENOENT' ? 'gcc not found' : (e.stderr ?? e.message).trim();
    throw new BrokerBuildError(`cannot build the embedded Kafka broker (${reason}); ${installHint}`, {
      cause: err,
    });
  }
  await rename(tmp, brokerBinary);
  return brokerBinary;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  ensureBrokerBinary().then(
    (path) => console.log(path),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exitCode = 1;
    },
  );
}
