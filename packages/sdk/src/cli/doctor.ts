/** `blip2 doctor`: what this machine can run, and how to get what is missing. */
import { loadBackendNode } from '../node-platform.js';
import type { Io } from './io.js';
import { COMMON, parse } from './options.js';

export const DOCTOR_USAGE = `usage: blip2 doctor [--json]
  Node.js version, onnxruntime-node and onnxruntime-web versions, which execution
  providers load here, and how to get the missing ones.`;

export async function doctor(args: readonly string[], io: Io): Promise<number> {
  const { values } = parse(args, COMMON, DOCTOR_USAGE);
  if (values.help) {
    io.stdout.write(`${DOCTOR_USAGE}\n`);
    return 0;
  }
  const node = (await loadBackendNode()).doctor();
  // onnxruntime-web is loaded only here, as createBackend does for backend 'web'
  const web = await (await import('@blip2/backend-web')).doctor();
  if (values.json) {
    io.stdout.write(`${JSON.stringify({ node, web })}\n`);
    return 0;
  }
  const lines = [
    `Node.js ${node.node} on ${node.platform}`,
    `onnxruntime-node ${node.onnxruntime} (blip2 --backend node)`,
    ...node.providers.map(
      (p) => `  ${p.available ? 'yes' : 'no '} ${p.name.padEnd(9)}${p.problem ? ` ${p.problem}` : ''}`,
    ),
    `onnxruntime-web ${web.onnxruntimeWeb} (blip2 --backend web; in Node for tests, in browsers for real)`,
    ...web.providers.map(
      (p) => `  ${p.available ? 'yes' : 'no '} ${p.name.padEnd(9)}${p.problem ? ` ${p.problem}` : ''}`,
    ),
    `  wasm threads: ${web.threads.available ? 'yes' : `no (${web.threads.problem})`}`,
    'CUDA: onnxruntime-node downloads its CUDA provider at install time only on request: ONNXRUNTIME_NODE_INSTALL=cuda12 pnpm install (needs CUDA 12 and cuDNN 9).',
  ];
  io.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
