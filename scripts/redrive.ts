/**
 * `npm run redrive`: replays dead letters once the cause is fixed (a ClickHouse outage that made
 * the event source mapping give a batch up, a writer that did not know an event type yet).
 *
 * It reads the dead-letter topic from an offset or a time up to its end as it was at the start,
 * checks each record with the writer's own validators (the registry, compiled), and prints what
 * it would replay, counted by the reason each was dead-lettered. With `--apply` it produces the
 * records that pass to the events topic, with their key, value (so their event_id) and original
 * headers; the others stay where they are, listed with the reason they fail now. Nothing is
 * committed: a second run from the same point replays the same records again, and ClickHouse keeps
 * one row per event_id (`events` is a ReplacingMergeTree by event_id: `FINAL` counts each once).
 *
 * Two layouts are read: the writer's and the local emulator's (the record as it was, plus `dlq-*`
 * headers), and the JSON document AWS's event source mapping writes to a Kafka on-failure
 * destination (./aws-on-failure-record.ts), each of whose failed records is replayed on its own.
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { IHeaders, Kafka, KafkaMessage, Message } from 'kafkajs';
import type { MSKRecord } from 'aws-lambda';
import { decodeRecord } from '../functions/writer/decode.ts';
import { awsFailedRecords, type FailedRecord } from './aws-on-failure-record.ts';
import { deadLetterHeaderPrefix, deadLetterHeaders, deadLetterSends } from '../functions/writer/dead-letter.ts';
import type { Sender } from '../shared/kafka-sender.ts';

/** Where reading starts: the same offset in every partition, or the first record at or after a time. */
export type RedriveStart = { offset: number } | { time: Date };

export interface RedriveOptions {
  deadLetterTopic: string;
  eventsTopic: string;
  from: RedriveStart;
  /** Produce the records that pass; without it, a dry run that produces nothing. */
  apply: boolean;
  /** Gives up when the topic yields nothing for this long before its end is reached (a gap of aborted transactions). */
  idleTimeoutMs?: number;
}

/** A dead letter and what redrive makes of it. */
export type RedriveDecision =
  | { replay: true; reason: string; message: Message; origin?: string }
  | { replay: false; reason: string; now: string; origin?: string };

/** Records counted under one reason. */
export interface ReasonCount { reason: string; records: number }

/** A record left in the dead-letter topic, and why it still fails. */
export interface StillFailing { partition: number; offset: string; reason: string; now: string; origin?: string }

export interface RedriveReport {
  deadLetterTopic: string;
  eventsTopic: string;
  applied: boolean;
  /** When the end of each partition was taken: a later run `--from-time` this reads on from there. */
  endsTakenAt: string;
  /** Per partition: the offsets read, [from, to). */
  partitions: { partition: number; from: string; to: string }[];
  read: number;
  /** Failed records met again in this run (same origin topic/partition/offset): replayed once. */
  duplicates: number;
  /** Records that pass now, by the reason they were dead-lettered. */
  replayable: ReasonCount[];
  /** With `apply`: how many were produced to the events topic. */
  replayed: number;
  /** Records that still fail, by the reason they fail now. */
  stillFailingByReason: ReasonCount[];
  /** The first 100 of them, with their positions. */
  stillFailing: StillFailing[];
}

/** Set on a replayed record: where in the dead-letter topic it came from. */
export const redrivenFromHeader = 'redriven-from';

const headerText = (value: IHeaders[string]): string | undefined =>
  value === undefined ? undefined : Array.isArray(value) ? value.map(String).join(',') : String(value);

/** The record as the writer would see it in an AWS Kafka event, so its own validation decides. */
function asMskRecord(topic: string, partition: number, message: KafkaMessage): MSKRecord {
  return {
    topic, partition, offset: Number(message.offset), timestamp: Number(message.timestamp), timestampType: 'CREATE_TIME',
    key: message.key ? message.key.toString('base64') : '', value: message.value ? message.value.toString('base64') : '', headers: [],
  };
}

/** Where the writer's or the emulator's dead letter was first read, from its `dlq-original-*` headers. */
function headerOrigin(message: KafkaMessage): string | undefined {
  const [topic, partition, offset] = [deadLetterHeaders.topic, deadLetterHeaders.partition, deadLetterHeaders.offset].map((h) => headerText(message.headers?.[h]));
  return topic && partition && offset ? `${topic}/${partition}/${offset}` : undefined;
}

