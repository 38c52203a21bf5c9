/**
 * `npm run deploy:rehearsal`: `serverless deploy` and `serverless remove` for real, against moto's
 * server (a local AWS API endpoint, scripts/install-moto.sh) instead of an AWS account.
 *
 * Steps: package the prod stage; deploy it (osls creates the stack with its deployment bucket,
 * uploads the artifacts, validates the template and updates the stack to it); read back what the
 * endpoint holds (stack outputs, resources, functions, the uploaded objects); deploy a change
 * (an update of every function); remove the stack; check nothing is left.
 *
 * What moto cannot hold is never faked: a resource type whose creation it refuses is left out of the
 * template with every resource that refers to it, and listed (`omitted`); a type its CloudFormation
 * skips without creating it is listed too (`notCreated`). The report says which is which.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CloudFormationClient, DescribeStacksCommand, ListStackResourcesCommand, type StackResourceSummary } from '@aws-sdk/client-cloudformation';
import { GetFunctionConfigurationCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { ListBucketsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';

const run = promisify(execFile);
// osls writes serverless-state.json with json-cycle (shared objects as `$ref` paths): read and write it the same way.
const jsonCycle = createRequire(import.meta.url)('json-cycle') as { parse(text: string): unknown; stringify(value: unknown): string };
const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const serverlessBin = join(repoRoot, 'node_modules/osls/bin/serverless.js');

type Json = Record<string, unknown>;
interface Template { Resources: Record<string, { Type: string; DependsOn?: string | string[] } & Json>; Outputs?: Record<string, Json> }

/**
 * Types moto 5.2.5 refuses to create as this template declares them, and why. Its CloudFormation
 * knows AWS::Lambda::EventSourceMapping, but its Lambda maps only SQS, DynamoDB and Kinesis
 * sources: an MSK one fails ("Invalid EventSourceArn") and takes the stack's resource listing with it.
 */
export const refusedByEndpoint: Record<string, string> = {
  'AWS::Lambda::EventSourceMapping': "moto's Lambda maps only SQS, DynamoDB and Kinesis sources; an MSK source is refused (Invalid EventSourceArn)",
};

/** Example prod parameters, as an operator passes them (docs/operations.md, "Deploy"). */
export const rehearsalParams: Record<string, string> = {
  mskClusterArn: 'arn:aws:kafka:eu-west-1:123456789012:cluster/ugc-prod/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-3',
  kafkaBrokers: 'b-1.ugcprod.abc123.c3.kafka.eu-west-1.amazonaws.com:9098,b-2.ugcprod.abc123.c3.kafka.eu-west-1.amazonaws.com:9098',
  subnetIds: 'subnet-0aa11bb22cc33dd44,subnet-0ee55ff66aa77bb88',
  securityGroupIds: 'sg-0123456789abcdef0',
  clickhouseUrl: 'https://clickhouse.internal.example.com:8443',
  clickhousePasswordSecretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:ugc-ingest/prod/clickhouse-AbCdEf',
  jwtSecretParameter: '/ugc-ingest/prod/jwt-secret',
  jwtIssuer: 'https://auth.cinema.example.com',
  jwtAudience: 'ugc-ingest',
  corsAllowedOrigins: 'https://cinema.example.com,https://www.cinema.example.com',
};

/** The logical ids a template value refers to: Ref, Fn::GetAtt, and `${Name}` / `${Name.Attr}` in Fn::Sub (parameters too). */
export function referencedIds(value: unknown): Set<string> {
  const ids = new Set<string>();
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(visit);
    if (!v || typeof v !== 'object') return;
    for (const [key, inner] of Object.entries(v as Json)) {
      if (key === 'Ref' && typeof inner === 'string') ids.add(inner);
      else if (key === 'Fn::GetAtt') ids.add(Array.isArray(inner) ? String(inner[0]) : String(inner).split('.')[0]!);
      else if (key === 'Fn::Sub') {
        const text = Array.isArray(inner) ? inner[0] : inner;
        for (const [, name] of String(text).matchAll(/\$\{([^!}][^}.]*)(?:\.[^}]*)?\}/g)) ids.add(name!);
        if (Array.isArray(inner)) visit(inner[1]);
      } else visit(inner);
    }
  };
  visit(value);
  for (const id of ids) if (id.includes('::')) ids.delete(id); // AWS::Region and the other pseudo parameters
  return ids;
}

/** A resource or output left out of the rehearsal's template, and why. */
export interface Omitted { logicalId: string; type: string; why: string }

