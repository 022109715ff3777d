/**
 * The `vqa-eval` executable. Ctrl-C stops after the batch in flight, keeping every answer on disk.
 * A command line too long for onnxruntime-node (a question or prompt of many KB) is first
 * handed to a child process with a short one, as `blip2` does (@blip2/sdk/argv); the
 * commands, and with them onnxruntime, load only in a process with a short command line.
 */
import { argvOrReexec } from '@blip2/sdk/argv';

const args = argvOrReexec(process.argv.slice(2), 'vqa-eval');
if (args) {
  const { main } = await import('./command.js');
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (name: string) => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    process.stderr.write(`\nvqa-eval: ${name}: stopping after the current batch (again to quit at once)\n`);
    controller.abort();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  main(args, {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    progressStream: process.stderr,
    signal: controller.signal,
  }).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      // main reports every error itself; this is a last resort for a bug in the reporting
      const verbose = args.includes('--verbose');
      process.stderr.write(
        `vqa-eval: ${e instanceof Error ? (verbose ? (e.stack ?? e.message) : e.message) : String(e)}\n`,
      );
      process.exitCode = 1;
    },
  );
}
