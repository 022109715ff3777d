/**
 * The `blip2` bin (built to dist/cli.js with a shebang). Importing the Node entry
 * registers the Node platform (files, onnxruntime-node, sharp) the commands use.
 */
import { formatError } from './cli/errors.js';
import { loadBackendNode } from './node-platform.js';
import './index.js';

// `blip2 ... | head` closes stdout early: that is the reader being done, not an error
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

// @blip2/backend-node is an optional peer of the SDK; the command needs it, so say so
// in our words before the commands (some import it statically) load
try {
  await loadBackendNode();
} catch (e) {
  console.error(formatError(e, process.argv.includes('--verbose')));
  process.exit(1);
}
const { main } = await import('./cli/main.js');

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    // main reports every error itself; this is a last resort for a bug in the reporting
    console.error(e);
    process.exitCode = 1;
  },
);
