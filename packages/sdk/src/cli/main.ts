/**
 * The `blip2` command: caption, ask, parity, inspect, doctor, demo. `main` returns
 * the exit status instead of exiting, so tests can call it; src/cli.ts is the bin.
 */

import { bench } from './bench.js';
import { demo } from './demo.js';
import { doctor } from './doctor.js';
import { formatError, UsageError } from './errors.js';
import { exportCommand } from './export.js';
import { captionOrAsk } from './generate.js';
import { inspect } from './inspect.js';
import { type Io, processIo } from './io.js';
import { didYouMean } from './options.js';
import { parity } from './parity.js';

export const USAGE = `usage: blip2 <command> [options]   (blip2 <command> --help for its options)

commands:
  caption --model M --image I [--prompt P]    caption an image
  ask --model M --image I --question Q        answer a question about an image
  parity <fixture-dir> [--backend node|web]   replay a reference fixture folder, report differences
  inspect --model M                           config, parameters, dtypes, files, missing/unused weights
  export --model M --out DIR --dtype D        write the checkpoint with fp16 / q8 / q4 / q4f16 weights
  doctor                                      what this machine can run (providers, versions)
  demo                                        the shipped shapes-VQA models caption and answer
  bench [--variant V] [--dtype D] [--json]    real-size speed and memory beside the machine's limits

A model M is a checkpoint folder, an http(s) URL of one, or a Hugging Face hub id (org/name[@revision]).`;

const COMMANDS: Record<string, (args: readonly string[], io: Io) => Promise<number>> = {
  caption: (args, io) => captionOrAsk('caption', args, io),
  ask: (args, io) => captionOrAsk('ask', args, io),
  parity,
  inspect,
  export: exportCommand,
  doctor,
  demo,
  bench,
};

export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  const [command, ...args] = argv;
  const verbose = argv.includes('--verbose');
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    (command === undefined ? io.stderr : io.stdout).write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  if (!run) {
    const hint = didYouMean(command, Object.keys(COMMANDS));
    io.stderr.write(`blip2: unknown command '${command}'${hint}\n${USAGE}\n`);
    return 2;
  }
  try {
    return await run(args, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`blip2 ${command}: ${e.message}\n${e.usage}\n`);
      return 2;
    }
    io.stderr.write(`${formatError(e, verbose)}\n`);
    return 1;
  }
}
