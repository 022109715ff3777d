/**
 * The playground page: load a BLIP-2 checkpoint through `@blip2/sdk/browser`, pick an
 * image, caption it (streamed as tokens are chosen) or ask about it (the family's
 * zero-shot VQA prompt). Everything runs in this tab on onnxruntime-web.
 */
import './style.css';
import {
  Blip2ForConditionalGeneration,
  configureWebRuntime,
  createBackendBrowser,
  type LoadProgress,
  webDoctor,
} from '@blip2/sdk/browser';
import {
  decodingOptions,
  describeError,
  describeWeights,
  formatMs,
  LoadMeter,
  PlaygroundError,
} from './format.js';
import {
  MODEL_PRESETS,
  ORT_FILES,
  ORT_URL,
  ORT_WASM,
  SAMPLE_IMAGES,
  SAMPLES_URL,
  VQA_ONLY_NOTE,
} from './samples.js';
import { describeTimes, TimedBackend } from './timing.js';

// A bundle moves onnxruntime-web away from its .wasm/.mjs, so say where the app serves them.
// An absolute URL: Vite's dev server would add '?import' to a root-relative dynamic import.
configureWebRuntime({ wasmPaths: new URL(ORT_URL, location.href).href });

function element<T extends HTMLElement>(id: string, type: new () => T): T {
  const el = document.getElementById(id);
  if (!(el instanceof type)) throw new Error(`index.html has no <${type.name}> #${id}`);
  return el;
}

const ui = {
  environment: element('environment', HTMLParagraphElement),
  loadForm: element('load-form', HTMLFormElement),
  source: element('model-source', HTMLInputElement),
  presets: element('model-presets', HTMLDataListElement),
  device: element('device', HTMLSelectElement),
  dtype: element('dtype', HTMLSelectElement),
  load: element('load', HTMLButtonElement),
  progress: element('load-progress', HTMLProgressElement),
  loadStatus: element('load-status', HTMLParagraphElement),
  dropZone: element('drop-zone', HTMLLabelElement),
  file: element('image-file', HTMLInputElement),
  preview: element('preview', HTMLImageElement),
  dropHint: element('drop-hint', HTMLSpanElement),
  samples: element('samples', HTMLUListElement),
  imageStatus: element('image-status', HTMLParagraphElement),
  decoding: element('decoding', HTMLSelectElement),
  numBeams: element('num-beams', HTMLInputElement),
  maxNewTokens: element('max-new-tokens', HTMLInputElement),
  caption: element('caption', HTMLButtonElement),
  askForm: element('ask-form', HTMLFormElement),
  question: element('question', HTMLInputElement),
  ask: element('ask', HTMLButtonElement),
  result: element('result', HTMLOutputElement),
  resultNote: element('result-note', HTMLParagraphElement),
  timings: element('timings', HTMLParagraphElement),
  error: element('error', HTMLDivElement),
  errorCode: element('error-code', HTMLElement),
  errorMessage: element('error-message', HTMLSpanElement),
};

const state: {
  model?: { model: Blip2ForConditionalGeneration; backend: TimedBackend; source: string; vqaOnly: boolean };
  image?: { blob: Blob; name: string; url: string };
  /** the wasm binary is in this page (onnxruntime-web reads it from a blob: URL) */
  runtimeFetched: boolean;
  busy: boolean;
} = { busy: false, runtimeFetched: false };

function showError(error: unknown): void {
  const { code, message } = describeError(error);
  ui.errorCode.textContent = code;
  ui.errorMessage.textContent = message;
  ui.error.hidden = false;
  // the full error (stack, cause) is for whoever debugs the page, not for the page itself
  console.error(error);
}

function clearError(): void {
  ui.error.hidden = true;
  ui.errorCode.textContent = '';
  ui.errorMessage.textContent = '';
}

/** Actions are possible when a model and an image are there and nothing else runs. */
function refreshControls(): void {
  const ready = state.model !== undefined && state.image !== undefined && !state.busy;
  ui.caption.disabled = !ready;
  ui.ask.disabled = !ready;
  ui.load.disabled = state.busy;
  ui.numBeams.disabled = ui.decoding.value !== 'beam';
}

