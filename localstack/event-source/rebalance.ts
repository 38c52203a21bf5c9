/**
 * What a group member knows about its partitions across rebalances: which it owns and since which
 * join, how far it has fetched each, and which start offsets (LATEST, AT_TIMESTAMP) still apply.
 * Pure state: the caller feeds it group joins, fetched offsets and commits, and applies the seeks.
 */

/** A seek to apply to the consumer after a join. */
export interface StartSeek {
  partition: number;
  offset: string;
}

export class PartitionOwnership {
  #joins = 0;
  /** For each partition we own, the join that gave it to us. */
  readonly #ownedSince = new Map<number, number>();
  /** Next offset to buffer per partition: after a rejoin kafkajs refetches from the committed offset. */
  readonly #nextOffset = new Map<number, bigint>();
  /** Start offsets of partitions the group has never committed; re-applied on every join until a commit. */
  readonly #startOffsets: Map<number, string>;

  constructor(startOffsets: ReadonlyMap<number, string> = new Map()) {
    this.#startOffsets = new Map(startOffsets);
  }

  /** Group joins so far: records are stamped with it to tell later whether they outlived their ownership. */
  get joins(): number {
    return this.#joins;
  }

  get startOffsets(): ReadonlyMap<number, string> {
    return this.#startOffsets;
  }

  /** A join gave us `assigned`: returns them as a set, and the start offsets to seek them to. */
  join(assigned: readonly number[]): { owned: ReadonlySet<number>; seeks: StartSeek[] } {
    const owned = new Set(assigned);
    this.#joins += 1;
    // A partition kept through the rebalance was owned by no one else meanwhile; a new one may have been.
    for (const partition of [...this.#ownedSince.keys()]) if (!owned.has(partition)) this.#ownedSince.delete(partition);
    for (const partition of owned) if (!this.#ownedSince.has(partition)) this.#ownedSince.set(partition, this.#joins);
    // Partitions taken away: the new owner reads them from the committed offset.
    for (const partition of [...this.#nextOffset.keys()]) if (!owned.has(partition)) this.#nextOffset.delete(partition);
    const seeks = [...this.#startOffsets].filter(([partition]) => owned.has(partition)).map(([partition, offset]) => ({ partition, offset }));
    return { owned, seeks };
  }

  /** True for a record already buffered, in flight or committed (kafkajs refetches after a rejoin). */
  isRefetch(partition: number, offset: bigint): boolean {
    const expected = this.#nextOffset.get(partition);
    return expected !== undefined && offset < expected;
  }

  /** The record at `offset` is buffered: the next one to take is offset + 1. */
  fetched(partition: number, offset: bigint): void {
    this.#nextOffset.set(partition, offset + 1n);
  }

  /**
   * Whether we have owned `partition` without a break since join `join`. If it was taken away
   * meanwhile (even if given back since), another member may have committed past our records.
   */
  ownedSinceJoin(partition: number, join: number): boolean {
    const since = this.#ownedSince.get(partition);
    return since !== undefined && since <= join;
  }

  /** Offsets of these partitions were committed: their start offsets no longer apply. */
  committed(partitions: Iterable<number>): void {
    for (const partition of partitions) this.#startOffsets.delete(partition);
  }
}
