import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real nats-server children: forks keep each file's process-exit cleanup its own.
    pool: 'forks',
    testTimeout: 20_000,
    hookTimeout: 60_000,
  },
});
