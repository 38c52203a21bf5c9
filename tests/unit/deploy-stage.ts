import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

// What the deploy tests share: `serverless package` run as an operator runs it, with example parameters.
export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const serverlessBin = join(repoRoot, 'node_modules/osls/bin/serverless.js');
export const run = promisify(execFile);

export const clusterArn = 'arn:aws:kafka:eu-west-1:123456789012:cluster/ugc-prod/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-3';
export const clickhouseSecretArn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:ugc-ingest/prod/clickhouse-AbCdEf';
export const scramSecretArn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:AmazonMSK_ugc-ingest-prod-XyZ123';
export const kmsKeyArn = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
export const alarmTopicArn = 'arn:aws:sns:eu-west-1:123456789012:ugc-alarms';
// MSK serves each authentication on its own port: IAM on 9098, SASL/SCRAM on 9096.
export const brokersOn = (port: number) => `b-1.ugcprod.abc123.c3.kafka.eu-west-1.amazonaws.com:${port},b-2.ugcprod.abc123.c3.kafka.eu-west-1.amazonaws.com:${port}`;
/** Example prod parameters, as an operator passes them (docs/operations.md, "Deploy"). */
export const prodParams: Record<string, string> = {
  mskClusterArn: clusterArn,
  kafkaBrokers: brokersOn(9098),
  subnetIds: 'subnet-0aa11bb22cc33dd44,subnet-0ee55ff66aa77bb88',
  securityGroupIds: 'sg-0123456789abcdef0',
  clickhouseUrl: 'https://clickhouse.internal.example.com:8443',
  clickhousePasswordSecretArn: clickhouseSecretArn,
  jwtSecretParameter: '/ugc-ingest/prod/jwt-secret',
  jwtIssuer: 'https://auth.cinema.example.com',
  jwtAudience: 'ugc-ingest',
  corsAllowedOrigins: 'https://cinema.example.com,https://www.cinema.example.com',
};
// Set in the packaging shell to prove a prod template never carries a plain secret.
export const leakedSecret = 'a-plain-secret-that-must-never-reach-the-template';

export type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
/** A packaged stage: its template, the folder it is in, and what the command printed. */
export interface Packaged { template: Json; dir: string; output: string }

/** `serverless package` of a stage with these --param values; rejects with the command's error (its stdout and stderr). */
export async function packageStage(stage: string, params: Record<string, string>): Promise<Packaged> {
  const dir = await mkdtemp(join(tmpdir(), `ugc-package-${stage}-`));
  const args = [serverlessBin, 'package', '--stage', stage, '--region', 'eu-west-1', '--package', dir,
    ...Object.entries(params).map(([k, v]) => `--param=${k}=${v}`)];
  const { stdout, stderr } = await run(process.execPath, args, {
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
  return { template, dir, output: `${stdout}${stderr}` };
}

/** What `serverless package` printed when it refused these params; fails the test if it packaged them. */
export async function refusalOf(stage: string, params: Record<string, string>): Promise<string> {
  const failure = await packageStage(stage, params).then(() => undefined, (error: { stdout?: string; stderr?: string }) => error);
  if (!failure) throw new Error(`package succeeded with ${JSON.stringify(params)}`);
  return `${failure.stdout}${failure.stderr}`;
}

