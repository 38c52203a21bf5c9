import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emittedMetrics } from './deploy-metrics.ts';
import {
  alarmTopicArn, brokersOn, clickhouseSecretArn, clusterArn, kmsKeyArn, leakedSecret, packageStage, prodParams, repoRoot, run, scramSecretArn,
  refusalOf, type Json, type Packaged,
} from './deploy-stage.ts';

// The deploy path without an AWS account: `serverless package --stage prod` writes the
// CloudFormation template with no credentials; these tests read it as CloudFormation would.

/** A parameter's value: its default, which the stage's params set (serverless.yml, resources.Parameters). */
const parameterValue = (template: Json, value: unknown): unknown =>
  (value as Json)?.Ref && template.Parameters?.[(value as Json).Ref] ? template.Parameters[(value as Json).Ref].Default : value;

/** Evaluates the template's Conditions (Equals/Not/And of parameters and literals), as CloudFormation would at deploy. */
function conditionValue(template: Json, name: string): boolean {
  const evaluate = (c: Json): boolean => {
    if (c['Fn::Equals']) return parameterValue(template, c['Fn::Equals'][0]) === parameterValue(template, c['Fn::Equals'][1]);
    if (c['Fn::Not']) return !evaluate(c['Fn::Not'][0]);
    if (c['Fn::And']) return (c['Fn::And'] as Json[]).every(evaluate);
    if (c.Condition) return conditionValue(template, c.Condition);
    throw new Error(`cannot evaluate ${JSON.stringify(c)}`);
  };
  return evaluate(template.Conditions[name]);
}

/** Replaces every Fn::If by its chosen branch and drops AWS::NoValue, like CloudFormation does. */
function resolveIfs(template: Json, value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => resolveIfs(template, v)).filter((v) => v !== undefined);
  if (value && typeof value === 'object') {
    const obj = value as Json;
    if (obj['Fn::If']) {
      const [condition, whenTrue, whenFalse] = obj['Fn::If'];
      return resolveIfs(template, conditionValue(template, condition) ? whenTrue : whenFalse);
    }
    if (obj.Ref === 'AWS::NoValue') return undefined;
    return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, resolveIfs(template, v)]).filter(([, v]) => v !== undefined));
  }
  return value;
}

interface Statement { Effect: string; Action: string | string[]; Resource: unknown; Condition?: Json }

function statements(template: Json, roleLogicalId: string): Statement[] {
  const role = resolveIfs(template, template.Resources[roleLogicalId]) as Json;
  return role.Properties.Policies.flatMap((p: Json) => p.PolicyDocument.Statement as Statement[]);
}
const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);
const allActions = (list: Statement[]) => list.flatMap(actionsOf);
const withAction = (list: Statement[], action: string) => list.filter((s) => actionsOf(s).includes(action));
/** Joins an Fn::Join of Refs/Selects/Splits over the parameters into the value CloudFormation makes. */
function arnOf(template: Json, resource: unknown): unknown {
  const evaluate = (v: unknown): unknown => {
    if (typeof v === 'string') return v;
    const o = v as Json;
    if (o.Ref && template.Parameters?.[o.Ref]) return template.Parameters[o.Ref].Default;
    if (o.Ref) return `{${o.Ref}}`;
    if (o['Fn::Split']) return String(evaluate(o['Fn::Split'][1])).split(o['Fn::Split'][0]);
    if (o['Fn::Select']) return (evaluate(o['Fn::Select'][1]) as string[])[o['Fn::Select'][0]];
    if (o['Fn::Join']) return (o['Fn::Join'][1] as unknown[]).map(evaluate).join(o['Fn::Join'][0]);
    if (o['Fn::GetAtt']) return `{${o['Fn::GetAtt'].join('.')}}`;
    throw new Error(`cannot evaluate ${JSON.stringify(o)}`);
  };
  return Array.isArray(resource) ? resource.map(evaluate) : evaluate(resource);
}

// AWS requires Resource "*" for these: Lambda's VPC network interfaces and ec2 Describe calls.
const actionsThatNeedStar = new Set([
  'ec2:CreateNetworkInterface', 'ec2:DescribeNetworkInterfaces', 'ec2:DeleteNetworkInterface',
  'ec2:AssignPrivateIpAddresses', 'ec2:UnassignPrivateIpAddresses',
  'ec2:DescribeVpcs', 'ec2:DescribeSubnets', 'ec2:DescribeSecurityGroups',
]);

const { jwtSecretParameter: _stored, ...withoutJwtSecret } = prodParams;
/**
 * The other variant: SCRAM on its port, JWT from the Auth service's JWKS, a customer-managed key, bounded
 * retries to an on-failure topic other than the dead-letter topic, an alarm topic, no docs routes, and numeric
 * params passed as --param (always strings) that the template must still carry as numbers.
 */
const scramParams: Record<string, string> = {
  ...withoutJwtSecret, jwtJwksUrl: 'https://auth.cinema.example.com/.well-known/jwks.json',
  kafkaBrokers: brokersOn(9096), kafkaSaslMechanism: 'scram-sha-512', kafkaSaslSecretArn: scramSecretArn, secretsKmsKeyArn: kmsKeyArn,
  writerMaximumRetryAttempts: '5', writerOnFailureTopic: 'ugc.events.failed', alarmTopicArn,
  eventsTopicPartitions: '24', writerMaximumPollers: '4', writerBatchSize: '2000', writerBatchingWindow: '2',
  httpThrottleRateLimit: '800', httpThrottleBurstLimit: '1600', httpPublicRouteRateLimit: '8', ingestReservedConcurrency: '200', readerReservedConcurrency: '30',
  readerThrottleRateLimit: '300', readerThrottleBurstLimit: '600', apiDocs: 'false', corsAllowedOrigins: 'https://cinema.example.com',
  writerOffsetLagAlarmThreshold: '50000', writerStalledAlarmHours: '12', logRetentionDays: '14',
};

let iam: Packaged;
let scram: Packaged;

beforeAll(async () => {
  // One after the other: serverless-esbuild stages every function's zip in the shared
  // `.serverless/` folder whatever --package says, so two packages at once race on those files.
  iam = await packageStage('prod', prodParams);
  scram = await packageStage('prod', scramParams);
}, 180_000);

afterAll(async () => {
  await Promise.all([iam, scram].filter(Boolean).map((p) => rm(p.dir, { recursive: true, force: true })));
});

