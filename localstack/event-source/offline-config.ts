/**
 * serverless.yml → the event source mappings to emulate. Pure: takes the resolved service
 * configuration and environment, returns plain settings (no Kafka, no HTTP).
 *
 * Reads every function's `msk` and `kafka` events (osls' schemas:
 * node_modules/osls/lib/plugins/aws/package/compile/events/{msk,kafka}) plus the optional
 * `custom.kafkaEventSource` block for what serverless.yml cannot say about an ESM.
 */
import { ConfigError } from '../../shared/errors.ts';
import type { KafkaEventSourceConfig, StartingPosition } from './kafka-event-source.ts';
import type { EventSourceLogLevel } from './kafka-event-source.ts';

/** `custom.kafkaEventSource` in serverless.yml. Every key is optional. */
export interface EventSourcePluginSettings {
  /** false: do not emulate event sources at all (e.g. tests that invoke the writer themselves). */
  enabled?: boolean;
  /** Brokers to consume from; default: env KAFKA_BROKERS, then a `kafka` event's bootstrapServers. */
  brokers?: string | string[];
  /** AWS MaximumRetryAttempts (-1 = until success; AWS's default). osls has no key for it. */
  maximumRetryAttempts?: number;
  /** First retry delay; doubles per retry up to maxRetryBackoffMs. */
  retryBackoffMs?: number;
  maxRetryBackoffMs?: number;
  /** On-failure Kafka topic for events without `onFailureDestination: kafka://…` (msk has no such key). */
  onFailureTopic?: string;
  /** Lowest level of the emulator's JSON log lines. Default info. */
  logLevel?: EventSourceLogLevel;
  /** Per-function overrides, by function key. */
  functions?: Record<string, Pick<EventSourcePluginSettings, 'enabled' | 'maximumRetryAttempts' | 'onFailureTopic'>>;
}

/** The parts of osls' resolved service this needs. */
export interface ServiceDescription {
  service: string;
  stage: string;
  region: string;
  /** By function key; `name` is the deployed name (`<service>-<stage>-<key>` unless set). */
  functions: Record<string, { name?: string; events?: unknown[] }>;
  custom?: Record<string, unknown>;
}

/** One mapping to run: which function, and the event source settings (without invoke/logger). */
export interface PlannedEventSource {
  functionKey: string;
  functionName: string;
  eventType: 'msk' | 'kafka';
  config: Omit<KafkaEventSourceConfig, 'invoke' | 'logger'>;
}

