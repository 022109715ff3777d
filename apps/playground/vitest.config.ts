import { defineConfig } from 'vitest/config';

// 'source' resolves workspace packages to their TypeScript sources, so a test
// sees a sibling's change without rebuilding it.
export default defineConfig({
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'] } },
  test: { testTimeout: 120_000, hookTimeout: 120_000 },
});
