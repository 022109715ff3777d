import { defineConfig } from 'vitest/config';

// `pnpm bench` only: a real-size run that writes ~11 GB of random weights. Not part of `pnpm test`.
// One file at a time: two benches sharing the two cores would time each other.
export default defineConfig({
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'] } },
  test: {
    fileParallelism: false,
    include: ['bench/**/*.bench.ts'],
    testTimeout: 1_200_000,
    hookTimeout: 1_200_000,
  },
});
