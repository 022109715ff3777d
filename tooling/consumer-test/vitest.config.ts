import { defineConfig } from 'vitest/config';

// installs from the npm cache and a Chromium run: minutes on a busy 2-core machine, not seconds
export default defineConfig({
  test: { testTimeout: 300_000, hookTimeout: 600_000 },
});
