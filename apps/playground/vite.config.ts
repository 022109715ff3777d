import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultClientConditions, defineConfig } from 'vite';
import { staticMounts } from './assets-plugin.js';
import { ORT_FILES, ORT_URL, SAMPLE_IMAGES, SAMPLES_URL } from './src/samples.js';

// wasm runs multi-threaded only in a cross-origin isolated page (SharedArrayBuffer).
const ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

// The shipped shapes-vqa checkpoints and validation images (the fixtures package's data,
// read in place: importing that package would load its TypeScript dependencies here).
const SHAPES = fileURLToPath(new URL('../../tooling/fixtures/data/shapes-vqa/', import.meta.url));
const ortDist = dirname(
  createRequire(import.meta.url).resolve('onnxruntime-web/ort-wasm-simd-threaded.jsep.wasm'),
);

// A folder of your own (e.g. one written by `blip2 export --dtype q4`), served at /models/local/:
// BLIP2_PLAYGROUND_MODEL=path/to/folder pnpm --filter @blip2/playground dev
const LOCAL_MODEL = process.env.BLIP2_PLAYGROUND_MODEL;

export default defineConfig({
  // 'mpa': an unknown path is a 404, not index.html, so a wrong model URL says "not found"
  appType: 'mpa',
  resolve: {
    // 'source': workspace packages from their TypeScript sources (no sibling build needed).
    // 'onnxruntime-web-use-extern-wasm': onnxruntime-web's build that loads its wasm glue from
    // `wasmPaths` instead of inlining it and emitting a second copy of the 28 MB .wasm.
    conditions: ['source', 'onnxruntime-web-use-extern-wasm', ...defaultClientConditions],
  },
  server: { headers: ISOLATION },
  preview: { headers: ISOLATION },
  build: { target: 'es2022', chunkSizeWarningLimit: 2000 },
  plugins: [
    staticMounts([
      {
        url: '/models/shapes-blip2-opt-captioner/',
        dir: join(SHAPES, 'shapes-blip2-opt-captioner'),
        // the checkpoint's files, not its reference outputs
        files: [
          'config.json',
          'generation_config.json',
          'model.safetensors',
          'preprocessor_config.json',
          'tokenizer.json',
          'tokenizer_config.json',
        ],
      },
      { url: '/models/shapes-blip2-opt/', dir: join(SHAPES, 'shapes-blip2-opt') },
      { url: '/models/shapes-blip2-t5/', dir: join(SHAPES, 'shapes-blip2-t5') },
      ...(LOCAL_MODEL ? [{ url: '/models/local/', dir: LOCAL_MODEL }] : []),
      { url: SAMPLES_URL, dir: join(SHAPES, 'val', 'images'), files: SAMPLE_IMAGES },
      { url: ORT_URL, dir: ortDist, files: ORT_FILES },
    ]),
  ],
});
