/**
 * The broker settings of every local Kafka: the embedded cluster writes them into each node's
 * server.properties, and tests/integration/compose.test.ts checks that compose.yml sets the same.
 */

/** The local cluster's id (a base64url UUID, as `kafka-storage random-uuid` makes): compose uses it too. */
export const localClusterId = 'MtgqGsB6BtfR0Jun0Ox_1A';

/** Like MSK's defaults: 3 replicas, acks=all needs 2 in sync, no topic created by accident. */
export const replicationSettings = {
  'default.replication.factor': '3',
  'min.insync.replicas': '2',
  'offsets.topic.replication.factor': '3',
  'transaction.state.log.replication.factor': '3',
  'transaction.state.log.min.isr': '2',
  'auto.create.topics.enable': 'false',
} as const;

/** Settings that only make a small local cluster start and rebalance quickly. */
export const localOnlySettings = {
  // A consumer group's first join waits 3 s for more members by default; tests and npm start join often.
  'group.initial.rebalance.delay.ms': '0',
  // Stopping the whole local cluster at once: a controlled shutdown waits for leaders to move to
  // brokers that are stopping too, and for a quorum that is going away (about 10 s a stop). The
  // logs are still flushed and closed cleanly; kill -9 faults do not go through it anyway.
  'controlled.shutdown.enable': 'false',
  // A broker that stopped without a controlled shutdown (or was killed) stays registered until its
  // session expires, and cannot register again before that: 9 s by default on every restart. A
  // shorter session also moves a dead broker's leaders sooner, as the fault tests need.
  'broker.session.timeout.ms': '3000',
  'broker.heartbeat.interval.ms': '750',
} as const;

export interface NodeAddresses {
  /** 1..N */
  id: number;
  brokerPort: number;
  controllerPort: number;
}

/** server.properties of one node of an N-node combined (broker + controller) KRaft cluster on 127.0.0.1. */
export function nodeProperties(node: NodeAddresses, all: NodeAddresses[], logDir: string): Record<string, string> {
  // Fewer than 3 nodes cannot hold 3 replicas: scale replication down, keep min ISR below it.
  const replicas = Math.min(3, all.length);
  const minIsr = Math.min(2, Math.max(1, replicas - 1));
  return {
    'process.roles': 'broker,controller',
    'node.id': String(node.id),
    'controller.quorum.voters': all.map((n) => `${n.id}@127.0.0.1:${n.controllerPort}`).join(','),
    listeners: `PLAINTEXT://127.0.0.1:${node.brokerPort},CONTROLLER://127.0.0.1:${node.controllerPort}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${node.brokerPort}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'log.dirs': logDir,
    ...replicationSettings,
    ...(replicas < 3 ? {
      'default.replication.factor': String(replicas),
      'min.insync.replicas': String(minIsr),
      'offsets.topic.replication.factor': String(replicas),
      'transaction.state.log.replication.factor': String(replicas),
      'transaction.state.log.min.isr': String(minIsr),
    } : {}),
    ...localOnlySettings,
  };
}

/** A Java properties file's text (values here never need escaping: no newlines or backslashes). */
export function propertiesText(props: Record<string, string>): string {
  return `${Object.entries(props).map(([k, v]) => `${k}=${v}`).join('\n')}\n`;
}