/**
 * The template without the resources of `refused` types and, transitively, every resource or
 * output that refers to one (Ref, GetAtt, Sub, DependsOn): what the endpoint can hold, nothing replaced.
 */
export function withoutRefused(template: Template, refused: Record<string, string>): { template: Template; omitted: Omitted[] } {
  const resources = { ...template.Resources };
  const outputs = { ...(template.Outputs ?? {}) };
  const omitted: Omitted[] = [];
  const gone = new Map<string, string>();
  for (const [id, resource] of Object.entries(resources)) {
    const why = refused[resource.Type];
    if (why) gone.set(id, why);
  }
  for (const [id, why] of gone) {
    omitted.push({ logicalId: id, type: resources[id]!.Type, why });
    delete resources[id];
  }
  for (let changed = true; changed;) {
    changed = false;
    for (const [id, resource] of Object.entries(resources)) {
      const dependsOn = [resource.DependsOn ?? []].flat();
      const on = [...referencedIds(resource), ...dependsOn].find((ref) => gone.has(ref));
      if (on === undefined) continue;
      gone.set(id, `refers to ${on}`);
      omitted.push({ logicalId: id, type: resource.Type, why: `refers to ${on}, left out` });
      delete resources[id];
      changed = true;
    }
  }
  for (const [id, output] of Object.entries(outputs)) {
    const on = [...referencedIds(output)].find((ref) => gone.has(ref));
    if (on === undefined) continue;
    omitted.push({ logicalId: id, type: 'Output', why: `refers to ${on}, left out` });
    delete outputs[id];
  }
  return { template: { ...template, Resources: resources, Outputs: outputs }, omitted };
}

/** One step of the rehearsal and how long it took. */
export interface RehearsalStep { step: string; ms: number }

export interface RehearsalReport {
  endpoint: string;
  stackName: string;
  steps: RehearsalStep[];
  /** Left out of the template before deploying: the endpoint refuses them (or they refer to one that is). */
  omitted: Omitted[];
  /** In the deployed template, accepted by the endpoint's CloudFormation, but not created by it. */
  notCreated: { logicalId: string; type: string }[];
  /** Created, as the endpoint lists the stack's resources. */
  created: { logicalId: string; type: string }[];
  /** The stack's outputs as the endpoint answers them, and the template's outputs it does not return. */
  outputs: Record<string, string>;
  outputsMissing: string[];
  deploymentBucket: string;
  /** Read back from the endpoint's own APIs after each deploy. */
  functions: { name: string; runtime?: string; architectures?: string[]; logLevel?: string }[];
  uploaded: { key: string; bytes: number }[];
  updatedLogLevel?: string;
  /** After `serverless remove`: the stack, the functions and the deployment bucket are gone. */
  removed: { stack: boolean; functions: boolean; bucket: boolean };
}

/** A port free on loopback now (the server binds it a moment later). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts moto's server (scripts/moto-server.py) with the python install-moto.sh prints; resolves once it answers. */
export async function startMoto(python: string): Promise<{ endpoint: string; process: ChildProcess; stop: () => Promise<void> }> {
  const port = await freePort();
  const child = spawn(python, [join(repoRoot, 'scripts/moto-server.py'), join(repoRoot, '.cfnlintrc'), '-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4000); });
  const endpoint = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`moto's server exited (${child.exitCode}): ${stderr}`);
    const up = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.ok, () => false);
    if (up) return { endpoint, process: child, stop };
    await sleep(200);
  }
  await stop();
  throw new Error(`moto's server did not answer on ${endpoint} within 30 s: ${stderr}`);
}

/** The environment osls runs in: every AWS SDK call goes to the endpoint, with throwaway credentials and no profile. */
function endpointEnv(endpoint: string, region: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith('AWS_')) delete env[name];
  return {
    ...env,
    AWS_ENDPOINT_URL: endpoint, AWS_REGION: region, AWS_ACCESS_KEY_ID: 'rehearsal', AWS_SECRET_ACCESS_KEY: 'rehearsal',
    AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null', AWS_EC2_METADATA_DISABLED: 'true',
    SLS_TELEMETRY_DISABLED: '1', SLS_AWS_REQUEST_MAX_RETRIES: '0',
    // Its own build folder: offline runs (e2e tests) may be using .esbuild at the same time.
    ESBUILD_WORK_FOLDER: `.esbuild/rehearsal-${process.pid}`,
  };
}

export interface RehearsalOptions { python: string; region?: string; log?: (line: string) => void }

