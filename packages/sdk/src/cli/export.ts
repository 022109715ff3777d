/** `blip2 export --model M --out DIR --dtype D`: a checkpoint written in other weight formats. */
import { isQ4BlockSize, Q4_BLOCK_SIZES } from '@blip2/onnx';
import { describeDTypes, resolveDTypes } from '../core/dtype.js';
import { exportModel } from '../export.js';
import { UsageError } from './errors.js';
import type { Io } from './io.js';
import { COMMON, DTYPE_HELP, dtypeFlag, parse, required } from './options.js';

export const EXPORT_USAGE = `usage: blip2 export --model M --out DIR --dtype D [--q4-block 32|128] [--json]
  Writes the checkpoint M (folder, URL or hub id) to the new or empty folder DIR with its
  weights in dtype D: config, tokenizer and preprocessor files, safetensors shards holding
  the packed weights and their scales, and quantization.json saying what was packed how.
  DIR then loads from any source like a checkpoint (a browser downloads only those bytes).
  --model M               checkpoint folder, URL or Hugging Face hub id
  --out DIR               a folder that does not exist or is empty (never the source)
${DTYPE_HELP}
  --q4-block 32|128       q4's block along K (default 32, which every backend runs; 128 runs faster on
                          onnxruntime's CPU kernels, Node and wasm, and WebGPU refuses it)
  --json                  print {"dir", "files", "bytes", "sourceBytes", "dropped"}`;

export async function exportCommand(args: readonly string[], io: Io): Promise<number> {
  const { values } = parse(
    args,
    {
      ...COMMON,
      model: { type: 'string' },
      out: { type: 'string' },
      dtype: { type: 'string' },
      'q4-block': { type: 'string' },
    },
    EXPORT_USAGE,
  );
  if (values.help) {
    io.stdout.write(`${EXPORT_USAGE}\n`);
    return 0;
  }
  const model = required(values, 'model', EXPORT_USAGE);
  const out = required(values, 'out', EXPORT_USAGE);
  const dtype = dtypeFlag(required(values, 'dtype', EXPORT_USAGE), EXPORT_USAGE);
  const block = values['q4-block'] === undefined ? 32 : Number(values['q4-block']);
  if (!isQ4BlockSize(block))
    throw new UsageError(
      `--q4-block ${values['q4-block']}: one of ${Q4_BLOCK_SIZES.join(', ')}`,
      EXPORT_USAGE,
    );
  const result = await exportModel(model, out, { dtype, q4Block: block });
  if (values.json) io.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
    io.stdout.write(
      `exported ${model} as ${describeDTypes(resolveDTypes(dtype))} to ${result.dir}\n` +
        `  weights ${mb(result.bytes)} (source ${mb(result.sourceBytes)}, ${(result.bytes / result.sourceBytes).toFixed(3)}x)` +
        `${result.dropped.length ? `; ${result.dropped.length} weight(s) no graph uses left out` : ''}\n` +
        `  files: ${result.files.join(', ')}\n`,
    );
  }
  return 0;
}
