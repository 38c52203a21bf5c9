// osls plugin: variable sources serverless.yml needs and the framework lacks (CommonJS: osls
// require()s local plugins).
//
//   ${number(${param:writerBatchSize})}  a --param value is always a string ("5"); CloudFormation
//                                        accepts that, but the template should say what it means
//                                        in every variant, and a typo should fail the package.
//   ${derived:writerReservedConcurrency} the writer's reserved concurrency, derived (see below).
//   ${derived:kafkaBrokers}              kafkaBrokers, refused when its port is not the one MSK serves
//                                        the chosen authentication on (the IAM list with SCRAM, say).
//   ${derived:corsAllowedOrigins}        the comma-separated corsAllowedOrigins as the list API Gateway takes.
//   ${derived:deploymentChecks}          true once the stage's params make a stack that works: each
//                                        combination that would deploy a broken one is refused (below).
//
// It also says, loudly, when a package or deploy has no alarmTopicArn: the alarms then notify a topic
// the stack creates, which nobody receives until someone subscribes.

// AWS: in provisioned mode one event poller invokes the function at most 5 times at once, and a
// Kafka mapping invokes at most once per partition at a time (records of a partition stay in order).
const invocationsPerPoller = 5;

/** A --param or YAML value as a number; anything else fails `serverless package` naming the value. */
function toNumber(value, what) {
  const number = typeof value === 'number' ? value : Number(String(value ?? '').trim());
  if (String(value ?? '').trim() === '' || !Number.isFinite(number)) {
    throw new Error(`${what}: expected a number, got ${JSON.stringify(value)}`);
  }
  return number;
}

/** The most invocations the writer's mapping can run at once: min(partitions, maximum pollers x 5). */
function writerConcurrency(partitions, maximumPollers) {
  return Math.min(partitions, maximumPollers * invocationsPerPoller);
}

// MSK serves each authentication on its own port.
const mskPorts = { 'aws-msk-iam': '9098', 'scram-sha-512': '9096' };

/** The brokers, if each is on the port of the mechanism (no mechanism, offline: any port). */
function checkedBrokers(brokers, mechanism) {
  const port = mskPorts[mechanism];
  const wrong = String(brokers).split(',').filter((b) => port && b.trim() && b.trim().split(':').pop() !== port);
  if (wrong.length > 0) {
    throw new Error(`kafkaBrokers: MSK serves ${mechanism} on port ${port}, not ${wrong.join(',')} (aws kafka get-bootstrap-brokers lists both)`);
  }
  return brokers;
}

// CloudWatch evaluates an alarm over at most 7 days (Period x EvaluationPeriods, for hourly periods).
const maxAlarmHours = 7 * 24;
// The ingest's concurrency for a request rate: 2 x rate x 15 ms (docs/capacity-and-cost.md: an ingest request
// takes ~15 ms, and the reserved concurrency keeps twice that room). The stage-wide ceiling must fit in it.
const ingestsFor = (rate) => Math.ceil(2 * rate * 0.015);

/** An origin API Gateway can match: scheme and host (and port), no path, no trailing slash; or `*`. */
const isOrigin = (origin) => origin === '*' || /^https?:\/\/[a-z0-9.-]+(:\d+)?$/i.test(origin);

/** corsAllowedOrigins (comma-separated) as a list; a malformed origin fails the package, naming it. */
function corsOrigins(value) {
  const origins = String(value ?? '').split(',').map((o) => o.trim()).filter(Boolean);
  const wrong = origins.filter((o) => !isOrigin(o));
  if (origins.length === 0 || wrong.length > 0) {
    throw new Error(`corsAllowedOrigins: expected the cinema's page origins, comma-separated (https://cinema.example.com,https://www.cinema.example.com), or *; got ${JSON.stringify(value)}`);
  }
  return origins;
}

/**
 * Settings that package fine and deploy a broken stack, each refused with the parameter and the fix.
 * `p` holds the stage's params as strings; the dev stage runs offline from the environment, unchecked.
 */
const deploymentRules = [
  (p) => !p.jwtSecretParameter && !p.jwtJwksUrl
    && 'jwtSecretParameter: set it (the SSM SecureString of the HS256 key, e.g. /ugc-ingest/prod/jwt-secret) or jwtJwksUrl (the Auth service\'s JWKS URL): without either every call is refused',
  (p) => p.jwtSecretParameter && p.jwtJwksUrl
    && 'jwtJwksUrl: set jwtSecretParameter or jwtJwksUrl, not both: the functions refuse to start with both',
  (p) => p.jwtSecretParameter && !p.jwtSecretParameter.startsWith('/')
    && `jwtSecretParameter: ${p.jwtSecretParameter} has no leading /; pass the full path name (/${p.jwtSecretParameter}): the roles' ssm:GetParameter ARN is built from it`,
  (p) => p.kafkaSaslMechanism === 'scram-sha-512' && !p.kafkaSaslSecretArn
    && 'kafkaSaslSecretArn: required with kafkaSaslMechanism=scram-sha-512: the ARN of the AmazonMSK_ secret holding the SCRAM credentials (the mapping and the functions authenticate with it)',
  (p) => p.kafkaSaslMechanism === 'scram-sha-512' && !p.secretsKmsKeyArn
    && 'secretsKmsKeyArn: required with kafkaSaslMechanism=scram-sha-512: MSK takes SCRAM secrets only under a customer-managed KMS key; pass that key\'s ARN (the roles get kms:Decrypt on it)',
  (p) => p.alarmTopicArn && !/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]+$/.test(p.alarmTopicArn)
    && `alarmTopicArn: ${p.alarmTopicArn} is not an SNS topic ARN; pass arn:aws:sns:<region>:<account>:<topic> (aws sns list-topics)`,
];

