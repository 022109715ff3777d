/**
 * The Node platform: model sources resolve to local folders (downloading into the
 * cache when remote), graphs run on onnxruntime-node unless another backend is
 * asked for, and images decode through sharp.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createNodeBackend, type NodeDevice } from '@blip2/backend-node';
import { decodeImageNode } from '@blip2/processor/node';
import { openWeightsFromDir } from '@blip2/safetensors/node';
import type { Backend } from '@blip2/tensor';
import type { BackendChoice, ModelFiles, Platform, SourceOptions } from './core/platform.js';
import { SdkError } from './errors.js';
import { resolveModel } from './sources/resolve.js';

export function folderFiles(dir: string): ModelFiles {
  return {
    location: dir,
    async readJson(name: string, optional = false) {
      const path = join(dir, name);
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
          if (optional) return undefined;
          throw new SdkError(
            'E_MISSING_FILE',
            `${path}: no such file (a BLIP-2 checkpoint folder needs ${name})`,
          );
        }
        throw new SdkError('E_MISSING_FILE', `${path}: cannot read (${(e as Error).message})`, {
          cause: e,
        });
      }
      try {
        return JSON.parse(text);
      } catch (e) {
        throw new SdkError('E_INPUT', `${path} is not valid JSON: ${(e as Error).message}`, { cause: e });
      }
    },
    openWeights: () => openWeightsFromDir(dir),
  };
}

/** The devices each backend name takes (`--device`, `device`). */
export const BACKEND_DEVICES = {
  node: ['cpu', 'cuda', 'tensorrt', 'dml', 'coreml', 'webgpu'],
  web: ['wasm', 'webgpu', 'webnn'],
} as const satisfies Record<'node' | 'web', readonly string[]>;
const NODE_DEVICES: readonly string[] = BACKEND_DEVICES.node;
const WEB_DEVICES: readonly string[] = BACKEND_DEVICES.web;

export async function createBackendNode(choice: BackendChoice): Promise<Backend> {
  const { backend = 'node', device, fallback } = choice;
  if (typeof backend === 'object') return backend;
  if (backend === 'node') {
    if (device !== undefined && !NODE_DEVICES.includes(device)) {
      throw new SdkError(
        'E_OPTIONS',
        `device '${device}' is not a backend-node device (${NODE_DEVICES.join(', ')})`,
      );
    }
    if (fallback === 'wasm')
      throw new SdkError('E_OPTIONS', "fallback 'wasm' is for the web backend; use 'cpu' or 'error'");
    return createNodeBackend({
      device: device as NodeDevice | undefined,
      fallback: fallback as 'cpu' | 'error' | undefined,
      onWarning: choice.onWarning,
    });
  }
  if (backend === 'web') {
    if (device !== undefined && !WEB_DEVICES.includes(device)) {
      throw new SdkError(
        'E_OPTIONS',
        `device '${device}' is not a backend-web device (${WEB_DEVICES.join(', ')})`,
      );
    }
    const web = await import('@blip2/backend-web');
    return web.createWebBackend({
      device: (device ?? 'wasm') as 'wasm' | 'webgpu' | 'webnn',
      fallback: fallback === 'cpu' ? 'wasm' : (fallback as 'wasm' | 'error' | undefined),
      onWarning: choice.onWarning,
    });
  }
  throw new SdkError(
    'E_OPTIONS',
    `backend must be 'node', 'web' or a Backend instance, got ${JSON.stringify(backend)}`,
  );
}

export const nodePlatform: Platform = {
  async openSource(source: string, options: SourceOptions) {
    const resolved = await resolveModel(source, options);
    return folderFiles(resolved.dir);
  },
  createBackend: createBackendNode,
  decodeImage: decodeImageNode,
};
