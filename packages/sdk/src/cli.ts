/**
 * The `blip2` bin (built to dist/cli.js with a shebang). Importing the Node entry
 * registers the Node platform (files, onnxruntime-node, sharp) the commands use.
 * A command line too long for onnxruntime-node is first handed to a child process
 * (cli/argv.ts); only a process with a short one runs the commands.
 */
import { argvOrReexec } from './cli/argv.js';
import { formatError } from './cli/errors.js';
import { loadBackendNode } from './node-platform.js';
import './index.js';

// `blip2 ... | head` closes stdout early: that is the reader being done, not an error
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

const args = argvOrReexec();
if (args) {
  // @blip2/backend-node is an optional peer of the SDK; the command needs it, so say so
  // in our words before the commands (some import it statically) load
  try {
    await loadBackendNode();
  } catch (e) {
    console.error(formatError(e, args.includes('--verbose')));
    process.exit(1);
  }
  const { main } = await import('./cli/main.js');

  main(args).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      // main reports every error itself; this is a last resort for a bug in the reporting
      console.error(e);
      process.exitCode = 1;
    },
  );
}