/** Decides one dead letter: replayable (the writer's validators accept it now) or still failing, with why. */
export function redriveDecision(deadLetterTopic: string, partition: number, message: KafkaMessage): RedriveDecision {
  const reason = headerText(message.headers?.[deadLetterHeaders.reason]) ?? `no ${deadLetterHeaders.reason} header`;
  const origin = headerOrigin(message);
  const decoded = decodeRecord(asMskRecord(deadLetterTopic, partition, message));
  if (!decoded.ok) return { replay: false, reason, now: decoded.reason, ...(origin && { origin }) };
  // The original headers (event type, schema version) without the dead-letter ones.
  const headers: IHeaders = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    if (!name.startsWith(deadLetterHeaderPrefix) && value !== undefined) headers[name] = value;
  }
  headers[redrivenFromHeader] = `${deadLetterTopic}/${partition}/${message.offset}`;
  return { replay: true, reason, message: { key: message.key, value: message.value, headers }, ...(origin && { origin }) };
}

/** Decides one failed record out of AWS's on-failure document, with the key, value and headers it carries. */
function awsFailedRecordDecision(deadLetterTopic: string, partition: number, offset: string, failed: FailedRecord): RedriveDecision {
  const decoded = decodeRecord(failed.record);
  if (!decoded.ok) return { replay: false, reason: failed.reason, now: decoded.reason, origin: failed.origin };
  const headers: IHeaders = { ...failed.headers, [redrivenFromHeader]: `${deadLetterTopic}/${partition}/${offset}` };
  return { replay: true, reason: failed.reason, message: { key: failed.key, value: failed.value, headers }, origin: failed.origin };
}

/**
 * Decides every failed record a dead letter holds: one for the writer's and the emulator's layout
 * (a `dlq-reason` header), one per record of `payload` for AWS's on-failure document.
 */
export function redriveDecisions(deadLetterTopic: string, partition: number, message: KafkaMessage): RedriveDecision[] {
  const aws = message.headers?.[deadLetterHeaders.reason] === undefined ? awsFailedRecords(message) : undefined;
  if (!aws) return [redriveDecision(deadLetterTopic, partition, message)];
  return aws.map((failed) => awsFailedRecordDecision(deadLetterTopic, partition, message.offset, failed));
}

/**
 * The decisions whose failed record this run has not met yet (`seen` holds the origins met so far):
 * AWS may put one batch's records in several on-failure messages, and a record must be replayed once.
 */
export function firstFromEachOrigin(decisions: RedriveDecision[], seen: Set<string>): { fresh: RedriveDecision[]; repeated: number } {
  const fresh = decisions.filter((d) => {
    if (d.origin === undefined) return true;
    if (seen.has(d.origin)) return false;
    seen.add(d.origin);
    return true;
  });
  return { fresh, repeated: decisions.length - fresh.length };
}

/** The offsets to read in each partition: [from, to), `to` being the end when the run started. */
export async function redriveRange(kafka: Kafka, topic: string, from: RedriveStart): Promise<{ partition: number; from: bigint; to: bigint }[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ends = await admin.fetchTopicOffsets(topic);
    const byTime = 'time' in from ? await admin.fetchTopicOffsetsByTimestamp(topic, from.time.getTime()) : [];
    return ends.map(({ partition, low, high }) => {
      const wanted = 'time' in from ? BigInt(byTime.find((p) => p.partition === partition)?.offset ?? high) : BigInt(from.offset);
      const start = wanted < BigInt(low) ? BigInt(low) : wanted;
      return { partition, from: start, to: BigInt(high) };
    }).sort((a, b) => a.partition - b.partition);
  } finally {
    await admin.disconnect();
  }
}

/** Counts of a list of reasons, most frequent first. */
function countReasons(reasons: string[]): ReasonCount[] {
  const counts = new Map<string, number>();
  for (const reason of reasons) counts.set(reason, (counts.get(reason) ?? 0) + 1);
  return [...counts].map(([reason, records]) => ({ reason, records })).sort((a, b) => b.records - a.records || a.reason.localeCompare(b.reason));
}

