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
import { decodingOptions, describeError, describeProgress, formatMs, PlaygroundError } from './format.js';
import { MODEL_PRESETS, ORT_URL, SAMPLE_IMAGES, SAMPLES_URL } from './samples.js';
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
  timings: element('timings', HTMLParagraphElement),
  error: element('error', HTMLDivElement),
  errorCode: element('error-code', HTMLElement),
  errorMessage: element('error-message', HTMLSpanElement),
};

const state: {
  model?: { model: Blip2ForConditionalGeneration; backend: TimedBackend };
  image?: { blob: Blob; name: string; url: string };
  busy: boolean;
} = { busy: false };

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
  ui.device.value = webgpu?.available ? 'webgpu' : 'wasm';
  const gpuText = webgpu?.available
    ? 'WebGPU: available'
    : `WebGPU: unavailable (${webgpu?.problem ?? 'unknown'})`;
  const threadText = report.threads.available
    ? `wasm threads: on (${report.threads.hardwareConcurrency ?? '?'} cores)`
    : `wasm threads: off (${report.threads.problem ?? 'not cross-origin isolated'})`;
  ui.environment.textContent = `${gpuText} · ${threadText} · onnxruntime-web ${report.onnxruntimeWeb}`;
}

function onProgress(event: LoadProgress): void {
  const { fraction, text } = describeProgress(event);
  ui.progress.value = fraction;
  ui.loadStatus.textContent = text;
}

async function loadModel(): Promise<void> {
  const source = ui.source.value.trim();
  if (!source)
    throw new PlaygroundError('E_INPUT', 'model source is empty: give a checkpoint URL or a hub id');
  const device = ui.device.value as 'webgpu' | 'wasm';
  // one model at a time: the weights of the previous one leave the wasm heap first
  const previous = state.model;
  state.model = undefined;
  await previous?.model.dispose();

  ui.progress.value = 0;
  ui.loadStatus.textContent = `Loading ${source} on ${device}…`;
  const warnings: string[] = [];
  const start = performance.now();
  const onWarning = (message: string) => warnings.push(message);
  let model: Blip2ForConditionalGeneration;
  let backend: TimedBackend;
  try {
    // the backend made here rather than by fromPretrained, so that its graph runs can be timed
    backend = new TimedBackend(await createBackendBrowser({ device, onProgress, onWarning }));
    model = await Blip2ForConditionalGeneration.fromPretrained(source, { backend, onProgress, onWarning });
  } catch (e) {
    ui.progress.value = 0;
    ui.loadStatus.textContent = `Could not load ${source}.`;
    throw e;
  }
  state.model = { model, backend };
  ui.progress.value = 1;
  ui.loadStatus.textContent =
    `Loaded ${source} on ${model.backendName} in ${formatMs(performance.now() - start)}; ` +
    `questions are asked as “${model.questionTemplate}”.` +
    (warnings.length ? ` Warnings: ${warnings.join('; ')}` : '');
}

ui.loadForm.addEventListener('submit', (event) => {
  event.preventDefault();
  void run(loadModel);
});

// ---- 2. Image ---------------------------------------------------------------------

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
}

ui.file.addEventListener('change', () => {
  const file = ui.file.files?.[0];
  if (file) void run(async () => setImage(file, file.name));
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
  if (file) void run(async () => setImage(file, file.name));
});

for (const name of SAMPLE_IMAGES) {
  const url = `${SAMPLES_URL}${name}`;
  const item = document.createElement('li');
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'sample';
  button.title = name;
  const thumb = document.createElement('img');
  thumb.src = url;
  thumb.alt = `sample ${name}`;
  button.append(thumb);
  button.addEventListener('click', () =>
    run(async () => {
      const res = await fetch(url);
      if (!res.ok) throw new PlaygroundError('E_INPUT', `sample ${url} answered HTTP ${res.status}`);
      setImage(await res.blob(), name);
    }),
  );
  item.append(button);
  ui.samples.append(item);
}

// ---- 3. Caption or ask ------------------------------------------------------------

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
    const { model, backend, image } = readyModel();
    const options = currentDecoding();
    const timer = startTiming(backend);
    ui.result.textContent = '';
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
