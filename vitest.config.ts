import { defineConfig } from 'vitest/config';

// The files that run Kafka clusters of their own and kill, pause or restart them (or the whole
// stack): each costs 3 JVMs or more, so they run after the rest, one at a time, instead of
// starving the shared cluster's tests of the machine's 2 cores.
const ownClusterFiles = [
  'tests/integration/embedded-kafka.test.ts',
  'tests/reliability/broker-faults.test.ts',
  'tests/reliability/stack-kill.test.ts',
];

export default defineConfig({
  test: {
    // chDB must never be loaded in a worker thread (a worker exit hangs the process): forks only.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: [
      { extends: true, test: { name: 'unit', include: ['tests/unit/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'stack',
          include: ['tests/integration/**/*.test.ts', 'tests/reliability/**/*.test.ts', 'tests/e2e/**/*.test.ts'],
          exclude: ownClusterFiles,
          // One embedded Kafka cluster (3 brokers) + ClickHouse server for these files.
          globalSetup: ['tests/setup/global-setup.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'own-clusters',
          include: ownClusterFiles,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        test: {
          // `serverless deploy` / `remove` against moto's server (scripts/deploy-rehearsal.ts), last:
          // its `serverless package` stages zips in the shared .serverless/ as the template test's does.
          name: 'deploy',
          include: ['tests/deploy/**/*.test.ts'],
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
