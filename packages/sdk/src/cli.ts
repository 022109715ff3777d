/**
 * The `blip2` bin (built to dist/cli.js with a shebang). Importing the Node entry
 * registers the Node platform (files, onnxruntime-node, sharp) the commands use.
 */
import './index.js';
import { main } from './cli/main.js';

// `blip2 ... | head` closes stdout early: that is the reader being done, not an error
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

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
