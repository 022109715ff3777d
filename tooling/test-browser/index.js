import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

/** Debian's chromium package (`npm test` and .ci/run install it: no browser download here), or $BLIP2_CHROMIUM. */
export const CHROMIUM = process.env.BLIP2_CHROMIUM ?? '/usr/bin/chromium';

const ARGS = [
  '--no-sandbox',
  '--no-first-run',
  '--disable-quic',
  // without these Chromium keeps calling hosts this machine cannot reach
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // WebGPU without a GPU: Chromium falls back to SwiftShader's Vulkan
  '--enable-unsafe-webgpu',
];

/**
 * A headless Chromium context with a fresh profile folder (playwright refuses
 * --user-data-dir in args, so the persistent-context form takes the folder).
 * `close()` closes it and deletes the profile.
 */
export async function launchChromium() {
  const profile = mkdtempSync(join(tmpdir(), 'blip2-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