describe('serverless package --stage prod (MSK IAM, the default)', () => {
  it('packages the three functions on nodejs22.x arm64, each with its own role, in the VPC', () => {
    const { Resources } = iam.template;
    for (const [fn, role] of [['Ingest', 'IngestRole'], ['Writer', 'WriterRole'], ['Reader', 'ReaderRole']] as const) {
      const props = Resources[`${fn}LambdaFunction`].Properties;
      expect(props.Runtime).toBe('nodejs22.x');
      expect(props.Architectures).toEqual(['arm64']);
      expect(props.Role).toEqual({ 'Fn::GetAtt': [role, 'Arn'] });
      expect(props.VpcConfig).toEqual({
        SubnetIds: { 'Fn::Split': [',', prodParams.subnetIds] },
        SecurityGroupIds: { 'Fn::Split': [',', prodParams.securityGroupIds] },
      });
    }
    // No shared default role that every function would inherit.
    expect(Resources.IamRoleLambdaExecution).toBeUndefined();
  });

  it('passes the parameters, and only parameter names or ARNs for secrets', () => {
    const { Resources } = iam.template;
    const ingest = Resources.IngestLambdaFunction.Properties.Environment.Variables;
    const writer = Resources.WriterLambdaFunction.Properties.Environment.Variables;
    expect(ingest).toMatchObject({
      KAFKA_BROKERS: prodParams.kafkaBrokers, KAFKA_TOPIC: 'ugc.events', KAFKA_SASL_MECHANISM: 'aws-msk-iam',
      KAFKA_IDEMPOTENT: 'true', JWT_SECRET_PARAMETER: '/ugc-ingest/prod/jwt-secret', JWT_SECRET: '',
      JWT_ISSUER: prodParams.jwtIssuer, JWT_AUDIENCE: 'ugc-ingest', POWERTOOLS_SERVICE_NAME: 'ingest', POWERTOOLS_METRICS_NAMESPACE: 'UgcIngest',
    });
    expect(writer).toMatchObject({
      CLICKHOUSE_URL: prodParams.clickhouseUrl, CLICKHOUSE_PASSWORD: '', CLICKHOUSE_PASSWORD_SECRET_ARN: clickhouseSecretArn,
      KAFKA_DLQ_TOPIC: 'ugc.events.dlq', POWERTOOLS_SERVICE_NAME: 'writer',
    });
    // JWT_SECRET / CLICKHOUSE_PASSWORD were set in the packaging shell: a prod template ignores them.
    expect(JSON.stringify(iam.template)).not.toContain(leakedSecret);
  });

  it('has the HTTP API routes, CORS for the cinema pages only, and throttling', () => {
    const { Resources } = iam.template;
    expect(routeKeys(iam.template)).toEqual(expect.arrayContaining([
      'POST /v1/events', 'POST /v1/films/{film_id}/progress', 'GET /v1/health', 'GET /v1/openapi.json', 'GET /v1/docs',
    ]));
    expect(Resources.HttpApi.Properties.CorsConfiguration).toEqual({
      AllowOrigins: ['https://cinema.example.com', 'https://www.cinema.example.com'], AllowHeaders: ['Content-Type', 'Authorization', 'Content-Encoding'],
      AllowMethods: ['GET', 'POST', 'OPTIONS'], ExposeHeaders: ['Retry-After', 'WWW-Authenticate'], MaxAge: 600,
    });
    // A route without settings of its own would get a public route's limit.
    expect(Resources.HttpApiStage.Properties.DefaultRouteSettings).toEqual({ ThrottlingRateLimit: 10, ThrottlingBurstLimit: 10 });
    expect(Resources.IngestLambdaFunction.Properties.ReservedConcurrentExecutions).toBe(100);
  });

  it('maps the events topic to the writer: batching, starting position, group, pollers, retries, on-failure topic', () => {
    const mappings = Object.entries(iam.template.Resources).filter(([, r]) => (r as Json).Type === 'AWS::Lambda::EventSourceMapping');
    expect(mappings).toHaveLength(1);
    const [logicalId, mapping] = mappings[0] as [string, Json];
    expect(logicalId).toBe('WriterEventSourceMappingMSKMskClusterArnUgcevents');
    expect(iam.template.Parameters.MskClusterArn).toMatchObject({ Type: 'String', Default: clusterArn });
    expect(resolveIfs(iam.template, mapping.Properties)).toEqual({
      EventSourceArn: { Ref: 'MskClusterArn' },
      FunctionName: { 'Fn::GetAtt': ['WriterLambdaFunction', 'Arn'] },
      Topics: ['ugc.events'],
      StartingPosition: 'TRIM_HORIZON',
      BatchSize: 1000,
      MaximumBatchingWindowInSeconds: 1,
      AmazonManagedKafkaEventSourceConfig: { ConsumerGroupId: 'ugc-ingest-writer' },
      ProvisionedPollerConfig: { MinimumPollers: 1, MaximumPollers: 3 },
      // A failed batch (ClickHouse or Kafka down) is retried until it succeeds: no on-failure topic,
      // with which AWS would retry at most 10 times and then move valid events out of the pipeline.
      MaximumRetryAttempts: -1,
      BisectBatchOnFunctionError: false,
      MetricsConfig: { Metrics: ['EventCount', 'ErrorCount', 'KafkaMetrics'] },
    });
  });

  it('alarms when the writer falls behind: with retries until success, a failing batch holds its partition', () => {
    const alarm = resolveIfs(iam.template, iam.template.Resources.WriterOffsetLagAlarm.Properties) as Json;
    expect(alarm).toMatchObject({
      Namespace: 'AWS/Lambda', MetricName: 'OffsetLag', Dimensions: [{ Name: 'FunctionName', Value: { Ref: 'WriterLambdaFunction' } }],
      Statistic: 'Maximum', ComparisonOperator: 'GreaterThanThreshold', Threshold: 10000, TreatMissingData: 'notBreaching',
    });
    expect(arnOf(iam.template, alarm.AlarmActions)).toEqual(['{AlarmTopic}']);
    const notifying = resolveIfs(scram.template, scram.template.Resources.WriterOffsetLagAlarm.Properties) as Json;
    expect(arnOf(scram.template, notifying.AlarmActions)).toEqual([alarmTopicArn]);
  });

  it('keeps the offline emulator on the same retries and on-failure topic as the deployed mapping', async () => {
    const state = JSON.parse(await readFile(join(iam.dir, 'serverless-state.json'), 'utf8')) as Json;
    expect(state.service.custom.kafkaEventSource).toMatchObject({ maximumRetryAttempts: -1, onFailureTopic: '' });
  });

  it('grants each function only its own MSK, secret and log permissions', () => {
    const t = iam.template;
    const topic = (name: string) => `arn:aws:kafka:eu-west-1:123456789012:topic/ugc-prod/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-3/${name}`;
    const group = 'arn:aws:kafka:eu-west-1:123456789012:group/ugc-prod/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-3/ugc-ingest-writer';

    const ingest = statements(t, 'IngestRole');
    expect(arnOf(t, withAction(ingest, 'kafka-cluster:Connect')[0]!.Resource)).toBe(clusterArn);
    expect(withAction(ingest, 'kafka-cluster:WriteData').map((s) => arnOf(t, s.Resource))).toEqual([topic('ugc.events')]);
    expect(allActions(ingest)).not.toContain('kafka-cluster:ReadData');
    expect(withAction(ingest, 'ssm:GetParameter').map((s) => arnOf(t, s.Resource)))
      .toEqual(['arn:{AWS::Partition}:ssm:{AWS::Region}:{AWS::AccountId}:parameter/ugc-ingest/prod/jwt-secret']);
    expect(allActions(ingest)).not.toContain('secretsmanager:GetSecretValue');
    expect(withAction(ingest, 'logs:PutLogEvents')[0]!.Resource).toEqual({ 'Fn::GetAtt': ['IngestLogGroup', 'Arn'] });

    const writer = statements(t, 'WriterRole');
    expect(withAction(writer, 'kafka-cluster:ReadData').map((s) => arnOf(t, s.Resource))).toEqual([topic('ugc.events')]);
    expect(withAction(writer, 'kafka-cluster:AlterGroup').map((s) => arnOf(t, s.Resource))).toEqual([group]);
    // The function's poison records and the mapping's failed batches: the dead-letter topic only.
    expect(withAction(writer, 'kafka-cluster:WriteData').flatMap((s) => arnOf(t, s.Resource))).toEqual([topic('ugc.events.dlq')]);
    expect(arnOf(t, withAction(writer, 'kafka:GetBootstrapBrokers')[0]!.Resource)).toBe(clusterArn);
    expect(withAction(writer, 'secretsmanager:GetSecretValue').map((s) => arnOf(t, s.Resource))).toEqual([clickhouseSecretArn]);
    expect(allActions(writer)).not.toContain('ssm:GetParameter');
    // AWS-managed keys: no kms statement at all.
    expect([...allActions(ingest), ...allActions(writer)]).not.toContain('kms:Decrypt');
  });

  it('uses no wildcard beyond what AWS requires', () => {
    for (const role of ['IngestRole', 'WriterRole', 'ReaderRole']) {
      for (const statement of statements(iam.template, role)) {
        for (const action of actionsOf(statement)) expect(action, `${role}: ${action}`).not.toContain('*');
        if (JSON.stringify(statement.Resource).includes('*') && statement.Resource !== '*') {
          // Only the log group ARN (CloudFormation's `:*` suffix) may contain a star.
          expect(statement.Resource, role).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/LogGroup$/), 'Arn'] });
        }
        if (statement.Resource === '*') {
          for (const action of actionsOf(statement)) expect(actionsThatNeedStar.has(action), `${role}: ${action} on *`).toBe(true);
        }
      }
    }
  });

  it('keeps logs for the configured retention', () => {
    for (const fn of ['Ingest', 'Writer', 'Reader']) {
      expect(iam.template.Resources[`${fn}LogGroup`].Properties).toEqual({ LogGroupName: `/aws/lambda/ugc-ingest-prod-${fn.toLowerCase()}`, RetentionInDays: 30 });
    }
  });

  it('bundles without the AWS SDK, which the runtime provides, and loads it only when a secret is read', async () => {
    const { stdout } = await run('unzip', ['-p', join(iam.dir, 'ingest.zip'), 'functions/ingest/handler.mjs'], { maxBuffer: 64 * 1024 * 1024 });
    // Booleans, not toMatch on the bundle: a failure would print half a megabyte of minified code.
    expect(/import\(\s*"@aws-sdk\/client-ssm"\s*\)/.test(stdout), 'a dynamic import of the runtime SDK').toBe(true);
    expect(/from\s*"@aws-sdk\/client-(ssm|secrets-manager)"/.test(stdout), 'no static SDK import (it would load at every cold start)').toBe(false);
    expect(stdout.includes('class SSMClient'), 'the SDK is not bundled').toBe(false);
  });

  // That producing still works from these bundles is shown through serverless offline (tests/e2e).
  it("bundles kafkajs without its consumer, the requests a producer never sends and, where unused, the admin client (plugins/esbuild.cjs)", async () => {
    for (const fn of ['ingest', 'writer']) {
      const { stdout } = await run('unzip', ['-p', join(iam.dir, `${fn}.zip`), `functions/${fn}/handler.mjs`], { maxBuffer: 64 * 1024 * 1024 });
      expect(stdout.includes('kafkajs/src/index.js ./consumer is not bundled'), `${fn}: the consumer is a stub`).toBe(true);
      expect(stdout.includes('kafkajs/src/protocol/requests/index.js ./fetch is not bundled'), `${fn}: Fetch is a stub`).toBe(true);
      // Only the ingest calls kafka.admin() (its health check).
      expect(stdout.includes('kafkajs/src/index.js ./admin is not bundled'), `${fn}: the admin client is a stub`).toBe(fn === 'writer');
    }
  });
});

