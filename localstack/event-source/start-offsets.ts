/**
 * Where a group with no committed offset starts: AWS's StartingPosition applies only to partitions
 * the group never committed. TRIM_HORIZON is kafkajs' fromBeginning; LATEST and AT_TIMESTAMP need
 * explicit offsets, resolved before joining so that records produced after start() are never skipped.
 */
import type { Admin } from 'kafkajs';
import type { StartingPosition } from './config.ts';

/** What the cluster says about the topic, as kafkajs' admin returns it. */
export interface TopicOffsets {
  /** Partitions and the group's committed offset ('-1': none). */
  committed: readonly { partition: number; offset: string }[];
  /** High watermark per partition. */
  high: ReadonlyMap<number, string>;
  /** For AT_TIMESTAMP: the first offset at or after the timestamp, per partition. */
  byTimestamp?: ReadonlyMap<number, string>;
}

/** Start offset per never-committed partition; empty for TRIM_HORIZON. Pure. */
export function planStartOffsets(position: StartingPosition, offsets: TopicOffsets): Map<number, string> {
  const start = new Map<number, string>();
  if (position === 'TRIM_HORIZON') return start;
  for (const { partition, offset } of offsets.committed) {
    if (Number(offset) >= 0) continue;
    // Kafka's ListOffsets by time gives the first offset at or after T; where no record is that
    // new, it answers -1, which kafkajs turns into the high watermark: the group starts at the end.
    const byTime = position === 'AT_TIMESTAMP' ? offsets.byTimestamp?.get(partition) : undefined;
    start.set(partition, byTime ?? offsets.high.get(partition) ?? '0');
  }
  return start;
}

/** Asks the cluster (through a connected admin) and plans the start offsets. */
export async function resolveStartOffsets(
  admin: Pick<Admin, 'fetchOffsets' | 'fetchTopicOffsets' | 'fetchTopicOffsetsByTimestamp'>,
  { topic, groupId, position, timestampS }: { topic: string; groupId: string; position: StartingPosition; timestampS?: number | undefined },
): Promise<Map<number, string>> {
  if (position === 'TRIM_HORIZON') return new Map();
  const [topicCommitted] = await admin.fetchOffsets({ groupId, topics: [topic] });
  const committed = topicCommitted?.partitions ?? [];
  if (!committed.some((p) => Number(p.offset) < 0)) return new Map();
  const high = new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, p.high]));
  const byTimestamp = position === 'AT_TIMESTAMP'
    ? new Map((await admin.fetchTopicOffsetsByTimestamp(topic, Math.round((timestampS ?? 0) * 1000))).map((p) => [p.partition, p.offset]))
    : undefined;
  return planStartOffsets(position, { committed, high, byTimestamp });
}