/** One line per broken combination in the stage's params; none in the dev stage (offline). */
function deploymentProblems(stage, p) {
  const hours = toNumber(p.writerStalledAlarmHours, 'writerStalledAlarmHours');
  const concurrency = toNumber(p.ingestReservedConcurrency, 'ingestReservedConcurrency');
  const rate = toNumber(p.httpThrottleRateLimit, 'httpThrottleRateLimit');
  const everyStage = [
    (!Number.isInteger(hours) || hours < 1 || hours > maxAlarmHours)
      && `writerStalledAlarmHours: ${p.writerStalledAlarmHours} is outside 1-${maxAlarmHours} (CloudWatch evaluates an alarm over 7 days at most, and the deploy fails); keep it under a quarter of ugc.events' retention (42 for 7 days)`,
    ingestsFor(rate) > concurrency
      && `httpThrottleRateLimit: ${rate}/s needs ${ingestsFor(rate)} ingests at once (2 x 15 ms a request, docs/capacity-and-cost.md), more than ingestReservedConcurrency (${concurrency}): lower it, or raise ingestReservedConcurrency to ${ingestsFor(rate)}`,
  ];
  const deployed = stage === 'dev' ? [] : deploymentRules.map((rule) => rule(p));
  return [...everyStage, ...deployed].filter(Boolean);
}

const checkedParams = ['jwtSecretParameter', 'jwtJwksUrl', 'kafkaSaslMechanism', 'kafkaSaslSecretArn', 'secretsKmsKeyArn', 'alarmTopicArn',
  'writerStalledAlarmHours', 'ingestReservedConcurrency', 'httpThrottleRateLimit'];

const derivedValues = {
  writerReservedConcurrency: async (param) =>
    writerConcurrency(toNumber(await param('eventsTopicPartitions'), 'eventsTopicPartitions'), toNumber(await param('writerMaximumPollers'), 'writerMaximumPollers')),
  kafkaBrokers: async (param) => checkedBrokers(await param('kafkaBrokers'), await param('kafkaSaslMechanism')),
  corsAllowedOrigins: async (param) => corsOrigins(await param('corsAllowedOrigins')),
  deploymentChecks: async (param, resolveVariable) => {
    const values = Object.fromEntries(await Promise.all(checkedParams.map(async (name) => [name, String((await param(name)) ?? '').trim()])));
    const problems = deploymentProblems(await resolveVariable('sls:stage'), values);
    if (problems.length > 0) throw new Error(problems.join('\n  - '));
    return true;
  },
};

/** How to receive the alarms of a stack deployed without alarmTopicArn (its own topic, no subscriber yet). */
function alarmTopicWarning(service, stage, region) {
  const topic = `${service}-${stage}-alarms`;
  return [
    `alarmTopicArn is not set: the alarms notify the stack's own SNS topic ${topic}, which NOBODY receives until someone subscribes:`,
    `  aws sns subscribe --region ${region} --protocol email --notification-endpoint oncall@example.com \\`,
    `    --topic-arn "arn:aws:sns:${region}:$(aws sts get-caller-identity --query Account --output text):${topic}"`,
    `or deploy with --param=alarmTopicArn=<the on-call team's topic>.`,
  ].join('\n');
}

class TemplateValuesPlugin {
  constructor(serverless, options, { log } = {}) {
    const warnWithoutAlarmTopic = () => {
      const { service, provider, resources } = serverless.service;
      if (resources?.Parameters?.AlarmTopicArn?.Default !== '' || provider.stage === 'dev') return;
      (log?.warning ?? console.warn)(alarmTopicWarning(service, provider.stage, provider.region));
    };
    // Once, at the end of what the operator ran (a deploy packages first).
    this.hooks = {
      'after:package:finalize': () => { if (serverless.processedInput?.commands?.[0] === 'package') warnWithoutAlarmTopic(); },
      'after:deploy:deploy': warnWithoutAlarmTopic,
    };
    // A refusal is the framework's own error: printed as its message, without a stack.
    const Refusal = serverless?.classes?.Error ?? Error;
    const refusing = (resolve) => async (source) => {
      try {
        return await resolve(source);
      } catch (error) {
        throw error instanceof Refusal ? error : new Refusal(error.message);
      }
    };
    this.configurationVariablesSources = {
      number: {
        resolve: refusing(({ params }) => ({ value: toNumber(params?.[0], 'number()') })),
      },
      derived: {
        resolve: refusing(async ({ address, resolveVariable }) => {
          const derive = derivedValues[address];
          if (!derive) throw new Error(`derived:${address}: unknown value (known: ${Object.keys(derivedValues).join(', ')})`);
          return { value: await derive((name) => resolveVariable(`param:${name}`), resolveVariable) };
        }),
      },
    };
  }
}

module.exports = TemplateValuesPlugin;