/** Runs the whole rehearsal on a moto server of its own, stopped at the end; throws on the first step that fails. */
export async function rehearse({ python, region = 'eu-west-1', log = () => {} }: RehearsalOptions): Promise<RehearsalReport> {
  const stackName = 'ugc-ingest-prod';
  const steps: RehearsalStep[] = [];
  const timed = async <T>(step: string, body: () => Promise<T>): Promise<T> => {
    const started = Date.now();
    const result = await body();
    steps.push({ step, ms: Date.now() - started });
    log(`${step}: ${Date.now() - started} ms`);
    return result;
  };
  const moto = await timed('start moto', () => startMoto(python));
  const workDir = await mkdtemp(join(tmpdir(), 'ugc-rehearsal-'));
  try {
    const env = endpointEnv(moto.endpoint, region);
    const aws = { region, endpoint: moto.endpoint, credentials: { accessKeyId: 'rehearsal', secretAccessKey: 'rehearsal' } };
    const cloudFormation = new CloudFormationClient(aws);
    const lambda = new LambdaClient(aws);
    const s3 = new S3Client({ ...aws, forcePathStyle: true });
    const serverless = async (command: string, params: Record<string, string>, packageDir?: string) => {
      const args = [serverlessBin, command, '--stage', 'prod', '--region', region, ...(packageDir ? ['--package', packageDir] : []),
        ...Object.entries(params).map(([k, v]) => `--param=${k}=${v}`)];
      try {
        await run(process.execPath, args, { cwd: repoRoot, env, timeout: 300_000, maxBuffer: 16 * 1024 * 1024 });
      } catch (error) {
        const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
        throw new Error(`serverless ${command} failed:\n${String(stdout).slice(-3000)}\n${String(stderr).slice(-3000)}`);
      }
    };
    /**
     * `serverless package` into a folder of its own, then the refused types left out of its template.
     * `deploy --package` deploys the template kept in serverless-state.json, so it is changed there too.
     */
    const packaged = async (name: string, params: Record<string, string>) => {
      const dir = join(workDir, name);
      await serverless('package', params, dir);
      const file = join(dir, 'cloudformation-template-update-stack.json');
      const result = withoutRefused(JSON.parse(await readFile(file, 'utf8')) as Template, refusedByEndpoint);
      await writeFile(file, JSON.stringify(result.template, null, 2));
      const stateFile = join(dir, 'serverless-state.json');
      const state = jsonCycle.parse(await readFile(stateFile, 'utf8')) as { service: { provider: { compiledCloudFormationTemplate: Template } } };
      state.service.provider.compiledCloudFormationTemplate = result.template;
      await writeFile(stateFile, jsonCycle.stringify(state));
      return { dir, ...result };
    };
    const functionNames = ['ingest', 'writer', 'reader'].map((f) => `ugc-ingest-prod-${f}`);
    const readFunctions = () => Promise.all(functionNames.map(async (name) => {
      const c = await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: name }));
      return { name, runtime: c.Runtime, architectures: c.Architectures, logLevel: c.Environment?.Variables?.POWERTOOLS_LOG_LEVEL };
    }));

    const first = await timed('package (prod)', () => packaged('first', rehearsalParams));
    await timed('deploy: create stack, upload artifacts, validate, update stack', () => serverless('deploy', rehearsalParams, first.dir));

    const { outputs, outputsMissing, bucket, created, notCreated, functions, uploaded } = await timed('read back', async () => {
      const stack = (await cloudFormation.send(new DescribeStacksCommand({ StackName: stackName }))).Stacks?.[0];
      if (!stack?.StackStatus?.endsWith('_COMPLETE') || stack.StackStatus.includes('ROLLBACK')) throw new Error(`stack ${stackName} is ${stack?.StackStatus}`);
      const summaries: StackResourceSummary[] = [];
      let NextToken: string | undefined;
      do {
        const page = await cloudFormation.send(new ListStackResourcesCommand({ StackName: stackName, NextToken }));
        summaries.push(...(page.StackResourceSummaries ?? []));
        NextToken = page.NextToken;
      } while (NextToken);
      const listed = new Set(summaries.map((s) => s.LogicalResourceId));
      const resources = Object.entries(first.template.Resources);
      // The bucket from the resource listing: moto's outputs may lack the one osls declares for it.
      const bucket = summaries.find((r) => r.LogicalResourceId === 'ServerlessDeploymentBucket')?.PhysicalResourceId;
      if (!bucket) throw new Error('the stack lists no ServerlessDeploymentBucket');
      const objects = (await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'serverless/ugc-ingest/prod/' }))).Contents ?? [];
      return {
        outputs: Object.fromEntries((stack.Outputs ?? []).map((o) => [o.OutputKey!, o.OutputValue ?? ''])),
        outputsMissing: Object.keys(first.template.Outputs ?? {}).filter((key) => !stack.Outputs?.some((o) => o.OutputKey === key)),
        bucket,
        created: resources.filter(([id]) => listed.has(id)).map(([logicalId, r]) => ({ logicalId, type: r.Type })),
        notCreated: resources.filter(([id]) => !listed.has(id)).map(([logicalId, r]) => ({ logicalId, type: r.Type })),
        functions: await readFunctions(),
        uploaded: objects.map((o) => ({ key: o.Key!, bytes: o.Size ?? 0 })),
      };
    });
    // The artifacts on the endpoint are the ones packaged here, byte for byte in size.
    for (const zip of ['ingest.zip', 'writer.zip', 'reader.zip']) {
      const local = (await stat(join(first.dir, zip))).size;
      if (!uploaded.some((o) => o.key.endsWith(`/${zip}`) && o.bytes === local)) throw new Error(`${zip} (${local} bytes) is not in the deployment bucket`);
    }

    // An update that changes every function: the log level is in each one's environment.
    const second = await timed('package (prod, logLevel DEBUG)', () => packaged('second', { ...rehearsalParams, logLevel: 'DEBUG' }));
    await timed('deploy: update stack', () => serverless('deploy', { ...rehearsalParams, logLevel: 'DEBUG' }, second.dir));
    const updated = await timed('read back the update', readFunctions);
    const updatedLogLevel = updated.every((f) => f.logLevel === 'DEBUG') ? 'DEBUG' : updated.map((f) => f.logLevel).join(',');

    await timed('remove', () => serverless('remove', rehearsalParams));
    const removed = await timed('read back the removal', async () => ({
      stack: await cloudFormation.send(new DescribeStacksCommand({ StackName: stackName })).then(
        (r) => r.Stacks?.[0]?.StackStatus === 'DELETE_COMPLETE', (e: Error) => /does not exist/.test(e.message)),
      functions: (await Promise.all(functionNames.map((name) => lambda.send(new GetFunctionConfigurationCommand({ FunctionName: name })).then(() => false, () => true)))).every(Boolean),
      bucket: !((await s3.send(new ListBucketsCommand({}))).Buckets ?? []).some((b) => b.Name === bucket),
    }));

    return {
      endpoint: `moto 5.2.5 server at ${moto.endpoint}`, stackName, steps, omitted: first.omitted, notCreated, created,
      outputs, outputsMissing, deploymentBucket: bucket, functions, uploaded, updatedLogLevel, removed,
    };
  } finally {
    await moto.stop();
    await rm(workDir, { recursive: true, force: true });
    await rm(join(repoRoot, `.esbuild/rehearsal-${process.pid}`), { recursive: true, force: true });
  }
}

