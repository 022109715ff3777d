/** The `vqa-eval` executable. Ctrl-C stops after the batch in flight, keeping every answer on disk. */
import { main } from './command.js';

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

main(process.argv.slice(2), {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  progressStream: process.stderr,
  signal: controller.signal,
}).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`vqa-eval: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