/** Runs one user action: one at a time, errors shown, controls restored. */
async function run(action: () => Promise<void>): Promise<void> {
  if (state.busy) return;
  state.busy = true;
  clearError();
  refreshControls();
  try {
    await action();
  } catch (e) {
    showError(e);
  } finally {
    state.busy = false;
    refreshControls();
  }
}

// ---- 1. Model ---------------------------------------------------------------------

for (const preset of MODEL_PRESETS) {
  const option = document.createElement('option');
  option.value = preset.url;
  option.label = preset.label;
  ui.presets.append(option);
}
ui.source.value = MODEL_PRESETS[0].url;

async function checkEnvironment(): Promise<void> {
  const report = await webDoctor();
  const webgpu = report.providers.find((p) => p.name === 'webgpu');
  const gpuOption = ui.device.querySelector<HTMLOptionElement>('option[value=webgpu]');
  if (gpuOption && !webgpu?.available) {
    gpuOption.disabled = true;
    gpuOption.textContent = 'WebGPU (not available here)';
  }
  const software = webgpu?.available ? await softwareAdapter() : undefined;
  ui.device.value = webgpu?.available && !software ? 'webgpu' : 'wasm';
  if (gpuOption && software) gpuOption.textContent = 'WebGPU (software adapter, slow)';
  const gpuText = !webgpu?.available
    ? `WebGPU: unavailable (${webgpu?.problem ?? 'unknown'})`
    : software
      ? `WebGPU: software adapter only (${software}), so wasm is chosen: a CPU emulating a GPU runs these models many times slower than wasm`
      : 'WebGPU: available';
  const threadText = report.threads.available
    ? `wasm threads: on (${report.threads.hardwareConcurrency ?? '?'} cores)`
    : `wasm threads: off (${report.threads.problem ?? 'not cross-origin isolated'})`;
  ui.environment.textContent = `${gpuText} · ${threadText} · onnxruntime-web ${report.onnxruntimeWeb}`;
}

/**
 * The adapter's name when WebGPU runs on a software rasterizer (SwiftShader in Chromium
 * without a GPU, or any adapter the browser marks as a fallback), else undefined.
 */
async function softwareAdapter(): Promise<string | undefined> {
  type AdapterInfo = {
    vendor?: string;
    architecture?: string;
    description?: string;
    isFallbackAdapter?: boolean;
  };
  const gpu = (navigator as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  const adapter = (await gpu?.requestAdapter().catch(() => null)) as
    | { info?: AdapterInfo; isFallbackAdapter?: boolean }
    | null
    | undefined;
  if (!adapter) return undefined;
  const info = adapter.info ?? {};
  const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ');
  if (info.isFallbackAdapter || adapter.isFallbackAdapter || /swiftshader|llvmpipe|software/i.test(name))
    return name || 'fallback adapter';
  return undefined;
}

function showProgress({ fraction, text }: { fraction: number; text: string }): void {
  ui.progress.value = fraction;
  ui.loadStatus.textContent = text;
}

/**
 * Downloads onnxruntime-web's wasm binary with progress (it is most of the bytes a small
 * model's first load moves), then points onnxruntime-web at it: a blob: URL, so the
 * runtime does not fetch it a second time. Once per page, before the first session.
 */
async function fetchRuntime(onBytes: (loaded: number, total: number) => void): Promise<void> {
  const url = new URL(`${ORT_URL}${ORT_WASM}`, location.href).href;
  const res = await fetch(url);
  if (!res.ok || !res.body)
    throw new PlaygroundError('E_RUNTIME', `the onnxruntime-web runtime ${url} answered HTTP ${res.status}`);
  const total = Number(res.headers.get('content-length') ?? 0);
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    onBytes(loaded, total);
  }
  const wasm = URL.createObjectURL(new Blob(chunks as BlobPart[], { type: 'application/wasm' }));
  configureWebRuntime({ wasmPaths: { mjs: new URL(`${ORT_URL}${ORT_FILES[0]}`, location.href).href, wasm } });
  state.runtimeFetched = true;
}