describe('serverless package --stage prod with SASL/SCRAM, a JWKS, a customer-managed key and an on-failure topic', () => {
  it('gives the mapping the SCRAM secret and both roles secretsmanager and kms permissions the framework does not add', () => {
    const t = scram.template;
    const mapping = resolveIfs(t, t.Resources.WriterEventSourceMappingMSKMskClusterArnUgcevents.Properties) as Json;
    expect(mapping.SourceAccessConfigurations.map((c: Json) => ({ ...c, URI: arnOf(t, c.URI) }))).toEqual([{ Type: 'SASL_SCRAM_512_AUTH', URI: scramSecretArn }]);
    // Ops chose bounded retries with an on-failure topic for this stage.
    expect(mapping.MaximumRetryAttempts).toBe(5);
    expect(arnOf(t, mapping.DestinationConfig.OnFailure.Destination)).toBe('kafka://ugc.events.failed');
    expect(t.Resources.IngestLambdaFunction.Properties.Environment.Variables).toMatchObject({
      KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_SECRET_ARN: scramSecretArn,
    });
    for (const role of ['IngestRole', 'WriterRole']) {
      const list = statements(t, role);
      expect(withAction(list, 'secretsmanager:GetSecretValue').map((s) => arnOf(t, s.Resource))).toContain(scramSecretArn);
      // No IAM-auth data-plane grants when the cluster authenticates with SCRAM.
      expect(allActions(list).filter((a) => a.startsWith('kafka-cluster:'))).toEqual([]);
      const kms = withAction(list, 'kms:Decrypt');
      expect(kms).toHaveLength(1);
      expect(arnOf(t, kms[0]!.Resource)).toBe(kmsKeyArn);
      expect(kms[0]!.Condition).toHaveProperty(['StringEquals', 'kms:ViaService']);
    }
  });
});

