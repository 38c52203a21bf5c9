import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emittedMetrics } from './deploy-metrics.ts';

// The deploy path without an AWS account: `serverless package --stage prod` writes the
// CloudFormation template with no credentials; these tests read it as CloudFormation would.
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const serverlessBin = join(repoRoot, 'node_modules/osls/bin/serverless.js');
const run = promisify(execFile);

const clusterArn = 'arn:aws:kafka:eu-west-1:123456789012:cluster/ugc-prod/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-3';
const clickhouseSecretArn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:ugc-ingest/prod/clickhouse-AbCdEf';
const scramSecretArn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:AmazonMSK_ugc-ingest-prod-XyZ123';
const kmsKeyArn = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const alarmTopicArn = 'arn:aws:sns:eu-west-1:123456789012:ugc-alarms';
// MSK serves each authentication on its own port: IAM on 9098, SASL/SCRAM on 9096.
const brokersOn = (port: number) => `b-1.ugcprod.abc123.c3.kafka.eu-west-1.amazonaws.com:${port},b-2.ugcprod.abc123.c3.kafka.eu-west-1.amazonaws.com:${port}`;
/** Example prod parameters, as an operator passes them (docs/operations.md, "Deploy"). */
const prodParams: Record<string, string> = {
  mskClusterArn: clusterArn,
  kafkaBrokers: brokersOn(9098),
  subnetIds: 'subnet-0aa11bb22cc33dd44,subnet-0ee55ff66aa77bb88',
  securityGroupIds: 'sg-0123456789abcdef0',
  clickhouseUrl: 'https://clickhouse.internal.example.com:8443',
  clickhousePasswordSecretArn: clickhouseSecretArn,
  jwtSecretParameter: '/ugc-ingest/prod/jwt-secret',
  jwtIssuer: 'https://auth.cinema.example.com',
  jwtAudience: 'ugc-ingest',
};
// Set in the packaging shell to prove a prod template never carries a plain secret.
const leakedSecret = 'a-plain-secret-that-must-never-reach-the-template';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
interface Packaged { template: Json; dir: string }

async function packageStage(stage: string, params: Record<string, string>): Promise<Packaged> {
  const dir = await mkdtemp(join(tmpdir(), `ugc-package-${stage}-`));
  const args = [serverlessBin, 'package', '--stage', stage, '--region', 'eu-west-1', '--package', dir,
    ...Object.entries(params).map(([k, v]) => `--param=${k}=${v}`)];
  await run(process.execPath, args, {
    cwd: repoRoot,
    env: {
      ...process.env, SLS_TELEMETRY_DISABLED: '1',
      // Its own build folder: offline runs (e2e tests) may be using .esbuild at the same time.
      ESBUILD_WORK_FOLDER: `.esbuild-test-${stage}-${process.pid}-${Date.now()}`,
      JWT_SECRET: leakedSecret, CLICKHOUSE_PASSWORD: leakedSecret,
    },
    timeout: 120_000,
  });
  const template = JSON.parse(await readFile(join(dir, 'cloudformation-template-update-stack.json'), 'utf8')) as Json;
  return { template, dir };
}

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
 * retries to an on-failure topic other than the dead-letter topic, an alarm topic, and numeric
 * params passed as --param (always strings) that the template must still carry as numbers.
 */