async function loadModel(): Promise<void> {
  const source = ui.source.value.trim();
  if (!source)
    throw new PlaygroundError('E_INPUT', 'model source is empty: give a checkpoint URL or a hub id');
  const device = ui.device.value as 'webgpu' | 'wasm';
  // the model that works stays until the new one has loaded: a failed load keeps it
  const previous = state.model;
  const meter = new LoadMeter(!state.runtimeFetched);
  ui.progress.value = 0;
  ui.loadStatus.textContent = `Loading ${source} on ${device}…`;
  const warnings: string[] = [];
  const start = performance.now();
  const onWarning = (message: string) => warnings.push(message);
  const onProgress = (event: LoadProgress) => showProgress(meter.model(event));
  let model: Blip2ForConditionalGeneration;
  let backend: TimedBackend;
  try {
    if (!state.runtimeFetched)
      await fetchRuntime((loaded, total) => showProgress(meter.runtime(loaded, total)));
    // the backend made here rather than by fromPretrained, so that its graph runs can be timed
    backend = new TimedBackend(await createBackendBrowser({ device, onProgress, onWarning }));
    // 'as stored': a checkpoint's float weights, or an export's own formats; else quantized in this tab
    const dtype = (ui.dtype.value || undefined) as 'q4' | undefined;
    model = await Blip2ForConditionalGeneration.fromPretrained(source, {
      backend,
      onProgress,
      onWarning,
      ...(dtype ? { dtype } : {}),
    });
  } catch (e) {
    ui.progress.value = previous ? 1 : 0;
    ui.loadStatus.textContent = previous
      ? `Could not load ${source}; still using ${previous.source} on ${previous.model.backendName}.`
      : `Could not load ${source}.`;
    throw e;
  }
  state.model = {
    model,
    backend,
    source,
    vqaOnly: MODEL_PRESETS.some((p) => p.url === source && p.vqaOnly),
  };
  await previous?.model.dispose();
  ui.progress.value = meter.done();
  ui.loadStatus.textContent =
    `Loaded ${source} on ${model.backendName} in ${formatMs(performance.now() - start)} (weights ${describeWeights(model.dtypes)}); ` +
    `questions are asked as “${model.vqaSettings().prompt}”.` +
    (warnings.length ? ` Warnings: ${warnings.join('; ')}` : '');
}

ui.loadForm.addEventListener('submit', (event) => {
  event.preventDefault();
  void run(loadModel);
});

// ---- 2. Image ---------------------------------------------------------------------

/** Marks the sample that is the current image (none for a file of the user's). */
function highlightSample(button: HTMLButtonElement | undefined): void {
  for (const b of ui.samples.querySelectorAll<HTMLButtonElement>('button.sample'))
    b.setAttribute('aria-pressed', String(b === button));
}

function setImage(blob: Blob, name: string): void {
  if (!blob.type.startsWith('image/')) {
    throw new PlaygroundError(
      'E_IMAGE_TYPE',
      `${name} is ${blob.type ? `of type ${blob.type}` : 'of an unknown type'}, not an image`,
    );
  }
  if (state.image) URL.revokeObjectURL(state.image.url);
  const url = URL.createObjectURL(blob);
  state.image = { blob, name, url };
  ui.preview.src = url;
  ui.preview.alt = `the chosen image, ${name}`;
  ui.preview.hidden = false;
  ui.dropHint.textContent = 'Drop or click to choose another image';
  ui.imageStatus.textContent = `Image: ${name}`;
  ui.result.textContent = '';
  ui.result.dataset.state = 'idle';
  ui.timings.textContent = '';
  showNote('');
}

ui.file.addEventListener('change', () => {
  const file = ui.file.files?.[0];
  if (file)
    void run(async () => {
      setImage(file, file.name);
      highlightSample(undefined);
    });
});

