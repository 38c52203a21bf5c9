import { defineConfig } from 'vitest/config';

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
          // One embedded Kafka broker + ClickHouse server for these files.
          globalSetup: ['tests/setup/global-setup.ts'],
        },
      },
    ],
  },
});
