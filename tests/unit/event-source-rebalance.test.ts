import { describe, expect, it } from 'vitest';
import { planCommit } from '../../localstack/event-source/commit.ts';
import { PartitionOwnership } from '../../localstack/event-source/rebalance.ts';
import { planStartOffsets, resolveStartOffsets } from '../../localstack/event-source/start-offsets.ts';

const fetchedAt = (partition: number, offset: number, join: number) => ({ partition, join, message: { offset: String(offset) } });

describe('event source rebalances', () => {
  it('counts joins and remembers since which join each partition is owned', () => {
    const ownership = new PartitionOwnership();
    ownership.join([0, 1]);
    ownership.join([1, 2]);
    expect(ownership.joins).toBe(2);
    expect(ownership.ownedSinceJoin(1, 1)).toBe(true); // kept through the rebalance
    expect(ownership.ownedSinceJoin(2, 1)).toBe(false); // new in join 2
    expect(ownership.ownedSinceJoin(2, 2)).toBe(true);
    expect(ownership.ownedSinceJoin(0, 1)).toBe(false); // taken away
  });

  it('treats a partition taken away and given back as newly owned', () => {
    const ownership = new PartitionOwnership();
    ownership.join([0]);
    ownership.join([]);
    ownership.join([0]);
    expect(ownership.ownedSinceJoin(0, 1)).toBe(false);
    expect(ownership.ownedSinceJoin(0, 3)).toBe(true);
  });

  it('skips records refetched after a rejoin, and forgets the position of partitions taken away', () => {
    const ownership = new PartitionOwnership();
    ownership.join([0, 1]);
    expect(ownership.isRefetch(0, 5n)).toBe(false);
    ownership.fetched(0, 5n);
    ownership.fetched(1, 9n);
    expect(ownership.isRefetch(0, 5n)).toBe(true);
    expect(ownership.isRefetch(0, 6n)).toBe(false);
    ownership.join([1]);
    ownership.join([0, 1]);
    // Partition 0 was read by someone else meanwhile: from its committed offset, whatever it is.
    expect(ownership.isRefetch(0, 3n)).toBe(false);
    expect(ownership.isRefetch(1, 9n)).toBe(true);
  });

  it('seeks start offsets of owned partitions on every join until they are committed', () => {
    const ownership = new PartitionOwnership(new Map([[0, '40'], [1, '17']]));
    expect(ownership.join([0]).seeks).toEqual([{ partition: 0, offset: '40' }]);
    expect(ownership.join([0, 1]).seeks).toEqual([{ partition: 0, offset: '40' }, { partition: 1, offset: '17' }]);
    ownership.committed([0]);
    expect(ownership.join([0, 1]).seeks).toEqual([{ partition: 1, offset: '17' }]);
    expect([...ownership.startOffsets.keys()]).toEqual([1]);
  });
});

describe('event source commit planning', () => {
  it('commits the next offset to read per partition, the highest of the batch + 1', () => {
    const plan = planCommit([fetchedAt(0, 7, 1), fetchedAt(1, 3, 1), fetchedAt(0, 8, 1), fetchedAt(1, 4, 1)], () => true);
    expect(plan).toEqual({ offsets: [{ partition: 0, offset: '9' }, { partition: 1, offset: '5' }], lost: [] });
  });

  it('commits nothing for a partition that changed hands while the batch was in flight', () => {
    const ownership = new PartitionOwnership();
    ownership.join([0, 1]);
    const batch = [fetchedAt(0, 7, 1), fetchedAt(1, 3, 1)];
    ownership.join([1]);
    ownership.join([0, 1]); // given back: another member may have committed past offset 7 meanwhile
    const plan = planCommit(batch, (partition, join) => ownership.ownedSinceJoin(partition, join));
    expect(plan).toEqual({ offsets: [{ partition: 1, offset: '4' }], lost: [0] });
  });

  it('handles offsets beyond 2^53 exactly', () => {
    expect(planCommit([fetchedAt(0, 0, 1), { partition: 0, join: 1, message: { offset: '9007199254740993' } }], () => true).offsets)
      .toEqual([{ partition: 0, offset: '9007199254740994' }]);
  });
});

describe('event source starting position', () => {
  const committed = [{ partition: 0, offset: '-1' }, { partition: 1, offset: '12' }, { partition: 2, offset: '-1' }];
  const high = new Map([[0, '100'], [1, '50'], [2, '7']]);

  it('starts never-committed partitions at the end for LATEST; committed ones keep their offset', () => {
    expect(planStartOffsets('LATEST', { committed, high })).toEqual(new Map([[0, '100'], [2, '7']]));
  });

  it('starts at the first record at or after the timestamp, or at the end where there is none', () => {
    expect(planStartOffsets('AT_TIMESTAMP', { committed, high, byTimestamp: new Map([[0, '60']]) })).toEqual(new Map([[0, '60'], [2, '7']]));
  });

  it('needs no offsets for TRIM_HORIZON (kafkajs fromBeginning) and asks the cluster nothing', async () => {
    expect(planStartOffsets('TRIM_HORIZON', { committed, high })).toEqual(new Map());
    const admin = { fetchOffsets: () => { throw new Error('asked'); }, fetchTopicOffsets: () => { throw new Error('asked'); }, fetchTopicOffsetsByTimestamp: () => { throw new Error('asked'); } };
    expect(await resolveStartOffsets(admin, { topic: 't', groupId: 'g', position: 'TRIM_HORIZON' })).toEqual(new Map());
  });

  it('asks the cluster for committed offsets, watermarks and offsets by time (in ms)', async () => {
    const asked: unknown[] = [];
    const admin = {
      fetchOffsets: async (args: unknown) => { asked.push(['fetchOffsets', args]); return [{ topic: 't', partitions: committed.map((p) => ({ ...p, metadata: null })) }]; },
      fetchTopicOffsets: async (topic: string) => { asked.push(['fetchTopicOffsets', topic]); return [...high].map(([partition, h]) => ({ partition, offset: h, high: h, low: '0' })); },
      fetchTopicOffsetsByTimestamp: async (topic: string, ms?: number) => { asked.push(['byTimestamp', topic, ms]); return [{ partition: 0, offset: '60' }, { partition: 2, offset: '7' }]; },
    };
    const offsets = await resolveStartOffsets(admin, { topic: 't', groupId: 'g', position: 'AT_TIMESTAMP', timestampS: 1_700_000_000.5 });
    expect(offsets).toEqual(new Map([[0, '60'], [2, '7']]));
    expect(asked).toEqual([
      ['fetchOffsets', { groupId: 'g', topics: ['t'] }],
      ['fetchTopicOffsets', 't'],
      ['byTimestamp', 't', 1_700_000_000_500],
    ]);
  });

  it('stops asking once every partition has a committed offset', async () => {
    const admin = {
      fetchOffsets: async () => [{ topic: 't', partitions: [{ partition: 0, offset: '3', metadata: null }] }],
      fetchTopicOffsets: async () => { throw new Error('not needed'); },
      fetchTopicOffsetsByTimestamp: async () => { throw new Error('not needed'); },
    };
    expect(await resolveStartOffsets(admin, { topic: 't', groupId: 'g', position: 'LATEST' })).toEqual(new Map());
  });
});