/**
 * Reads the dead letters in range, decides each, and with `apply` sends the replayable ones
 * through `sender` (acks=all, in partition and offset order, so a viewer's events keep their order).
 * A consumer group of its own, never committed and deleted at the end, reads the topic.
 */
export async function redrive(kafka: Kafka, sender: Sender | undefined, options: RedriveOptions): Promise<RedriveReport> {
  if (options.apply && !sender) throw new Error('redrive --apply needs a sender');
  const endsTakenAt = new Date().toISOString();
  const ranges = await redriveRange(kafka, options.deadLetterTopic, options.from);
  const pending = new Map(ranges.filter((r) => r.from < r.to).map((r) => [r.partition, { ...r, next: r.from }]));
  const replayReasons: string[] = [];
  const failing: StillFailing[] = [];
  const seenOrigins = new Set<string>();
  let read = 0;
  let duplicates = 0;
  let replayed = 0;

  if (pending.size > 0) {
    const groupId = `ugc-redrive-${randomUUID()}`;
    const consumer = kafka.consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: 1_000, maxWaitTimeInMs: 500, allowAutoTopicCreation: false });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic: options.deadLetterTopic, fromBeginning: false });
      await new Promise<void>((resolve, reject) => {
        const idleMs = options.idleTimeoutMs ?? 30_000;
        let idle: NodeJS.Timeout;
        const touch = () => {
          clearTimeout(idle);
          idle = setTimeout(() => reject(new Error(`no record for ${idleMs} ms before the end of partitions ${[...pending.keys()].join(', ')}`)), idleMs);
        };
        touch();
        consumer.run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
            const range = pending.get(batch.partition);
            if (!range) return;
            touch();
            const replay: Message[] = [];
            // A batch fetched before the seek took effect (from the end) must not count as the range read.
            const contiguous = batch.messages.length > 0 && BigInt(batch.firstOffset()!) <= range.next;
            for (const message of batch.messages) {
              const offset = BigInt(message.offset);
              if (offset < range.next || offset >= range.to) continue;
              range.next = offset + 1n;
              read += 1;
              const { fresh, repeated } = firstFromEachOrigin(redriveDecisions(options.deadLetterTopic, batch.partition, message), seenOrigins);
              duplicates += repeated;
              for (const decision of fresh) {
                if (decision.replay) {
                  replayReasons.push(decision.reason);
                  replay.push(decision.message);
                } else {
                  const origin = decision.origin === undefined ? {} : { origin: decision.origin };
                  failing.push({ partition: batch.partition, offset: message.offset, reason: decision.reason, now: decision.now, ...origin });
                }
              }
            }
            if (options.apply && replay.length > 0) {
              for (const messages of deadLetterSends(replay)) await sender!.send({ topic: options.eventsTopic, acks: -1, messages });
              replayed += replay.length;
            }
            const lastInBatch = batch.lastOffset();
            resolveOffset(lastInBatch);
            await heartbeat();
            // Done with a partition when its range's last offset was read, or read past (transaction markers).
            if (range.next >= range.to || (contiguous && BigInt(lastInBatch) >= range.to - 1n)) {
              pending.delete(batch.partition);
              consumer.pause([{ topic: options.deadLetterTopic, partitions: [batch.partition] }]);
              if (pending.size === 0) {
                clearTimeout(idle);
                resolve();
              }
            }
          },
        }).then(() => {
          // seek() works only once run() has started: every partition goes to the start of its range.
          for (const range of ranges) {
            if (pending.has(range.partition)) consumer.seek({ topic: options.deadLetterTopic, partition: range.partition, offset: String(range.from) });
            else consumer.pause([{ topic: options.deadLetterTopic, partitions: [range.partition] }]);
          }
        }, reject);
      });
    } finally {
      await consumer.disconnect();
      const admin = kafka.admin();
      await admin.connect().then(() => admin.deleteGroups([groupId])).catch(() => {}).finally(() => admin.disconnect());
    }
  }

  return {
    deadLetterTopic: options.deadLetterTopic,
    eventsTopic: options.eventsTopic,
    applied: options.apply,
    endsTakenAt,
    partitions: ranges.map((r) => ({ partition: r.partition, from: String(r.from), to: String(r.to) })),
    read,
    duplicates,
    replayable: countReasons(replayReasons),
    replayed,
    stillFailingByReason: countReasons(failing.map((f) => f.now)),
    stillFailing: failing.slice(0, 100),
  };
}

