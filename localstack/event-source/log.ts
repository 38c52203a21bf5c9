/** The emulator's structured log lines, and kafkajs' own log lines turned into them. */
import { logLevel as kafkaLogLevel, type LogEntry } from 'kafkajs';

export type EventSourceLogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Receives every log line as a message plus structured fields. */
export type EventSourceLogger = (level: EventSourceLogLevel, msg: string, fields: Record<string, unknown>) => void;

const levelRank: Record<EventSourceLogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A logger writing one JSON object per line to stdout, dropping levels below `minLevel`. */
export function jsonLineLogger(
  minLevel: EventSourceLogLevel = 'info',
  write: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
): EventSourceLogger {
  return (level, msg, fields) => {
    if (levelRank[level] < levelRank[minLevel]) return;
    write(JSON.stringify({ time: new Date().toISOString(), level, component: 'kafka-event-source', msg, ...fields }));
  };
}

/** One kafkajs log entry as our level, message and fields (its own timestamp and logger name dropped). */
export function fromKafkajsLog({ level, label, log }: LogEntry): { level: EventSourceLogLevel; msg: string; fields: Record<string, unknown> } {
  const { message, timestamp: _timestamp, logger: _logger, ...rest } = log as Record<string, unknown>;
  const ours: EventSourceLogLevel =
    level === kafkaLogLevel.ERROR ? 'error' : level === kafkaLogLevel.WARN ? 'warn' : level === kafkaLogLevel.INFO ? 'info' : 'debug';
  return { level: ours, msg: `kafkajs: ${String(message)}`, fields: { kafkajs: { label, ...rest } } };
}
