import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // chDB must never be loaded in a worker thread (a worker exit hangs the process): forks only.
    pool: 'forks',
    include: ['tests/**/*.test.ts'],
    globalSetup: ['tests/setup/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