/** The report as ops read it in a terminal. */
export function formatReport(report: RedriveReport): string {
  const total = (counts: ReasonCount[]) => counts.reduce((n, c) => n + c.records, 0);
  const lines = [
    `${report.deadLetterTopic}: read ${report.read} dead letters (${report.partitions.map((p) => `partition ${p.partition} offsets ${p.from}..${p.to}`).join(', ')})`,
    report.applied
      ? `replayed ${report.replayed} to ${report.eventsTopic}, by the reason they were dead-lettered:`
      : `would replay ${total(report.replayable)} to ${report.eventsTopic} (dry run: nothing produced; add --apply), by the reason they were dead-lettered:`,
    ...report.replayable.map((c) => `  ${String(c.records).padStart(7)}  ${c.reason}`),
    `still failing, left in ${report.deadLetterTopic}: ${total(report.stillFailingByReason)}, by the reason they fail now:`,
    ...report.stillFailingByReason.map((c) => `  ${String(c.records).padStart(7)}  ${c.reason}`),
    ...report.stillFailing.slice(0, 20).map((f) => `    partition ${f.partition} offset ${f.offset}${f.origin ? ` (from ${f.origin})` : ''}: ${f.now}`),
    ...(report.duplicates > 0 ? [`${report.duplicates} failed records were met again (same origin offset) and replayed once`] : []),
    // One offset for every partition fits the product's one-partition dead-letter topic; with more, a time.
    report.partitions.length === 1 ? `next run from here: --from-offset ${report.partitions[0]!.to}` : `next run from here: --from-time ${report.endsTakenAt}`,
  ];
  return lines.join('\n');
}

/** `--from-offset N` or `--from-time <ISO time>`, `--apply`, `--json`; a usage error is one line. */
export function parseRedriveArgs(args: string[]): { from: RedriveStart; apply: boolean; json: boolean } {
  const { values } = parseArgs({
    args, strict: true,
    options: { 'from-offset': { type: 'string' }, 'from-time': { type: 'string' }, apply: { type: 'boolean', default: false }, json: { type: 'boolean', default: false } },
  });
  const offset = values['from-offset'];
  const time = values['from-time'];
  if ((offset === undefined) === (time === undefined)) throw new Error('give one of --from-offset N or --from-time <ISO 8601 time>');
  let from: RedriveStart;
  if (offset !== undefined) {
    if (!/^\d+$/.test(offset)) throw new Error(`--from-offset must be a whole number, not ${offset}`);
    from = { offset: Number(offset) };
  } else {
    const at = new Date(time!);
    if (Number.isNaN(at.getTime())) throw new Error(`--from-time must be an ISO 8601 time, not ${time}`);
    from = { time: at };
  }
  return { from, apply: values.apply, json: values.json };
}

// `npm run redrive -- --from-offset 0 [--apply] [--json]`, authenticated as the functions are.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  let args: ReturnType<typeof parseRedriveArgs>;
  try {
    args = parseRedriveArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`redrive: ${(error as Error).message}`);
    process.exit(2);
  }
  const { loadConfig, kafkaEnv } = await import('../shared/config.ts');
  const { createKafka, createProducer, createSender, kafkaAuthEnv } = await import('../shared/kafka.ts');
  const settings = loadConfig({ ...kafkaEnv, ...kafkaAuthEnv });
  const kafka = createKafka(settings);
  const sender = args.apply ? createSender(() => createProducer(kafka, settings)) : undefined;
  try {
    const report = await redrive(kafka, sender, { deadLetterTopic: settings.KAFKA_DLQ_TOPIC, eventsTopic: settings.KAFKA_TOPIC, from: args.from, apply: args.apply });
    console.log(args.json ? JSON.stringify(report) : formatReport(report));
  } catch (error) {
    console.error(`redrive: ${(error as Error).message}`);
    process.exitCode = 1;
  } finally {
    await sender?.disconnect();
  }
}
