// osls plugin: variable sources serverless.yml needs and the framework lacks (CommonJS: osls
// require()s local plugins).
//
//   ${number(${param:writerBatchSize})}  a --param value is always a string ("5"); CloudFormation
//                                        accepts that, but the template should say what it means
//                                        in every variant, and a typo should fail the package.
//   ${derived:writerReservedConcurrency} the writer's reserved concurrency, derived (see below).
//   ${derived:kafkaBrokers}              kafkaBrokers, refused when its port is not the one MSK serves
//                                        the chosen authentication on (the IAM list with SCRAM, say).

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

const derivedValues = {
  writerReservedConcurrency: async (param) =>
    writerConcurrency(toNumber(await param('eventsTopicPartitions'), 'eventsTopicPartitions'), toNumber(await param('writerMaximumPollers'), 'writerMaximumPollers')),
  kafkaBrokers: async (param) => checkedBrokers(await param('kafkaBrokers'), await param('kafkaSaslMechanism')),
};

class TemplateValuesPlugin {
  constructor() {
    this.configurationVariablesSources = {
      number: {
        resolve: ({ params }) => ({ value: toNumber(params?.[0], 'number()') }),
      },
      derived: {
        resolve: async ({ address, resolveVariable }) => {
          const derive = derivedValues[address];
          if (!derive) throw new Error(`derived:${address}: unknown value (known: ${Object.keys(derivedValues).join(', ')})`);
          return { value: await derive((name) => resolveVariable(`param:${name}`)) };
        },
      },
    };
  }
}

module.exports = TemplateValuesPlugin;
