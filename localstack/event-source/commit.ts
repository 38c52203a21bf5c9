/**
 * Commit planning: which offsets to commit once a batch is done. Pure.
 *
 * Kafka's committed offset is the next record to read, so a partition commits its highest offset
 * in the batch + 1. A partition taken away while the batch was in flight commits nothing: its new
 * owner may have committed past these records, and Kafka would take our older offset over theirs.
 */
import type { BufferedRecord } from './batching.ts';

/** The offsets to commit, and the partitions left uncommitted because they changed hands. */
export interface CommitPlan {
  offsets: { partition: number; offset: string }[];
  lost: number[];
}

/** Plans the commit of `batch`; `ownedSinceJoin` says whether a partition was owned throughout since a join. */
export function planCommit(
  batch: readonly (Pick<BufferedRecord, 'partition' | 'join'> & { message: { offset: string } })[],
  ownedSinceJoin: (partition: number, join: number) => boolean,
): CommitPlan {
  const next = new Map<number, bigint>();
  const lost = new Set<number>();
  for (const r of batch) {
    if (!ownedSinceJoin(r.partition, r.join)) lost.add(r.partition);
    const offset = BigInt(r.message.offset) + 1n;
    if (offset > (next.get(r.partition) ?? -1n)) next.set(r.partition, offset);
  }
  for (const partition of lost) next.delete(partition);
  return { offsets: [...next].map(([partition, offset]) => ({ partition, offset: offset.toString() })), lost: [...lost] };
}
