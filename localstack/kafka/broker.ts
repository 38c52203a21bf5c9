/**
 * Embedded Kafka-protocol broker: runs librdkafka's mock cluster (bin/mock-broker) as a child
 * process on 127.0.0.1 and drives its topics and fault injection over a line protocol on stdin.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { ensureBrokerBinary } from './build.ts';

export interface TopicSpec {
  name: string;
  partitions: number;
}

export interface EmbeddedBroker {
  /** "127.0.0.1:port1,127.0.0.1:port2,..." */
  readonly bootstrapServers: string;
  /** bootstrapServers, split. */
  readonly brokers: string[];
  /** 1..N, as the mock cluster numbers its brokers. */
  readonly brokerIds: number[];
  /** Creates a topic with exactly this many partitions (the mock has no CreateTopics API). */
  createTopic(name: string, partitions: number): Promise<void>;
  /** Disconnects the broker and refuses connections; its partitions get no new leader. Id -1: all. */
  brokerDown(id: number): Promise<void>;
  brokerUp(id: number): Promise<void>;
  /** Delays every response of the broker by ms. */
  setRtt(id: number, ms: number): Promise<void>;
  /** The next `count` (default 1) requests with this Kafka ApiKey fail with errorCode. */
  pushRequestErrors(apiKey: number, errorCode: number, count?: number): Promise<void>;
  /** Idempotent; ends the process and waits for it to exit. */
  stop(): Promise<void>;
}

/** A launcher that failed to start, or rejected or could not run a command. */
export class EmbeddedBrokerError extends Error {
  override readonly name = 'EmbeddedBrokerError';
}

const defaults = { brokers: 3, topics: [] as TopicSpec[], readyTimeoutMs: 10_000 };
const stopGraceMs = 5_000;
const stderrKeepChars = 8_192;

type BrokerProcess = ChildProcessByStdio<Writable, Readable, Readable>;

// One 'exit' listener for every live launcher, so many brokers per process add no listeners.
const liveProcesses = new Set<BrokerProcess>();
process.on('exit', () => {
  for (const child of liveProcesses) child.kill('SIGKILL');
});

function assertInt(what: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new EmbeddedBrokerError(`${what} must be an integer >= ${min}, got ${value}`);
  }
}

function assertTopicName(name: string): void {
  // Kafka's own rule; it also keeps the name a single token of the line protocol.
  if (!/^[A-Za-z0-9._-]{1,249}$/.test(name)) {
    throw new EmbeddedBrokerError(`invalid topic name: ${JSON.stringify(name)}`);
  }
}

/** Starts a mock Kafka cluster of `brokers` brokers (default 3) with the given topics created. */
export async function startEmbeddedBroker(
  opts: { brokers?: number; topics?: TopicSpec[] } = {},
): Promise<EmbeddedBroker> {
  const { brokers: brokerCount, topics, readyTimeoutMs } = { ...defaults, ...opts };
  assertInt('brokers', brokerCount, 1);
  for (const t of topics) {
    assertTopicName(t.name);
    assertInt(`partitions of ${t.name}`, t.partitions, 1);
  }

  const binary = await ensureBrokerBinary();
  const args = ['--brokers', String(brokerCount)];
  for (const t of topics) args.push('--topic', `${t.name}:${t.partitions}`);
  // Its own process group: a terminal's Ctrl-C reaches only `npm start`, which stops the functions
  // first and the broker last (it still exits when our stdin closes, e.g. if we are killed).
  const child: BrokerProcess = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  liveProcesses.add(child);

  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-stderrKeepChars);
  });
  // A write after the process died must reject the command, not crash the parent with EPIPE.
  child.stdin.on('error', () => {});

  let exitInfo: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('close', (code, signal) => {
      exitInfo = signal ? `signal ${signal}` : `exit code ${code}`;
      liveProcesses.delete(child);
      resolve();
    });
  });
  const describeExit = (): string =>
    `embedded Kafka broker exited (${exitInfo ?? 'unknown'})${stderr ? `: ${stderr.trim()}` : ''}`;

  // Every stdout line goes to whoever waits for the next one: first READY, then one reply per command.
  let waiter: ((line: string | undefined) => void) | undefined;
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    const w = waiter;
    waiter = undefined;
    w?.(line);
  });
  void exited.then(() => {
    const w = waiter;
    waiter = undefined;
    w?.(undefined);
  });
  const nextLine = (): Promise<string | undefined> =>
    exitInfo !== undefined ? Promise.resolve(undefined) : new Promise((resolve) => (waiter = resolve));

  let bootstrapServers: string;
  try {
    bootstrapServers = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new EmbeddedBrokerError(`embedded Kafka broker not ready after ${readyTimeoutMs} ms; stderr: ${stderr.trim()}`));
      }, readyTimeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new EmbeddedBrokerError(`cannot start or signal ${binary}: ${err.message}`, { cause: err }));
      });
      void nextLine().then((line) => {
        clearTimeout(timer);
        if (line?.startsWith('READY ')) resolve(line.slice('READY '.length).trim());
        else reject(new EmbeddedBrokerError(line === undefined ? describeExit() : `unexpected launcher output: ${line}`));
      });
    });
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    throw err;
  }

  // Commands run one at a time: the launcher answers in order, one line each.
  let queue: Promise<unknown> = Promise.resolve();
  const command = (line: string): Promise<void> => {
    const run = async (): Promise<void> => {
      if (exitInfo !== undefined) throw new EmbeddedBrokerError(describeExit());
      const reply = nextLine();
      child.stdin.write(`${line}\n`);
      const answer = await reply;
      if (answer === undefined) throw new EmbeddedBrokerError(`${line}: ${describeExit()}`);
      if (answer.startsWith('ERR')) throw new EmbeddedBrokerError(`${line}: ${answer.slice(3).trim()}`);
      if (answer !== 'OK') throw new EmbeddedBrokerError(`${line}: unexpected launcher output: ${answer}`);
    };
    const result = queue.then(run, run);
    queue = result.catch(() => {});
    return result;
  };

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (exitInfo === undefined) {
        // EOF and SIGTERM both make the launcher destroy the cluster and exit 0.
        child.stdin.end();
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), stopGraceMs);
        await exited;
        clearTimeout(timer);
      }
      lines.close();
    })();
    return stopping;
  };

  const brokerId = (id: number): number => {
    assertInt('broker id', id, -1);
    return id;
  };

  const brokers = bootstrapServers.split(',');
  return {
    bootstrapServers,
    brokers,
    brokerIds: brokers.map((_, i) => i + 1),
    createTopic: async (name, partitions) => {
      assertTopicName(name);
      assertInt('partitions', partitions, 1);
      await command(`topic ${name} ${partitions}`);
    },
    brokerDown: async (id) => command(`down ${brokerId(id)}`),
    brokerUp: async (id) => command(`up ${brokerId(id)}`),
    setRtt: async (id, ms) => {
      assertInt('rtt ms', ms, 0);
      await command(`rtt ${brokerId(id)} ${ms}`);
    },
    pushRequestErrors: async (apiKey, errorCode, count = 1) => {
      assertInt('apiKey', apiKey, 0);
      assertInt('errorCode', errorCode, -200);
      assertInt('count', count, 1);
      await command(`error ${apiKey} ${errorCode} ${count}`);
    },
    stop,
  };
}