const mappingId = 'WriterEventSourceMappingMSKMskClusterArnUgcevents';
const topicArn = (name: string) => `arn:aws:kafka:eu-west-1:123456789012:topic/ugc-prod/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-3/${name}`;
// Every alarm of the stack, in the order the dashboard's alarm widget shows them.
const alarmIds = ['IngestErrorsAlarm', 'IngestThrottlesAlarm', 'ApiServerErrorsAlarm', 'IngestKafkaUnavailableAlarm',
  'WriterErrorsAlarm', 'WriterDeadLettersAlarm', 'WriterOnFailureDeliveriesAlarm', 'WriterDroppedEventsAlarm',
  'WriterOffsetLagAlarm', 'WriterMappingErrorsAlarm', 'WriterNotPollingAlarm', 'WriterStalledAlarm'];
// AWS's event source mapping metrics per MetricsConfig group (Lambda developer guide, "Event source mapping metrics", Kafka).
const mappingMetricGroups: Record<string, string[]> = {
  EventCount: ['PolledEventCount', 'FilteredOutEventCount', 'InvokedEventCount', 'FailedInvokeEventCount', 'DroppedEventCount', 'OnFailureDestinationDeliveredEventCount', 'CommittedEventCount'],
  ErrorCount: ['PollingErrorCount', 'InvokeErrorCount', 'OnFailureDestinationDeliveryErrorCount', 'SchemaRegistryErrorCount', 'CommitErrorCount'],
  KafkaMetrics: ['MaxOffsetLag', 'SumOffsetLag'],
};
// AWS/Lambda's own per-function metrics the dashboard and alarms may use.
const functionMetrics = ['OffsetLag', 'Errors', 'Invocations', 'Throttles', 'Duration', 'ConcurrentExecutions'];
// An HTTP API's metrics in AWS/ApiGateway (API Gateway developer guide, "Monitor CloudWatch metrics for HTTP APIs"), by ApiId.
const httpApiMetrics = ['4xx', '5xx', 'Count', 'IntegrationLatency', 'Latency', 'DataProcessed'];
const routeKeys = (t: Json): string[] => (Object.values(t.Resources) as Json[]).filter((r) => r.Type === 'AWS::ApiGatewayV2::Route').map((r) => r.Properties.RouteKey);

