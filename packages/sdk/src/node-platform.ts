/**
 * The Node platform: model sources resolve to local folders (downloading into the
 * cache when remote), graphs run on onnxruntime-node unless another backend is
 * asked for, and images decode through sharp.
 */
import { join } from 'node:path';
import type { NodeDevice } from '@blip2/backend-node';
import { readJsonFile } from '@blip2/configs/node';
import { decodeImageNode } from '@blip2/processor/node';
import { openWeightsFromDir } from '@blip2/safetensors/node';
import type { Backend } from '@blip2/tensor';
import { BACKEND_CHOICE_NAMES, checkOptionNames } from './core/option-names.js';
import type { BackendChoice, ModelFiles, Platform, SourceOptions } from './core/platform.js';
import { SdkError, sdkJsonFail } from './errors.js';
import { quantizeIntoCache } from './export.js';
import { resolveModel } from './sources/resolve.js';

export function folderFiles(dir: string): ModelFiles {
  return {
    location: dir,
    readJson: (name: string, optional = false) =>
      readJsonFile(join(dir, name), {
        optional,
        fail: (fault, file, reason, cause) =>
          sdkJsonFail(
            fault,
            file,
            fault === 'missing' ? `${reason} (a BLIP-2 checkpoint folder needs ${name})` : reason,
            cause,
          ),
      }),
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

function positiveInteger(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1)
    throw new SdkError('E_OPTION', `${name} must be an integer >= 1, got ${v}`);
  return v;
}

function nonNegativeInteger(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0)
    throw new SdkError('E_OPTION', `${name} must be an integer >= 0, got ${v}`);
  return v;
}

/**
 * @blip2/backend-node (onnxruntime-node) is an optional peer dependency of the SDK,
 * so that browser apps never download it; the Node entry loads it on first use.
 */
export async function loadBackendNode(): Promise<typeof import('@blip2/backend-node')> {
  try {
    return await import('@blip2/backend-node');
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (
      (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
      String(e).includes('backend-node')
    ) {
      throw new SdkError(
        'E_BACKEND',
        "@blip2/sdk in Node runs graphs on @blip2/backend-node, which is not installed: npm install @blip2/backend-node sharp (or pass backend: 'web')",
        { cause: e },
      );
    }
    throw e;
  }
}

/**
 * The Node platform's backend for a choice: a given Backend instance, onnxruntime-node
 * ('node', the default) or onnxruntime-web ('web', wasm in Node).
 */
export async function createBackend(choice: BackendChoice = {}): Promise<Backend> {
  checkOptionNames(choice, BACKEND_CHOICE_NAMES, 'createBackend options');
  return backendFor(choice);
}

/** createBackend once the names are known good (fromPretrained hands over all of its options). */
async function backendFor(choice: BackendChoice): Promise<Backend> {
  const { backend = 'node', device, fallback } = choice;
  if (typeof backend === 'object') return backend;
  if (backend === 'node') {
    if (device !== undefined && !NODE_DEVICES.includes(device)) {
      throw new SdkError(
        'E_OPTION',
        `device '${device}' is not a backend-node device (${NODE_DEVICES.join(', ')})`,
      );
    }
    if (fallback === 'wasm')
      throw new SdkError('E_OPTION', "fallback 'wasm' is for the web backend; use 'cpu' or 'error'");
    const { createNodeBackend } = await loadBackendNode();
    return createNodeBackend({
      device: device as NodeDevice | undefined,
      fallback: fallback as 'cpu' | 'error' | undefined,
      onWarning: choice.onWarning,
      ...(choice.threads !== undefined
        ? { intraOpNumThreads: positiveInteger('threads', choice.threads) }
        : {}),
      ...(choice.deviceId !== undefined ? { deviceId: nonNegativeInteger('deviceId', choice.deviceId) } : {}),
    });
  }
  if (backend === 'web') {
    if (device !== undefined && !WEB_DEVICES.includes(device)) {
      throw new SdkError(
        'E_OPTION',
        `device '${device}' is not a backend-web device (${WEB_DEVICES.join(', ')})`,
      );
    }
    const web = await import('@blip2/backend-web');
    return web.createWebBackend({
      device: (device ?? 'wasm') as 'wasm' | 'webgpu' | 'webnn',
      fallback: fallback === 'cpu' ? 'wasm' : (fallback as 'wasm' | 'error' | undefined),
      onWarning: choice.onWarning,
      ...(choice.threads !== undefined ? { numThreads: positiveInteger('threads', choice.threads) } : {}),
    });
  }
  throw new SdkError(
    'E_OPTION',
    `backend must be 'node', 'web' or a Backend instance, got ${JSON.stringify(backend)}`,
  );
}

export const nodePlatform: Platform = {
  async openSource(source: string, options: SourceOptions) {
    const resolved = await resolveModel(source, options);
    return folderFiles(resolved.dir);
  },
  createBackend: backendFor,
  quantizeWeights: quantizeIntoCache,
  decodeImage: decodeImageNode,
};

/** @deprecated the same function as `createBackend` (one name in both entries); kept for 0.x code */
export const createBackendNode = createBackend;
