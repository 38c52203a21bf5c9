import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

// No Docker engine runs here, so the compose file is checked for structure, not run.
const compose = parse(readFileSync(new URL('../../localstack/compose.yml', import.meta.url), 'utf8'), { merge: true }) as {
  services: Record<string, { image: string; ports?: string[]; environment?: Record<string, unknown>; profiles?: string[]; volumes?: string[] }>;
};

describe('localstack/compose.yml', () => {
  const kafka = ['kafka-1', 'kafka-2', 'kafka-3'].map((name) => ({ name, service: compose.services[name] }));

  it('runs three KRaft Kafka brokers that form one quorum, like MSK', () => {
    const ids = new Set<unknown>();
    for (const { name, service } of kafka) {
      expect(service?.image, name).toMatch(/^apache\/kafka:/);
      const env = service!.environment!;
      expect(env.KAFKA_PROCESS_ROLES).toBe('broker,controller');
      expect(env.KAFKA_CONTROLLER_QUORUM_VOTERS).toBe('1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093');
      expect(String(env.KAFKA_ADVERTISED_LISTENERS)).toContain(`INTERNAL://${name}:9092`);
      ids.add(env.KAFKA_NODE_ID);
    }
    expect(ids).toEqual(new Set([1, 2, 3]));
  });

  it('exposes each broker on its own host port, matching the KAFKA_BROKERS docs/local-stack.md gives', () => {
    const localStackDoc = readFileSync(new URL('../../docs/local-stack.md', import.meta.url), 'utf8');
    const hostPorts = kafka.map(({ service }) => service!.ports![0]!.split(':')[0]);
    expect(hostPorts).toEqual(['19092', '29092', '39092']);
    for (const { service } of kafka) {
      const external = String(service!.environment!.KAFKA_ADVERTISED_LISTENERS).match(/EXTERNAL:\/\/localhost:(\d+)/)?.[1];
      expect(service!.ports![0]).toBe(`${external}:19092`);
    }
    expect(localStackDoc).toContain('KAFKA_BROKERS=localhost:19092,localhost:29092,localhost:39092');
  });

  it('needs acks from two in-sync replicas and creates no topic by accident', () => {
    const env = kafka[0]!.service!.environment!;
    expect(env.KAFKA_DEFAULT_REPLICATION_FACTOR).toBe(3);
    expect(env.KAFKA_MIN_INSYNC_REPLICAS).toBe(2);
    expect(env.KAFKA_AUTO_CREATE_TOPICS_ENABLE).toBe('false');
  });

  it('runs a ClickHouse server on the HTTP port docs/local-stack.md gives, and LocalStack for SSM and secrets', () => {
    expect(compose.services.clickhouse?.image).toMatch(/^clickhouse\/clickhouse-server:/);
    expect(compose.services.clickhouse?.ports).toContain('8123:8123');
    expect(readFileSync(new URL('../../docs/local-stack.md', import.meta.url), 'utf8')).toContain('CLICKHOUSE_URL=http://localhost:8123');
    expect(compose.services.localstack?.image).toMatch(/^localstack\/localstack:/);
    expect(String(compose.services.localstack?.environment?.SERVICES)).toMatch(/ssm.*secretsmanager/);
  });

  it('has a cluster profile of 2 shards × 2 replicas and a Keeper, matching remote_servers and the macros', () => {
    const nodes = Object.entries(compose.services).filter(([name]) => /^clickhouse-s\d+r\d+$/.test(name));
    expect(nodes).toHaveLength(4);
    const clusterXml = readFileSync(new URL('../../localstack/clickhouse/cluster/cluster.xml', import.meta.url), 'utf8');
    const shards = [...clusterXml.matchAll(/<shard>([\s\S]*?)<\/shard>/g)].map((m) => [...m[1]!.matchAll(/<host>([^<]+)<\/host>/g)].map((h) => h[1]));
    expect(shards).toEqual([['clickhouse-s1r1', 'clickhouse-s1r2'], ['clickhouse-s2r1', 'clickhouse-s2r2']]);
    const macros = new Set<string>();
    for (const [name, node] of nodes) {
      expect(node.profiles, name).toEqual(['cluster']);
      expect(node.volumes, name).toContain('./clickhouse/cluster/cluster.xml:/etc/clickhouse-server/config.d/cluster.xml:ro');
      const { CH_SHARD, CH_REPLICA } = node.environment!;
      // Each node's {shard} macro names the shard remote_servers puts it in.
      expect(shards[Number(CH_SHARD) - 1], name).toContain(name);
      macros.add(`${CH_SHARD}/${CH_REPLICA}`);
    }
    expect(macros.size).toBe(4);
    expect(compose.services['clickhouse-keeper']?.profiles).toEqual(['cluster']);
    expect(clusterXml).toContain('<host>clickhouse-keeper</host>');
    // The single-node server stays the default (no profile).
    expect(compose.services.clickhouse?.profiles).toBeUndefined();
  });
});