interface CommonEventConfig {
  topic?: unknown;
  batchSize?: unknown;
  maximumBatchingWindow?: unknown;
  enabled?: unknown;
  startingPosition?: unknown;
  startingPositionTimestamp?: unknown;
  consumerGroupId?: unknown;
  filterPatterns?: unknown;
}
interface MskEventConfig extends CommonEventConfig {
  arn?: unknown;
}
interface KafkaEventConfig extends CommonEventConfig {
  bootstrapServers?: unknown;
  onFailureDestination?: unknown;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function brokerList(value: unknown): string[] | undefined {
  const parts = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : [];
  const list = parts.filter((p): p is string => typeof p === 'string').map((p) => p.trim()).filter(Boolean);
  return list.length > 0 ? list : undefined;
}

function optionalNumber(value: unknown, where: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  // `--param name=5` arrives as the string "5" (CloudFormation takes it as the number, so do we).
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new ConfigError(`${where} must be a number, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** `kafka://topic` → topic; anything else (SQS/SNS/S3 ARNs) is not a Kafka destination. */
export function kafkaDestinationTopic(destination: unknown): string | undefined {
  return typeof destination === 'string' && destination.startsWith('kafka://') ? destination.slice('kafka://'.length) : undefined;
}

/** Every `msk` / `kafka` event of every function, as event source settings. */
export function planEventSources(
  description: ServiceDescription,
  env: Record<string, string | undefined>,
): { sources: PlannedEventSource[]; notes: string[] } {
  const rawSettings = description.custom?.kafkaEventSource;
  const settings: EventSourcePluginSettings = isRecord(rawSettings) ? (rawSettings as EventSourcePluginSettings) : {};
  const notes: string[] = [];
  if (settings.enabled === false) return { sources: [], notes: ['custom.kafkaEventSource.enabled is false'] };

  const sources: PlannedEventSource[] = [];
  for (const [functionKey, fn] of Object.entries(description.functions)) {
    const functionName = fn.name ?? `${description.service}-${description.stage}-${functionKey}`;
    const overrides = settings.functions?.[functionKey] ?? {};
    const kafkaEvents = (fn.events ?? []).flatMap((event): { type: 'msk' | 'kafka'; spec: MskEventConfig & KafkaEventConfig }[] => {
      if (!isRecord(event)) return [];
      if (isRecord(event.msk)) return [{ type: 'msk', spec: event.msk }];
      if (isRecord(event.kafka)) return [{ type: 'kafka', spec: event.kafka }];
      return [];
    });
    if (overrides.enabled === false) {
      if (kafkaEvents.length) notes.push(`${functionKey}: disabled by custom.kafkaEventSource.functions`);
      continue;
    }

    for (const { type, spec } of kafkaEvents) {
      const where = `functions.${functionKey}.events.${type}`;
      if (spec.enabled === false) {
        notes.push(`${functionKey}: ${type} event on ${String(spec.topic)} has enabled: false`);
        continue;
      }
      if (typeof spec.topic !== 'string' || spec.topic === '') {
        throw new ConfigError(`${where}.topic must be a topic name`);
      }
      const topic = spec.topic;
      if (spec.filterPatterns !== undefined) notes.push(`${functionKey}: filterPatterns are not emulated; every record is delivered`);

      const brokers =
        brokerList(settings.brokers) ?? brokerList(env.KAFKA_BROKERS) ?? (type === 'kafka' ? brokerList(spec.bootstrapServers) : undefined);
      if (!brokers) {
        throw new ConfigError(
          `${where}: no brokers to consume from; set KAFKA_BROKERS (an MSK cluster ARN cannot be reached locally)`,
        );
      }

      const startingPosition = (spec.startingPosition ?? 'TRIM_HORIZON') as StartingPosition;
      if (!['TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP'].includes(startingPosition)) {
        throw new ConfigError(`${where}.startingPosition must be TRIM_HORIZON, LATEST or AT_TIMESTAMP`);
      }
      const startingPositionTimestamp = optionalNumber(spec.startingPositionTimestamp, `${where}.startingPositionTimestamp`);
      if (startingPosition === 'AT_TIMESTAMP' && startingPositionTimestamp === undefined) {
        throw new ConfigError(`${where}: AT_TIMESTAMP needs startingPositionTimestamp`);
      }

      // AWS names the group after the ESM's UUID unless told; locally a stable name keeps offsets
      // across restarts. One group per topic: members of one group must subscribe alike.
      const consumerGroupId =
        typeof spec.consumerGroupId === 'string' && spec.consumerGroupId !== ''
          ? spec.consumerGroupId
          : kafkaEvents.length > 1
            ? `${functionName}-${topic}`
            : functionName;

      const eventDestination = type === 'kafka' ? spec.onFailureDestination : undefined;
      if (eventDestination !== undefined && kafkaDestinationTopic(eventDestination) === undefined) {
        notes.push(`${functionKey}: onFailureDestination ${String(eventDestination)} is not a kafka:// topic; not emulated`);
      }
      const onFailureTopic = overrides.onFailureTopic ?? kafkaDestinationTopic(eventDestination) ?? settings.onFailureTopic;

      const maximumRetryAttempts = optionalNumber(
        overrides.maximumRetryAttempts ?? settings.maximumRetryAttempts,
        'custom.kafkaEventSource.maximumRetryAttempts',
      );
      const initialMs = optionalNumber(settings.retryBackoffMs, 'custom.kafkaEventSource.retryBackoffMs');
      const maxMs = optionalNumber(settings.maxRetryBackoffMs, 'custom.kafkaEventSource.maxRetryBackoffMs');

      const common = {
        brokers,
        topic,
        consumerGroupId,
        batchSize: optionalNumber(spec.batchSize, `${where}.batchSize`),
        maximumBatchingWindowSeconds: optionalNumber(spec.maximumBatchingWindow, `${where}.maximumBatchingWindow`),
        startingPosition,
        startingPositionTimestamp,
        maximumRetryAttempts,
        retryBackoff: { ...(initialMs === undefined ? {} : { initialMs }), ...(maxMs === undefined ? {} : { maxMs }) },
        onFailure: onFailureTopic ? { topic: onFailureTopic } : undefined,
        functionName,
      };
      const config: PlannedEventSource['config'] =
        type === 'msk'
          ? {
              ...common,
              kind: 'msk',
              // An ARN written as a CloudFormation reference cannot be resolved offline.
              eventSourceArn:
                typeof spec.arn === 'string'
                  ? spec.arn
                  : `arn:aws:kafka:${description.region}:000000000000:cluster/${description.service}-${description.stage}-local/00000000-0000-0000-0000-000000000000-1`,
            }
          : { ...common, kind: 'kafka' };
      sources.push({ functionKey, functionName, eventType: type, config });
    }
  }
  return { sources, notes };
}
