import { defineConfig } from 'vitest/config';

// `pnpm bench` only: a real-size run that writes ~4.4 GB of random weights. Not part of `pnpm test`.
export default defineConfig({
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'] } },
  test: { include: ['bench/**/*.bench.ts'], testTimeout: 900_000, hookTimeout: 900_000 },
});