const scramParams: Record<string, string> = {
  ...withoutJwtSecret, jwtJwksUrl: 'https://auth.cinema.example.com/.well-known/jwks.json',
  kafkaBrokers: brokersOn(9096), kafkaSaslMechanism: 'scram-sha-512', kafkaSaslSecretArn: scramSecretArn, secretsKmsKeyArn: kmsKeyArn,
  writerMaximumRetryAttempts: '5', writerOnFailureTopic: 'ugc.events.failed', alarmTopicArn,
  eventsTopicPartitions: '24', writerMaximumPollers: '4', writerBatchSize: '2000', writerBatchingWindow: '2',
  httpThrottleRateLimit: '800', httpThrottleBurstLimit: '1600', ingestReservedConcurrency: '200', readerReservedConcurrency: '30',
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

  it('has the HTTP API routes, CORS for the cinema pages, and throttling', () => {
    const { Resources } = iam.template;
    const routes = (Object.values(Resources) as Json[]).filter((r: Json) => r.Type === 'AWS::ApiGatewayV2::Route').map((r: Json) => r.Properties.RouteKey);
    expect(routes).toEqual(expect.arrayContaining([
      'POST /v1/events', 'POST /v1/films/{film_id}/progress', 'GET /v1/health', 'GET /v1/openapi.json', 'GET /v1/docs',
    ]));
    expect(Resources.HttpApi.Properties.CorsConfiguration).toEqual({
      AllowOrigins: ['*'], AllowHeaders: ['Content-Type', 'Authorization', 'Content-Encoding'], AllowMethods: ['GET', 'POST', 'OPTIONS'],
      ExposeHeaders: ['Retry-After', 'WWW-Authenticate'], MaxAge: 600,
    });
    expect(Resources.HttpApiStage.Properties.DefaultRouteSettings).toEqual({ ThrottlingRateLimit: 500, ThrottlingBurstLimit: 1000 });
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
    expect(alarm).not.toHaveProperty('AlarmActions');
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
const alarmIds = ['WriterOffsetLagAlarm', 'WriterMappingErrorsAlarm', 'WriterNotPollingAlarm', 'WriterStalledAlarm'];
// AWS's event source mapping metrics per MetricsConfig group (Lambda developer guide, "Event source mapping metrics", Kafka).
const mappingMetricGroups: Record<string, string[]> = {
  EventCount: ['PolledEventCount', 'FilteredOutEventCount', 'InvokedEventCount', 'FailedInvokeEventCount', 'DroppedEventCount', 'OnFailureDestinationDeliveredEventCount', 'CommittedEventCount'],
  ErrorCount: ['PollingErrorCount', 'InvokeErrorCount', 'OnFailureDestinationDeliveryErrorCount', 'SchemaRegistryErrorCount', 'CommitErrorCount'],
  KafkaMetrics: ['MaxOffsetLag', 'SumOffsetLag'],
};
// AWS/Lambda's own per-function metrics the dashboard and alarms may use.
const functionMetrics = ['OffsetLag', 'Errors', 'Invocations', 'Throttles', 'Duration', 'ConcurrentExecutions'];

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
      expect(resolveIfs(iam.template, iam.template.Resources[id].Properties), id).not.toHaveProperty('AlarmActions');
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
    expect(scram.template.Resources.HttpApiStage.Properties.DefaultRouteSettings).toEqual({ ThrottlingRateLimit: 800, ThrottlingBurstLimit: 1600 });
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

  it('shows the ingest requests and rejects by code and produce latency, the writer offset lag, rows written and dead letters, and the alarms', () => {
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
      return stats.map((m: Json): ReturnType<typeof metricsOf>[number] => ({ namespace: m.Namespace, name: m.MetricName, dimensions: Object.fromEntries((m.Dimensions as Json[]).map((d) => [d.Name, `{${d.Value.Ref}}`])) }));
    });
    for (const metric of [...dashboard(t).flatMap(metricsOf), ...alarmMetrics]) {
      const label = JSON.stringify(metric);
      if (metric.namespace === namespace) {
        const sameIdentity = emitted.filter((e) => e.namespace === metric.namespace && e.name === metric.name
          && (metric.searchKeys
            ? JSON.stringify(Object.keys(e.dimensions).sort()) === JSON.stringify([...metric.searchKeys].sort())
              && Object.entries(metric.dimensions).every(([k, v]) => e.dimensions[k] === v)
            : JSON.stringify(e.dimensions) === JSON.stringify(metric.dimensions)));
        expect(sameIdentity, `${label} is not what the functions emit: ${JSON.stringify(emitted)}`).not.toEqual([]);
      } else {
        expect(metric.namespace, label).toBe('AWS/Lambda');
        if ('FunctionName' in metric.dimensions) {
          expect(metric.dimensions, label).toEqual({ FunctionName: '{WriterLambdaFunction}' });
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
    const failure = await packageStage('prod', withoutCluster).then(() => undefined, (error: { stdout?: string; stderr?: string }) => error);
    expect(failure, 'package succeeded').toBeDefined();
    expect(`${failure?.stdout}${failure?.stderr}`).toMatch(/Cannot resolve variable at "[^"]+": Value not found at "param" source/);
    expect(`${failure?.stdout}${failure?.stderr}`).toMatch(/mskClusterArn/i);
    // Without issuer and audience the functions would accept any token signed with the key.
    const { jwtIssuer: _i, jwtAudience: _a, ...withoutTokenChecks } = prodParams;
    const unchecked = await packageStage('prod', withoutTokenChecks).then(() => undefined, (error: { stdout?: string; stderr?: string }) => error);
    expect(unchecked, 'package succeeded without jwtIssuer and jwtAudience').toBeDefined();
    expect(`${unchecked?.stdout}${unchecked?.stderr}`).toMatch(/environment\.JWT_ISSUER": Value not found[\s\S]*environment\.JWT_AUDIENCE": Value not found/);
    // A numeric parameter that is not a number (plugins/template-values.cjs) fails too, naming the value.
    const typo = await packageStage('prod', { ...prodParams, writerBatchSize: '1O00' }).then(() => undefined, (error: { stdout?: string; stderr?: string }) => error);
    expect(typo, 'package succeeded with writerBatchSize=1O00').toBeDefined();
    expect(`${typo?.stdout}${typo?.stderr}`).toMatch(/expected a number, got "1O00"/);
    // SCRAM with the IAM brokers (9098): the functions' clients could not authenticate.
    const iamBrokers = await packageStage('prod', { ...scramParams, kafkaBrokers: brokersOn(9098) }).then(() => undefined, (error: { stdout?: string; stderr?: string }) => error);
    expect(iamBrokers, 'package succeeded with SCRAM on the IAM port').toBeDefined();
    expect(`${iamBrokers?.stdout}${iamBrokers?.stderr}`).toMatch(/kafkaBrokers: MSK serves scram-sha-512 on port 9096, not b-1\.[^,]+:9098/);
  }, 180_000);
});