describe('what the template review found (issue 17), in both variants', () => {
  it('lets the writer write the topic its mapping moves failed batches to, whichever it is, beside the dead-letter topic', () => {
    expect(withAction(statements(iam.template, 'WriterRole'), 'kafka-cluster:WriteData').flatMap((s) => arnOf(iam.template, s.Resource))).toEqual([topicArn('ugc.events.dlq')]);
    // An IAM-auth stage with another on-failure topic: the grant follows the destination.
    const withOtherTopic = structuredClone(iam.template);
    withOtherTopic.Parameters.WriterOnFailureTopic.Default = 'ugc.events.failed';
    const mapping = resolveIfs(withOtherTopic, withOtherTopic.Resources[mappingId].Properties) as Json;
    const destinationTopic = String(arnOf(withOtherTopic, mapping.DestinationConfig.OnFailure.Destination)).replace(/^kafka:\/\//, '');
    expect(destinationTopic).toBe('ugc.events.failed');
    expect(withAction(statements(withOtherTopic, 'WriterRole'), 'kafka-cluster:WriteData').flatMap((s) => arnOf(withOtherTopic, s.Resource)))
      .toEqual([topicArn('ugc.events.dlq'), topicArn(destinationTopic)]);
  });

  it('gives the functions the brokers of their authentication: IAM on 9098, SCRAM on 9096, in the tests and docs/operations.md', async () => {
    const ports = (p: Packaged) => (['Ingest', 'Writer', 'Reader'] as const).flatMap((fn) =>
      String(p.template.Resources[`${fn}LambdaFunction`].Properties.Environment.Variables.KAFKA_BROKERS).split(',').map((b) => b.split(':').pop()));
    expect(new Set(ports(iam))).toEqual(new Set(['9098']));
    expect(new Set(ports(scram))).toEqual(new Set(['9096']));
    // The operations page's deploy commands: a SCRAM one passes the 9096 brokers, the others the 9098
    // ones; and its security-group advice names both ports.
    const operations = await readFile(join(repoRoot, 'docs/operations.md'), 'utf8');
    const commands = operations.match(/npx serverless deploy(?:[^\n\\]|\\\n)*/g) ?? [];
    const withBrokers = commands.filter((c) => c.includes('kafkaBrokers='));
    expect(withBrokers.map((c) => c.includes('scram-sha-512'))).toEqual(expect.arrayContaining([true, false]));
    for (const command of withBrokers) {
      const brokers = command.match(/kafkaBrokers=([^"\s]+)/)![1]!;
      expect(new Set(brokers.split(',').map((b) => b.split(':').pop())), command).toEqual(new Set([command.includes('scram-sha-512') ? '9096' : '9098']));
    }
    expect(operations).toMatch(/security group[^.]*9098[^.]*9096|security group[^.]*9096[^.]*9098/i);
  });

  it("reserves the writer what its mapping can run at once: one invocation per partition, at most 5 per poller", () => {
    const reserved = (p: Packaged) => p.template.Resources.WriterLambdaFunction.Properties.ReservedConcurrentExecutions;
    const pollers = (p: Packaged) => p.template.Resources[mappingId].Properties.ProvisionedPollerConfig.MaximumPollers;
    // 6 partitions (the default), 3 pollers: 6. 24 partitions, 4 pollers: 20, the pollers' limit.
    expect([reserved(iam), pollers(iam)]).toEqual([6, 3]);
    expect([reserved(scram), pollers(scram)]).toEqual([20, 4]);
  });

  it('alarms when the mapping never polls (disabled, no route, no permission) and when it fails to poll, invoke or commit', () => {
    for (const p of [iam, scram]) {
      const t = p.template;
      const mappingRef = { Ref: mappingId };
      expect(t.Resources[mappingId].Properties.MetricsConfig.Metrics).toEqual(expect.arrayContaining(['EventCount', 'ErrorCount']));
      const silent = resolveIfs(t, t.Resources.WriterNotPollingAlarm.Properties) as Json;
      // A polling mapping emits PolledEventCount (0 for an empty poll): none at all is the breach.
      expect(silent).toMatchObject({
        Namespace: 'AWS/Lambda', MetricName: 'PolledEventCount', Dimensions: [{ Name: 'EventSourceMappingUUID', Value: mappingRef }],
        Statistic: 'SampleCount', ComparisonOperator: 'LessThanThreshold', Threshold: 1, TreatMissingData: 'breaching',
      });
      const errors = resolveIfs(t, t.Resources.WriterMappingErrorsAlarm.Properties) as Json;
      const counted = (errors.Metrics as Json[]).filter((m) => m.MetricStat).map((m) => m.MetricStat.Metric);
      expect(counted.map((m) => m.MetricName).sort()).toEqual(['CommitErrorCount', 'InvokeErrorCount', 'OnFailureDestinationDeliveryErrorCount', 'PollingErrorCount']);
      for (const m of counted) expect(m.Dimensions).toEqual([{ Name: 'EventSourceMappingUUID', Value: mappingRef }]);
      const expression = (errors.Metrics as Json[]).find((m) => m.Expression)!;
      for (const m of errors.Metrics as Json[]) if (m.MetricStat) expect(expression.Expression).toContain(m.Id);
      expect(errors).toMatchObject({ ComparisonOperator: 'GreaterThanThreshold', Threshold: 0 });
    }
  });

  it("alarms long before ugc.events' retention (7 days) ends while a batch keeps failing, and every alarm notifies the alarm topic", () => {
    const week = 7 * 24 * 3600;
    for (const [p, hours] of [[iam, 24], [scram, 12]] as const) {
      const stalled = resolveIfs(p.template, p.template.Resources.WriterStalledAlarm.Properties) as Json;
      expect(stalled).toMatchObject({
        Namespace: 'AWS/Lambda', MetricName: 'Errors', Dimensions: [{ Name: 'FunctionName', Value: { Ref: 'WriterLambdaFunction' } }],
        Statistic: 'Sum', ComparisonOperator: 'GreaterThanThreshold', Threshold: 0, Period: 3600,
      });
      expect(stalled.Period * stalled.EvaluationPeriods).toBe(hours * 3600);
      expect(stalled.Period * stalled.EvaluationPeriods).toBeLessThanOrEqual(week / 4);
    }
    for (const id of alarmIds) {
      // Without alarmTopicArn, the stack's own topic (see 'notifies one topic' below).
      expect(arnOf(iam.template, (resolveIfs(iam.template, iam.template.Resources[id].Properties) as Json).AlarmActions), id).toEqual(['{AlarmTopic}']);
      expect(arnOf(scram.template, (resolveIfs(scram.template, scram.template.Resources[id].Properties) as Json).AlarmActions), id).toEqual([alarmTopicArn]);
    }
  });

  it('logs every HTTP API request as one JSON line without headers, tokens or bodies', () => {
    for (const p of [iam, scram]) {
      const { AccessLogSettings } = p.template.Resources.HttpApiStage.Properties;
      expect(AccessLogSettings.DestinationArn).toEqual({ 'Fn::GetAtt': ['HttpApiLogGroup', 'Arn'] });
      const format = JSON.parse(AccessLogSettings.Format) as Record<string, string>;
      expect(format).toMatchObject({ requestId: '$context.requestId', route: '$context.routeKey', status: '$context.status' });
      expect(AccessLogSettings.Format).not.toMatch(/authorization|header|token|body|jwt/i);
      expect(p.template.Resources.HttpApiLogGroup.Properties.RetentionInDays).toBe(p === iam ? 30 : 14);
    }
  });

  it('reserves concurrency for the reader too, lets every VPC function describe subnets, and drops kafka:DescribeCluster', () => {
    expect(iam.template.Resources.ReaderLambdaFunction.Properties.ReservedConcurrentExecutions).toBe(50);
    expect(scram.template.Resources.ReaderLambdaFunction.Properties.ReservedConcurrentExecutions).toBe(30);
    for (const p of [iam, scram]) {
      for (const role of ['IngestRole', 'WriterRole', 'ReaderRole']) {
        // AWSLambdaVPCAccessExecutionRole's actions, on "*".
        const vpc = withAction(statements(p.template, role), 'ec2:CreateNetworkInterface')[0]!;
        expect(actionsOf(vpc), role).toEqual(expect.arrayContaining(['ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets', 'ec2:DeleteNetworkInterface', 'ec2:AssignPrivateIpAddresses', 'ec2:UnassignPrivateIpAddresses']));
        expect(allActions(statements(p.template, role)), role).not.toContain('kafka:DescribeCluster');
      }
      expect(allActions(statements(p.template, 'WriterRole'))).toContain('kafka:DescribeClusterV2');
    }
  });

  it('emits numeric properties as numbers in every variant, whatever --param passed', () => {
    const numericKeys = new Set(['BatchSize', 'MaximumBatchingWindowInSeconds', 'MaximumRetryAttempts', 'MinimumPollers', 'MaximumPollers',
      'ReservedConcurrentExecutions', 'Threshold', 'ThrottlingRateLimit', 'ThrottlingBurstLimit', 'RetentionInDays', 'EvaluationPeriods',
      'DatapointsToAlarm', 'Period', 'MemorySize', 'Timeout']);
    for (const p of [iam, scram]) {
      const found: string[] = [];
      const walk = (value: unknown, path: string): void => {
        if (Array.isArray(value)) value.forEach((v, i) => walk(v, `${path}/${i}`));
        else if (value && typeof value === 'object') {
          for (const [k, v] of Object.entries(value)) {
            if (numericKeys.has(k)) { found.push(k); expect(typeof v, `${path}/${k} = ${JSON.stringify(v)}`).toBe('number'); }
            walk(v, `${path}/${k}`);
          }
        }
      };
      walk(p.template.Resources, 'Resources');
      expect(new Set(found)).toEqual(numericKeys);
    }
    expect(scram.template.Resources[mappingId].Properties).toMatchObject({ BatchSize: 2000, MaximumBatchingWindowInSeconds: 2, MaximumRetryAttempts: 5 });
    expect(scram.template.Resources.HttpApiStage.Properties.RouteSettings['POST /v1/events']).toEqual({ ThrottlingRateLimit: 396, ThrottlingBurstLimit: 796 });
  });
});

/** A metric's dimensions as CloudFormation gives them: a literal, or a Ref shown as {Id}. */
const dimensionsOf = (m: Json): Record<string, string> =>
  Object.fromEntries((m.Dimensions as Json[]).map((d) => [d.Name, typeof d.Value === 'string' ? d.Value : `{${d.Value.Ref}}`]));

describe('alarms on every way events stop or leave the main path (issue 28), in both variants', () => {
  const ingestFunction = { FunctionName: '{IngestLambdaFunction}' };
  const mapping = { EventSourceMappingUUID: `{${mappingId}}` };
  // Within minutes: the ingest's in 3 of the last 5 minutes; the writer's and the mapping's in 5-minute periods.
  const expected: [string, string, string, Record<string, string>, { Period: number; EvaluationPeriods: number; DatapointsToAlarm?: number }][] = [
    ['IngestErrorsAlarm', 'AWS/Lambda', 'Errors', ingestFunction, { Period: 60, EvaluationPeriods: 5, DatapointsToAlarm: 3 }],
    ['IngestThrottlesAlarm', 'AWS/Lambda', 'Throttles', ingestFunction, { Period: 60, EvaluationPeriods: 5, DatapointsToAlarm: 3 }],
    ['IngestKafkaUnavailableAlarm', 'UgcIngest', 'RequestsRejected', { code: 'kafka_unavailable', service: 'ingest' }, { Period: 60, EvaluationPeriods: 5, DatapointsToAlarm: 3 }],
    ['WriterErrorsAlarm', 'AWS/Lambda', 'Errors', { FunctionName: '{WriterLambdaFunction}' }, { Period: 300, EvaluationPeriods: 3, DatapointsToAlarm: 2 }],
    ['WriterDeadLettersAlarm', 'UgcIngest', 'DeadLettered', { service: 'writer' }, { Period: 300, EvaluationPeriods: 1 }],
    ['WriterOnFailureDeliveriesAlarm', 'AWS/Lambda', 'OnFailureDestinationDeliveredEventCount', mapping, { Period: 300, EvaluationPeriods: 1 }],
    ['WriterDroppedEventsAlarm', 'AWS/Lambda', 'DroppedEventCount', mapping, { Period: 300, EvaluationPeriods: 1 }],
  ];

  it.each(expected)('%s: %s %s %j, Sum > 0', (id, namespace, metric, dimensions, window) => {
    for (const p of [iam, scram]) {
      const alarm = resolveIfs(p.template, p.template.Resources[id].Properties) as Json;
      expect(alarm).toMatchObject({ Namespace: namespace, MetricName: metric, Statistic: 'Sum', Threshold: 0, ComparisonOperator: 'GreaterThanThreshold', TreatMissingData: 'notBreaching', ...window });
      expect(dimensionsOf(alarm)).toEqual(dimensions);
      // Alerting within minutes, not hours.
      expect(alarm.Period * alarm.EvaluationPeriods).toBeLessThanOrEqual(15 * 60);
    }
  });

  it("alarms when more than 5% of the API's requests answer 5xx, in 3 of the last 5 minutes", () => {
    for (const p of [iam, scram]) {
      const alarm = resolveIfs(p.template, p.template.Resources.ApiServerErrorsAlarm.Properties) as Json;
      const metrics = alarm.Metrics as Json[];
      const stat = (id: string) => metrics.find((m) => m.Id === id)!.MetricStat;
      expect([stat('errors').Metric.MetricName, stat('requests').Metric.MetricName]).toEqual(['5xx', 'Count']);
      for (const id of ['errors', 'requests']) {
        expect(stat(id)).toMatchObject({ Metric: { Namespace: 'AWS/ApiGateway' }, Period: 60, Stat: 'Sum' });
        expect(dimensionsOf(stat(id).Metric)).toEqual({ ApiId: '{HttpApi}' });
      }
      expect(metrics.find((m) => m.Expression)!.Expression).toBe('IF(requests > 0, 100 * FILL(errors, 0) / requests, 0)');
      expect(alarm).toMatchObject({ Threshold: 5, ComparisonOperator: 'GreaterThanThreshold', EvaluationPeriods: 5, DatapointsToAlarm: 3, TreatMissingData: 'notBreaching' });
    }
  });

  it('notifies one topic: alarmTopicArn, or else a topic of its own, which package names loudly with the command to subscribe', () => {
    // Without alarmTopicArn: the stack's topic, in every alarm, and the output says how to receive it.
    expect(conditionValue(iam.template, 'AlarmTopicCreated')).toBe(true);
    expect(iam.template.Resources.AlarmTopic).toMatchObject({ Type: 'AWS::SNS::Topic', Condition: 'AlarmTopicCreated', Properties: { TopicName: 'ugc-ingest-prod-alarms' } });
    expect(iam.output).toMatch(/alarmTopicArn is not set: the alarms notify the stack's own SNS topic ugc-ingest-prod-alarms, which NOBODY receives/);
    expect(iam.output).toMatch(/aws sns subscribe --region eu-west-1 --protocol email .*\\\n.*--topic-arn "arn:aws:sns:eu-west-1:\$\(aws sts get-caller-identity[^)]*\):ugc-ingest-prod-alarms"/);
    expect(resolveIfs(iam.template, iam.template.Outputs.AlarmTopicArn.Value)).toEqual({ Ref: 'AlarmTopic' });
    // With it: no topic of its own, no warning.
    expect(conditionValue(scram.template, 'AlarmTopicCreated')).toBe(false);
    expect(scram.output).not.toMatch(/alarmTopicArn is not set/);
    expect(arnOf(scram.template, resolveIfs(scram.template, scram.template.Outputs.AlarmTopicArn.Value))).toBe(alarmTopicArn);
  });
});

describe('CORS, the docs routes and throttling (issue 28)', () => {
  it('allows the origins corsAllowedOrigins names, a comma-separated param', () => {
    expect(iam.template.Resources.HttpApi.Properties.CorsConfiguration.AllowOrigins).toEqual(['https://cinema.example.com', 'https://www.cinema.example.com']);
    expect(scram.template.Resources.HttpApi.Properties.CorsConfiguration.AllowOrigins).toEqual(['https://cinema.example.com']);
  });

  it('leaves GET /v1/openapi.json and GET /v1/docs out of the API with apiDocs=false', () => {
    expect(routeKeys(iam.template)).toEqual(expect.arrayContaining(['GET /v1/openapi.json', 'GET /v1/docs']));
    expect(routeKeys(scram.template).sort()).toEqual(['GET /v1/films/{film_id}/progress', 'GET /v1/health', 'GET /v1/progress', 'POST /v1/events', 'POST /v1/films/{film_id}/progress']);
    expect(Object.keys(scram.template.Resources.HttpApiStage.Properties.RouteSettings).sort()).toEqual(routeKeys(scram.template).sort());
  });

  it("throttles each route, each function's routes together within a ceiling the ingest's concurrency can serve, public routes at their own small limit", () => {
    const ingestRoutes = ['POST /v1/events', 'POST /v1/films/{film_id}/progress', 'GET /v1/health', 'GET /v1/openapi.json', 'GET /v1/docs'];
    const publicRoutes = ['GET /v1/health', 'GET /v1/openapi.json', 'GET /v1/docs'];
    const variants = [
      { p: iam, ingest: { rate: 1000, burst: 1000 }, reader: { rate: 500, burst: 500 }, publicRate: 10, concurrency: 100 },
      { p: scram, ingest: { rate: 800, burst: 1600 }, reader: { rate: 300, burst: 600 }, publicRate: 8, concurrency: 200 },
    ];
    for (const { p, ingest, reader, publicRate, concurrency } of variants) {
      const stage = p.template.Resources.HttpApiStage;
      const settings = stage.Properties.RouteSettings as Record<string, { ThrottlingRateLimit: number; ThrottlingBurstLimit: number }>;
      // Every route has its own, and the stage creates them before it names them.
      expect(Object.keys(settings).sort()).toEqual(routeKeys(p.template).sort());
      const routeIds = Object.keys(p.template.Resources).filter((id) => p.template.Resources[id].Type === 'AWS::ApiGatewayV2::Route');
      expect(stage.DependsOn).toEqual(expect.arrayContaining(routeIds));
      const total = (keys: string[], key: 'ThrottlingRateLimit' | 'ThrottlingBurstLimit') => keys.filter((k) => settings[k]).reduce((sum, k) => sum + settings[k]![key], 0);
      const ofIngest = ingestRoutes.filter((k) => settings[k]);
      const ofReader = Object.keys(settings).filter((k) => !ingestRoutes.includes(k));
      expect(total(ofIngest, 'ThrottlingRateLimit')).toBeLessThanOrEqual(ingest.rate);
      expect(total(ofIngest, 'ThrottlingBurstLimit')).toBeLessThanOrEqual(ingest.burst);
      expect(total(ofReader, 'ThrottlingRateLimit')).toBeLessThanOrEqual(reader.rate);
      expect(total(ofReader, 'ThrottlingBurstLimit')).toBeLessThanOrEqual(reader.burst);
      // What the ingest's routes admit fits in its reserved concurrency: 2 x 15 ms a request (docs/capacity-and-cost.md).
      expect(total(ofIngest, 'ThrottlingRateLimit') * 2 * 0.015).toBeLessThanOrEqual(concurrency);
      expect(p.template.Resources.IngestLambdaFunction.Properties.ReservedConcurrentExecutions).toBe(concurrency);
      for (const k of publicRoutes.filter((r) => settings[r])) expect(settings[k], k).toEqual({ ThrottlingRateLimit: publicRate, ThrottlingBurstLimit: publicRate });
      // The viewers' routes share the rest of the ceiling: POST /v1/events gets most of it.
      expect(settings['POST /v1/events']!.ThrottlingRateLimit).toBeGreaterThan(ingest.rate * 0.45);
    }
  });

  it("passes alarmTopicArn and corsAllowedOrigins in docs/operations.md's deploy commands", async () => {
    const operations = await readFile(join(repoRoot, 'docs/operations.md'), 'utf8');
    const commands = operations.match(/npx serverless deploy(?:[^\n\\]|\\\n)*/g) ?? [];
    const full = commands.filter((c) => c.includes('mskClusterArn='));
    expect(full.length).toBeGreaterThanOrEqual(1);
    for (const command of full) {
      expect(command).toMatch(/alarmTopicArn=arn:aws:sns:/);
      expect(command).toMatch(/corsAllowedOrigins=https:\/\//);
    }
  });
});

describe("cfn-lint, CloudFormation's own linter, on every packaged variant", () => {
  let cfnLint: string;
  beforeAll(async () => {
    // Pinned, in a virtualenv of its own; .ci/run installs it before the tests, so this is instant there.
    cfnLint = (await run(join(repoRoot, 'scripts/install-cfn-lint.sh'), [], { timeout: 600_000 })).stdout.trim();
  }, 600_000);

  it('reports no error and no warning (suppressions are justified in .cfnlintrc), and does report a broken template', async () => {
    // The same template with a metric group AWS does not have: proves the linter reads these templates.
    const broken = structuredClone(iam.template);
    broken.Resources[mappingId].Properties.MetricsConfig.Metrics = ['EventCount', 'Errors'];
    const brokenFile = join(iam.dir, 'broken-template.json');
    await writeFile(brokenFile, JSON.stringify(broken));
    const templates = [iam, scram].map((p) => join(p.dir, 'cloudformation-template-update-stack.json'));
    // One run for all (cfn-lint takes seconds to load its rules); exit code 2 = errors found (the broken one).
    const output = await run(cfnLint, ['--config-file', join(repoRoot, '.cfnlintrc'), '--format', 'json', '--', ...templates, brokenFile], { timeout: 240_000, maxBuffer: 16 * 1024 * 1024 })
      .then((r) => r.stdout, (error: { stdout?: string; code?: number }) => { if (!error.stdout) throw error; return error.stdout; });
    const matches = JSON.parse(output) as { Rule: { Id: string }; Filename: string; Level: string; Message: string }[];
    const describeMatch = (m: (typeof matches)[number]) => `${m.Rule.Id} ${m.Level} ${m.Message}`;
    for (const template of templates) expect(matches.filter((m) => m.Filename === template).map(describeMatch), template).toEqual([]);
    expect(matches.filter((m) => m.Filename === brokenFile && m.Level === 'Error').map(describeMatch)).toEqual([expect.stringMatching(/Errors/)]);
  }, 300_000);
});

describe('the CloudWatch dashboard', () => {
  interface Widget { type: string; properties: { title?: string; metrics?: unknown[][]; alarms?: string[] } }
  /** The dashboard's widgets, with each ${…} of its Fn::Sub kept as {…}; also checks that each names a resource or a pseudo parameter. */
  function dashboard(t: Json): Widget[] {
    const body = t.Resources.Dashboard.Properties.DashboardBody['Fn::Sub'] as string;
    for (const [, name] of body.matchAll(/\$\{([^}]+)\}/g)) {
      const ref = name!.split('.')[0]!;
      expect(ref.startsWith('AWS::') || ref in t.Resources, `\${${name}}`).toBe(true);
    }
    return (JSON.parse(body.replace(/\$\{([^}]+)\}/g, '{$1}')) as { widgets: Widget[] }).widgets;
  }
  /** A metric row as namespace, name and dimensions; a SEARCH expression as its schema and filters. */
  function metricsOf(widget: Widget): { namespace: string; name: string; dimensions: Record<string, string>; searchKeys?: string[] }[] {
    return (widget.properties.metrics ?? []).map((row) => {
      const first = row[0] as string | { expression: string };
      if (typeof first === 'object') {
        const [, schema, name, filters] = first.expression.match(/^SEARCH\('\{([^}]+)\} MetricName="([^"]+)"((?: \w+="[^"]*")*)'/) ?? [];
        expect(schema, first.expression).toBeDefined();
        const [namespace, ...searchKeys] = schema!.split(',');
        return { namespace: namespace!, name: name!, searchKeys, dimensions: Object.fromEntries([...filters!.matchAll(/(\w+)="([^"]*)"/g)].map(([, k, v]) => [k!, v!])) };
      }
      const strings = row.filter((v): v is string => typeof v === 'string');
      const [namespace, name, ...pairs] = strings;
      const dimensions: Record<string, string> = {};
      for (let i = 0; i < pairs.length; i += 2) dimensions[pairs[i]!] = pairs[i + 1]!;
      return { namespace: namespace!, name: name!, dimensions };
    });
  }
  const telemetryEnv = (t: Json, fn: string) => {
    const { POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE } = t.Resources[`${fn}LambdaFunction`].Properties.Environment.Variables;
    return { POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE } as { POWERTOOLS_SERVICE_NAME: string; POWERTOOLS_METRICS_NAMESPACE: string };
  };

  it('shows the ingest requests and rejects by code and produce latency, the writer offset lag, rows written and dead letters, what each alarm watches, and the alarms', () => {
    for (const p of [iam, scram]) {
      expect(p.template.Resources.Dashboard.Properties.DashboardName).toBe('ugc-ingest-prod');
      const widgets = dashboard(p.template);
      const shown = widgets.flatMap(metricsOf);
      const ingest = telemetryEnv(p.template, 'Ingest').POWERTOOLS_SERVICE_NAME;
      const writer = telemetryEnv(p.template, 'Writer').POWERTOOLS_SERVICE_NAME;
      const has = (name: string, dimensions: Record<string, string>, searchKey?: string) => shown.some((m) => m.name === name
        && Object.entries(dimensions).every(([k, v]) => m.dimensions[k] === v) && (!searchKey || m.searchKeys?.includes(searchKey)));
      expect(has('Requests', { service: ingest })).toBe(true);
      expect(has('RequestsRejected', { service: ingest }, 'code'), 'rejects by code').toBe(true);
      expect(has('ProduceLatency', { service: ingest })).toBe(true);
      expect(has('OffsetLag', { FunctionName: '{WriterLambdaFunction}' })).toBe(true);
      expect(has('RowsWritten', { service: writer })).toBe(true);
      expect(has('DeadLettered', { service: writer })).toBe(true);
      // Each alarm's metrics are on the dashboard too.
      for (const id of alarmIds) {
        const alarm = p.template.Resources[id].Properties;
        for (const m of alarm.Metrics ? (alarm.Metrics as Json[]).filter((x) => x.MetricStat).map((x) => x.MetricStat.Metric) : [alarm]) {
          const dimensions = Object.fromEntries((m.Dimensions as Json[]).map((d) => [d.Name, typeof d.Value === 'string' ? d.Value : `{${d.Value.Ref}}`]));
          expect(has(m.MetricName, dimensions), `${id}: ${m.MetricName} ${JSON.stringify(dimensions)}`).toBe(true);
        }
      }
      expect(widgets.find((w) => w.type === 'alarm')!.properties.alarms).toEqual(alarmIds.map((id) => `{${id}.Arn}`));
    }
  });

  it("names only metrics the functions emit (captured from their EMF output) or AWS's metrics of the writer and its mapping", async () => {
    const t = iam.template;
    const emitted = await emittedMetrics({ ingest: telemetryEnv(t, 'Ingest'), writer: telemetryEnv(t, 'Writer') });
    const namespace = telemetryEnv(t, 'Ingest').POWERTOOLS_METRICS_NAMESPACE;
    const enabledMappingMetrics = (t.Resources[mappingId].Properties.MetricsConfig.Metrics as string[]).flatMap((g) => mappingMetricGroups[g]!);
    const alarmMetrics = alarmIds.flatMap((id) => {
      const alarm = t.Resources[id].Properties;
      const stats = alarm.Metrics ? (alarm.Metrics as Json[]).filter((m) => m.MetricStat).map((m) => m.MetricStat.Metric) : [alarm];
      return stats.map((m: Json): ReturnType<typeof metricsOf>[number] => ({
        namespace: m.Namespace, name: m.MetricName,
        dimensions: Object.fromEntries((m.Dimensions as Json[]).map((d) => [d.Name, typeof d.Value === 'string' ? d.Value : `{${d.Value.Ref}}`])),
      }));
    });
    for (const metric of [...dashboard(t).flatMap(metricsOf), ...alarmMetrics]) {
      const label = JSON.stringify(metric);
      if (metric.namespace === namespace) {
        const sameIdentity = emitted.filter((e) => e.namespace === metric.namespace && e.name === metric.name
          && (metric.searchKeys
            ? JSON.stringify(Object.keys(e.dimensions).sort()) === JSON.stringify([...metric.searchKeys].sort())
              && Object.entries(metric.dimensions).every(([k, v]) => e.dimensions[k] === v)
            : JSON.stringify(Object.entries(e.dimensions).sort()) === JSON.stringify(Object.entries(metric.dimensions).sort())));
        expect(sameIdentity, `${label} is not what the functions emit: ${JSON.stringify(emitted)}`).not.toEqual([]);
      } else if (metric.namespace === 'AWS/ApiGateway') {
        expect(metric.dimensions, label).toEqual({ ApiId: '{HttpApi}' });
        expect(httpApiMetrics, label).toContain(metric.name);
      } else {
        expect(metric.namespace, label).toBe('AWS/Lambda');
        if ('FunctionName' in metric.dimensions) {
          expect(['{WriterLambdaFunction}', '{IngestLambdaFunction}'], label).toContain(metric.dimensions.FunctionName);
          expect(functionMetrics, label).toContain(metric.name);
        } else {
          expect(metric.dimensions, label).toEqual({ EventSourceMappingUUID: `{${mappingId}}` });
          expect(enabledMappingMetrics, `${label}: its MetricsConfig group is on`).toContain(metric.name);
        }
      }
    }
  }, 60_000);
});

describe('serverless package --stage prod without its parameters', () => {
  it('fails instead of deploying stand-in values', async () => {
    const { mskClusterArn: _omitted, ...withoutCluster } = prodParams;
    const missing = await refusalOf('prod', withoutCluster);
    expect(missing).toMatch(/Cannot resolve variable at "[^"]+": Value not found at "param" source/);
    expect(missing).toMatch(/mskClusterArn/i);
    // Without issuer and audience the functions would accept any token signed with the key.
    const { jwtIssuer: _i, jwtAudience: _a, ...withoutTokenChecks } = prodParams;
    expect(await refusalOf('prod', withoutTokenChecks)).toMatch(/environment\.JWT_ISSUER": Value not found[\s\S]*environment\.JWT_AUDIENCE": Value not found/);
    // A numeric parameter that is not a number (plugins/template-values.cjs) fails too, naming the value.
    expect(await refusalOf('prod', { ...prodParams, writerBatchSize: '1O00' })).toMatch(/expected a number, got "1O00"/);
    // SCRAM with the IAM brokers (9098): the functions' clients could not authenticate.
    expect(await refusalOf('prod', { ...scramParams, kafkaBrokers: brokersOn(9098) })).toMatch(/kafkaBrokers: MSK serves scram-sha-512 on port 9096, not b-1\.[^,]+:9098/);
  }, 180_000);
});
