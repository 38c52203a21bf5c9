// A module of its own: the event source, bundled for serverless offline (plugins/import-ts.js),
// needs only this of shared/kafka-topics.ts.
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Runs `attempt` again while it fails with UNKNOWN_TOPIC_OR_PARTITION. Each KRaft broker applies a
 * new topic's metadata on its own, so for a moment after the topic was created a broker other than
 * the one asked may not know it (seen on a busy machine); kafkajs' consumer.subscribe then throws
 * instead of retrying (tulios/kafkajs#815). A topic still unknown after `timeoutMs` is an error.
 */
export async function whileTopicUnknown<T>(attempt: () => Promise<T>, { timeoutMs = 10_000, intervalMs = 250 } = {}): Promise<T> {
  const deadline = AbortSignal.timeout(timeoutMs);
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if ((error as { type?: unknown }).type !== 'UNKNOWN_TOPIC_OR_PARTITION' || deadline.aborted) throw error;
      await sleep(intervalMs);
    }
  }
}
