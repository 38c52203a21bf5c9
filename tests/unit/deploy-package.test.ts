import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The deploy path without an AWS account: `serverless package --stage prod` writes the
// CloudFormation template with no credentials; these tests read it as CloudFormation would.
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const serverlessBin = join(repoRoot, 'node_modules/osls/bin/serverless.js');
const run = promisify(execFile);

const clusterArn = 'arn:aws:kafka:eu-west-1:123456789012:cluster/ugc-prod/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-3';
const clickhouseSecretArn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:ugc-ingest/prod/clickhouse-AbCdEf';
const scramSecretArn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:AmazonMSK_ugc-ingest-prod-XyZ123';
const kmsKeyArn = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
/** Example prod parameters, as an operator passes them (README, "Deploy"). */
const alarmTopicArn = 'arn:aws:sns:eu-west-1:123456789012:ugc-alarms';
const prodParams: Record<string, string> = {
  mskClusterArn: clusterArn,
  kafkaBrokers: 'b-1.ugcprod.abc123.c3.kafka.eu-west-1.amazonaws.com:9098,b-2.ugcprod.abc123.c3.kafka.eu-west-1.amazonaws.com:9098',
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

/** Evaluates the template's Conditions (Equals/Not of literals), as CloudFormation would at deploy. */
function conditionValue(template: Json, name: string): boolean {
  const evaluate = (c: Json): boolean => {
    if (c['Fn::Equals']) return c['Fn::Equals'][0] === c['Fn::Equals'][1];
    if (c['Fn::Not']) return !evaluate(c['Fn::Not'][0]);
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
/** Joins an Fn::Join of Refs/Selects/Splits over MskClusterArn into the ARN CloudFormation makes. */
function arnOf(template: Json, resource: unknown): unknown {
  const evaluate = (v: unknown): unknown => {
    if (typeof v === 'string') return v;
    const o = v as Json;
    if (o.Ref === 'MskClusterArn') return template.Parameters.MskClusterArn.Default;
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

let iam: Packaged;
let scram: Packaged;

beforeAll(async () => {
  // One after the other: serverless-esbuild stages every function's zip in the shared
  // `.serverless/` folder whatever --package says, so two packages at once race on those files.
  iam = await packageStage('prod', prodParams);
  scram = await packageStage('prod', {
    ...prodParams, kafkaSaslMechanism: 'scram-sha-512', kafkaSaslSecretArn: scramSecretArn, secretsKmsKeyArn: kmsKeyArn,
    writerMaximumRetryAttempts: '5', writerOnFailureTopic: 'ugc.events.dlq', alarmTopicArn,
  });
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
      AllowOrigins: ['*'], AllowHeaders: ['Content-Type', 'Authorization'], AllowMethods: ['GET', 'POST', 'OPTIONS'],
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
    expect(notifying.AlarmActions).toEqual([alarmTopicArn]);
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
    expect(withAction(writer, 'kafka-cluster:WriteData').map((s) => arnOf(t, s.Resource))).toEqual([topic('ugc.events.dlq')]);
    expect(arnOf(t, withAction(writer, 'kafka:GetBootstrapBrokers')[0]!.Resource)).toBe(clusterArn);
    expect(withAction(writer, 'secretsmanager:GetSecretValue').map((s) => s.Resource)).toEqual([clickhouseSecretArn]);
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

describe('serverless package --stage prod with SASL/SCRAM, a customer-managed key and an on-failure topic', () => {
  it('gives the mapping the SCRAM secret and both roles secretsmanager and kms permissions the framework does not add', () => {
    const t = scram.template;
    const mapping = resolveIfs(t, t.Resources.WriterEventSourceMappingMSKMskClusterArnUgcevents.Properties) as Json;
    expect(mapping.SourceAccessConfigurations).toEqual([{ Type: 'SASL_SCRAM_512_AUTH', URI: scramSecretArn }]);
    // Ops chose bounded retries with an on-failure topic for this stage.
    // (`--param` values are strings; CloudFormation reads "5" as the integer.)
    expect(mapping).toMatchObject({ MaximumRetryAttempts: '5', DestinationConfig: { OnFailure: { Destination: 'kafka://ugc.events.dlq' } } });
    expect(t.Resources.IngestLambdaFunction.Properties.Environment.Variables).toMatchObject({
      KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_SECRET_ARN: scramSecretArn,
    });
    for (const role of ['IngestRole', 'WriterRole']) {
      const list = statements(t, role);
      expect(withAction(list, 'secretsmanager:GetSecretValue').map((s) => s.Resource)).toContain(scramSecretArn);
      // No IAM-auth data-plane grants when the cluster authenticates with SCRAM.
      expect(allActions(list).filter((a) => a.startsWith('kafka-cluster:'))).toEqual([]);
      const kms = withAction(list, 'kms:Decrypt');
      expect(kms).toHaveLength(1);
      expect(kms[0]!.Resource).toBe(kmsKeyArn);
      expect(kms[0]!.Condition).toHaveProperty(['StringEquals', 'kms:ViaService']);
    }
  });
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
  }, 90_000);
});