/** The report as a reader checks it: each step's time, what was covered, and what was not. */
export function formatRehearsal(report: RehearsalReport): string {
  return [
    `deploy rehearsal of ${report.stackName} against ${report.endpoint}`,
    ...report.steps.map((s) => `  ${String(s.ms).padStart(7)} ms  ${s.step}`),
    `created by the endpoint (${report.created.length}): ${report.created.map((r) => r.logicalId).join(', ')}`,
    `accepted but not created by the endpoint (${report.notCreated.length}):`,
    ...report.notCreated.map((r) => `  ${r.logicalId} (${r.type})`),
    `left out of the template (${report.omitted.length}):`,
    ...report.omitted.map((r) => `  ${r.logicalId} (${r.type}): ${r.why}`),
    `outputs: ${JSON.stringify(report.outputs)}; not returned by the endpoint: ${report.outputsMissing.join(', ') || 'none'}`,
    `uploaded to ${report.deploymentBucket}: ${report.uploaded.map((o) => `${o.key.split('/').pop()} (${o.bytes} bytes)`).join(', ')}`,
    `after the update, POWERTOOLS_LOG_LEVEL: ${report.updatedLogLevel}`,
    `removed: ${JSON.stringify(report.removed)}`,
  ].join('\n');
}

// `npm run deploy:rehearsal [-- --json]`: installs moto's server if needed, rehearses, prints the report.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { stdout } = await run(join(repoRoot, 'scripts/install-moto.sh'), { timeout: 600_000 });
  try {
    const report = await rehearse({ python: stdout.trim(), log: (line) => console.error(line) });
    console.log(process.argv.includes('--json') ? JSON.stringify(report) : formatRehearsal(report));
  } catch (error) {
    console.error(`deploy rehearsal: ${(error as Error).message}`);
    process.exitCode = 1;
  }
}
