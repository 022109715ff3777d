/**
 * What the app serves beside the page (see vite.config.ts): the shipped shapes-vqa
 * checkpoints and a few of its validation images. Shared by the build config and the
 * page so that the two lists cannot drift apart.
 */
export const MODEL_PRESETS = [
  {
    url: '/models/shapes-blip2-opt-captioner/',
    label: 'shapes captioner, OPT (1.1M parameters, shipped): captions and answers',
    vqaOnly: false,
  },
  {
    url: '/models/shapes-blip2-opt/',
    label: 'shapes-vqa OPT (1.1M parameters, shipped): VQA only, its captions are meaningless',
    vqaOnly: true,
  },
  {
    url: '/models/shapes-blip2-t5/',
    label: 'shapes-vqa Flan-T5 (1.4M parameters, shipped): VQA only, its captions are meaningless',
    vqaOnly: true,
  },
] as const;

/** Shown under a caption of a preset trained to answer questions only. */
export const VQA_ONLY_NOTE =
  'This is a VQA-only model: its captions are meaningless (it was trained to answer questions only). Load the shapes captioner to caption.';

export const SAMPLES_URL = '/samples/';

export const SAMPLE_IMAGES = [
  'COCO_val2014_000000000001.jpg',
  'COCO_val2014_000000000002.jpg',
  'COCO_val2014_000000000003.jpg',
  'COCO_val2014_000000000004.jpg',
  'COCO_val2014_000000000005.jpg',
  'COCO_val2014_000000000006.jpg',
] as const;

/** Where onnxruntime-web's wasm runtime (glue .mjs + .wasm) is served. */
export const ORT_URL = '/ort/';
export const ORT_FILES = ['ort-wasm-simd-threaded.jsep.mjs', 'ort-wasm-simd-threaded.jsep.wasm'] as const;
/** The ~28 MB wasm binary: the page downloads it itself, so the progress bar counts it. */
export const ORT_WASM = ORT_FILES[1];
