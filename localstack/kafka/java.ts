/** Finds the JVM that runs the embedded Kafka: KAFKA_JAVA, then $JAVA_HOME/bin/java, then java on PATH. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { LocalStackError } from '../errors.ts';

const execFileAsync = promisify(execFile);

/** Kafka 4's broker needs Java 17. */
export const minimumJava = 17;

const waysOut = 'install a JDK 17+ (a JRE is enough: apt-get install default-jre-headless), set KAFKA_BROKERS to a running Kafka, or run localstack/compose.yml with Docker';

/** The major version `java -version` reports ("17.0.15" → 17, "1.8.0_402" → 8). */
export function javaMajor(versionOutput: string): number | undefined {
  const m = versionOutput.match(/version "(\d+)(?:\.(\d+))?/);
  if (!m) return undefined;
  const first = Number(m[1]);
  return first === 1 ? Number(m[2]) : first;
}

/** The java command to run, checked to be Java 17 or newer. */
export async function findJava(env: NodeJS.ProcessEnv = process.env): Promise<{ command: string; major: number }> {
  const command = env.KAFKA_JAVA || (env.JAVA_HOME ? join(env.JAVA_HOME, 'bin', 'java') : 'java');
  let output: string;
  try {
    // `java -version` writes to stderr.
    const { stderr, stdout } = await execFileAsync(command, ['-version'], { timeout: 20_000 });
    output = `${stderr}${stdout}`;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? `${command} not found` : `${command} -version failed`;
    throw new LocalStackError(`the embedded Kafka needs Java ${minimumJava}+ (${why}): ${waysOut}`, { cause: error });
  }
  const major = javaMajor(output);
  if (major === undefined || major < minimumJava) {
    throw new LocalStackError(`the embedded Kafka needs Java ${minimumJava}+ (${command} is ${major === undefined ? 'of an unknown version' : `Java ${major}`}): ${waysOut}`);
  }
  return { command, major };
}
