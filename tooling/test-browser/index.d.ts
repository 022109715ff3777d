import type { BrowserContext } from 'playwright-core';

/** Debian's chromium package. */
export declare const CHROMIUM: string;
/** A headless Chromium context with a fresh profile; `close()` closes it and deletes the profile. */
export declare function launchChromium(): Promise<{ context: BrowserContext; close(): Promise<void> }>;
