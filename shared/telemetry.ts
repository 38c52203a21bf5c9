import { Logger } from '@aws-lambda-powertools/logger';
import type { LogLevel } from '@aws-lambda-powertools/logger/types';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';

/**
 * Telemetry both functions share, created once per container: Powertools' structured JSON logger
 * and CloudWatch metrics in Embedded Metric Format (EMF: JSON lines on stdout, no API calls).
 * Service name and namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE.
 * Never log a token or a full body: log counts, codes and ids.
 */
export const logger = createLogger(process.env.POWERTOOLS_SERVICE_NAME || 'ugc-ingest');

/**
 * A Powertools Logger for one service. The functions, the local stack and the scripts all log
 * through one, so every JSON line has the same keys: level, message, timestamp, service, then the
 * fields. A `logLevel` given here wins over POWERTOOLS_LOG_LEVEL.
 */
export function createLogger(serviceName: string, logLevel?: LogLevel): Logger {
  return new Logger({ serviceName, ...(logLevel === undefined ? {} : { logLevel }) });
}

export const metrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE || 'UgcIngest',
  serviceName: process.env.POWERTOOLS_SERVICE_NAME || 'ugc-ingest',
});

/** Metric names, in one place so dashboards and alarms can be written against them. */
export const metricNames = {
  requests: 'Requests',
  eventsAccepted: 'EventsAccepted',
  eventsRejected: 'EventsRejected',
  requestsRejected: 'RequestsRejected',
  produceLatency: 'ProduceLatency',
  batchSize: 'BatchSize',
  rowsWritten: 'RowsWritten',
  deadLettered: 'DeadLettered',
  insertLatency: 'InsertLatency',
} as const;

/** Counts by a `code` dimension (one EMF document per code, so the main set keeps its dimensions). */
export function countByCode(name: string, counts: Map<string, number>): void {
  for (const [code, count] of counts) {
    const single = metrics.singleMetric();
    single.addDimension('code', code);
    single.addMetric(name, MetricUnit.Count, count);
  }
}

export { MetricUnit };
