/** The emulator's structured log lines, and kafkajs' own log lines turned into them. */
import { logLevel as kafkaLogLevel, type LogEntry } from 'kafkajs';
import { createLogger } from '../../shared/telemetry.ts';

export type EventSourceLogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Receives every log line as a message plus structured fields. */
export type EventSourceLogger = (level: EventSourceLogLevel, msg: string, fields: Record<string, unknown>) => void;

/** Powertools' Logger, as the functions log (service kafka-event-source), dropping levels below `minLevel`. */
export function eventSourceLogger(minLevel: EventSourceLogLevel = 'info'): EventSourceLogger {
  const log = createLogger('kafka-event-source', minLevel);
  return (level, msg, fields) => log[level](msg, fields);
}

/** One kafkajs log entry as our level, message and fields (its own timestamp and logger name dropped). */
export function fromKafkajsLog({ level, label, log }: LogEntry): { level: EventSourceLogLevel; msg: string; fields: Record<string, unknown> } {
  const { message, timestamp: _timestamp, logger: _logger, ...rest } = log as Record<string, unknown>;
  const ours: EventSourceLogLevel =
    level === kafkaLogLevel.ERROR ? 'error' : level === kafkaLogLevel.WARN ? 'warn' : level === kafkaLogLevel.INFO ? 'info' : 'debug';
  return { level: ours, msg: `kafkajs: ${String(message)}`, fields: { kafkajs: { label, ...rest } } };
}