ui.dropZone.addEventListener('dragover', (event) => {
  event.preventDefault();
  ui.dropZone.classList.add('dragging');
});
ui.dropZone.addEventListener('dragleave', () => ui.dropZone.classList.remove('dragging'));
ui.dropZone.addEventListener('drop', (event) => {
  event.preventDefault();
  ui.dropZone.classList.remove('dragging');
  const file = event.dataTransfer?.files[0];
  if (file)
    void run(async () => {
      setImage(file, file.name);
      highlightSample(undefined);
    });
});

for (const name of SAMPLE_IMAGES) {
  const url = `${SAMPLES_URL}${name}`;
  const item = document.createElement('li');
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'sample';
  button.title = name;
  button.setAttribute('aria-pressed', 'false');
  const thumb = document.createElement('img');
  thumb.src = url;
  thumb.alt = `sample ${name}`;
  button.append(thumb);
  button.addEventListener('click', () =>
    run(async () => {
      const res = await fetch(url);
      if (!res.ok) throw new PlaygroundError('E_INPUT', `sample ${url} answered HTTP ${res.status}`);
      setImage(await res.blob(), name);
      highlightSample(button);
    }),
  );
  item.append(button);
  ui.samples.append(item);
}

// ---- 3. Caption or ask ------------------------------------------------------------

/** A line under the result that says what the text cannot (a VQA-only model's caption, an empty one). */
function showNote(text: string): void {
  ui.resultNote.textContent = text;
  ui.resultNote.hidden = text === '';
}

function readyModel() {
  if (!state.model) throw new PlaygroundError('E_NOT_READY', 'load a model first');
  if (!state.image) throw new PlaygroundError('E_NOT_READY', 'choose an image first');
  return { ...state.model, image: state.image.blob };
}

/** Times one action: graph time per side from the backend, tokens from `onToken`. */
function startTiming(backend: TimedBackend) {
  backend.reset();
  const start = performance.now();
  let tokens = 0;
  return {
    onToken: (event: { readonly step: number }) => {
      tokens = Math.max(tokens, event.step + 1);
    },
    summary: (backendName: string) =>
      describeTimes(backend.times, performance.now() - start, tokens, backendName),
  };
}

function currentDecoding() {
  return decodingOptions({
    strategy: ui.decoding.value,
    numBeams: ui.numBeams.value,
    maxNewTokens: ui.maxNewTokens.value,
  });
}

ui.decoding.addEventListener('change', refreshControls);

ui.caption.addEventListener('click', () =>
  run(async () => {
    const { model, backend, image, vqaOnly } = readyModel();
    const options = currentDecoding();
    const timer = startTiming(backend);
    ui.result.textContent = '';
    showNote('');
    ui.result.dataset.state = 'streaming';
    ui.timings.textContent = '';
    try {
      // each item is the new piece of text; beam search yields once, at the end
      const stream = model.stream(image, { ...options, onToken: timer.onToken });
      let next = await stream.next();
      while (!next.done) {
        ui.result.textContent += next.value;
        next = await stream.next();
      }
      ui.result.textContent = next.value;
      ui.result.dataset.state = 'done';
      showNote(
        [
          vqaOnly ? VQA_ONLY_NOTE : '',
          next.value === '' ? 'The caption is empty: the model ended the text at once.' : '',
        ]
          .filter(Boolean)
          .join(' '),
      );
    } catch (e) {
      ui.result.dataset.state = 'error';
      throw e;
    }
    ui.timings.textContent = timer.summary(model.backendName);
  }),
);

ui.askForm.addEventListener('submit', (event) => {
  event.preventDefault();
  void run(async () => {
    const { model, backend, image } = readyModel();
    showNote('');
    const question = ui.question.value.trim();
    if (!question) throw new PlaygroundError('E_INPUT', 'the question is empty: type one first');
    const options = currentDecoding();
    const timer = startTiming(backend);
    ui.result.textContent = '';
    ui.result.dataset.state = 'running';
    ui.timings.textContent = '';
    try {
      ui.result.textContent = await model.ask(image, question, { ...options, onToken: timer.onToken });
      ui.result.dataset.state = 'done';
    } catch (e) {
      ui.result.dataset.state = 'error';
      throw e;
    }
    ui.timings.textContent = timer.summary(model.backendName);
  });
});

refreshControls();
checkEnvironment().catch(showError);
