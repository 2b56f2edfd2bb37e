// Lupa's page: picks the image, fetches and caches the model weights, and drives the engine worker.
//
// Network: this script fetches only same-origin files (models/index.json and the weights); the
// image is read locally and handed to the worker, and the result comes back as bytes shown through
// a blob: URL. The Content-Security-Policy in index.html enforces connect-src 'self'.
//
// URL parameters (for testing and power users): ?backend=auto|webgpu|cpu picks the compute backend,
// ?tile=N forces the tile side in input pixels.

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const CACHE_NAME = 'lupa-models-v1';
const CANCEL_GRACE_MS = 3000;

const ui = {
  drop: $('drop'), file: $('file'), fileInfo: $('file-info'), scale: $('scale'), model: $('model'),
  backend: $('backend'), go: $('go'), cancel: $('cancel'), modelInfo: $('model-info'),
  progress: $('progress'), status: $('status'), engine: $('engine'), result: $('result'),
  zoom: $('zoom'), download: $('download'), compare: $('compare'), after: $('after'),
  before: $('before'), beforeClip: $('before-clip'), divider: $('divider'), slider: $('slider'),
  previewNote: $('preview-note'),
};

const state = {
  index: null,        // parsed models/index.json
  indexText: '',
  worker: null,
  info: null,         // BackendInfo from the engine
  loaded: new Set(),  // model ids loaded in the current worker
  pending: null,      // {resolve, reject} of the request in flight
  input: null,        // {name, bytes: ArrayBuffer, url}
  resultUrl: null,
  busy: false,
};

function setState(name, text) {
  document.body.dataset.state = name;
  if (text !== undefined) ui.status.textContent = text;
}

// ---- engine worker ------------------------------------------------------------------------

function onWorkerMessage({ data }) {
  if (data.type === 'progress') {
    ui.progress.max = Math.max(data.total, 1);
    ui.progress.value = data.done;
    ui.progress.dataset.done = data.done;
    ui.progress.dataset.total = data.total;
    if (state.busy) ui.status.textContent = `Upscaling… tile ${data.done} of ${data.total}`;
    return;
  }
  const pending = state.pending;
  state.pending = null;
  if (data.type === 'panic') {
    // The wasm instance is dead; the next request starts a fresh worker.
    state.worker.terminate();
    state.worker = null;
    pending?.reject(new Error(`the engine crashed: ${data.message}`));
    return;
  }
  if (!pending) return;
  if (data.type === 'error') pending.reject(new Error(data.message));
  else pending.resolve(data);
}

function request(message, transfer = []) {
  return new Promise((resolve, reject) => {
    state.pending = { resolve, reject };
    state.worker.postMessage(message, transfer);
  });
}

async function startEngine() {
  state.worker?.terminate();
  state.loaded.clear();
  state.info = null;
  const worker = new Worker('./worker.js', { type: 'module' });
  worker.onmessage = onWorkerMessage;
  worker.onerror = (e) => {
    e.preventDefault();
    const pending = state.pending;
    state.pending = null;
    pending?.reject(new Error(`the engine failed to start: ${e.message || 'worker error'}`));
  };
  state.worker = worker;
  const { info } = await request({ type: 'init', index: state.indexText, backend: ui.backend.value });
  state.info = info;
  ui.engine.textContent = `Engine: ${info.backend === 'webgpu' ? 'WebGPU' : 'CPU'} (${info.adapter}). ${info.reason}.`;
  document.body.dataset.backend = info.backend;
  return info;
}

async function ensureEngine() {
  if (!state.worker) await startEngine();
}

// ---- model weights: same origin, sha256-checked by the engine, kept in Cache Storage ----------

async function openCache() {
  // Cache Storage exists only in secure contexts (https, localhost); elsewhere weights are
  // fetched each visit.
  try {
    return globalThis.caches ? await caches.open(CACHE_NAME) : null;
  } catch {
    return null;
  }
}

async function fetchWeights(spec) {
  const response = await fetch(`models/${spec.weights.file}`, { cache: 'no-store' });
  if (!response.ok) throw new Error(`cannot download models/${spec.weights.file}: HTTP ${response.status}`);
  return response.arrayBuffer();
}

async function ensureModel(spec) {
  if (state.loaded.has(spec.id)) return;
  const cache = await openCache();
  // The key carries the hash, so new weights under the same file name are fetched again.
  const key = new Request(`models/${spec.weights.file}?sha256=${spec.weights.sha256}`);
  const cached = cache && (await cache.match(key));
  if (cached) {
    setState('loading', `Loading ${spec.name} from the cache…`);
    try {
      await request({ type: 'load', id: spec.id, weights: await cached.arrayBuffer() });
      state.loaded.add(spec.id);
      return;
    } catch (e) {
      if (!state.worker) throw e;
      await cache.delete(key); // damaged entry: fall through to the network
    }
  }
  setState('loading', `Downloading ${spec.name} (${(spec.weights.bytes / 1e6).toFixed(1)} MB, once)…`);
  const bytes = await fetchWeights(spec);
  const copy = cache ? bytes.slice(0) : null;
  await request({ type: 'load', id: spec.id, weights: bytes }, [bytes]);
  state.loaded.add(spec.id);
  // Only weights the engine accepted (size and sha256 match the registry) are cached.
  if (cache) await cache.put(key, new Response(copy, { headers: { 'content-type': 'application/octet-stream' } }));
}

// ---- input ----------------------------------------------------------------------------------

async function takeFile(file) {
  if (!file) return;
  if (state.input?.url) URL.revokeObjectURL(state.input.url);
  const bytes = await file.arrayBuffer();
  state.input = { name: file.name || 'pasted-image', bytes, url: URL.createObjectURL(file) };
  ui.fileInfo.textContent = `${state.input.name}, ${(bytes.byteLength / 1024).toFixed(0)} KB`;
  const probe = new Image();
  probe.onload = () => { ui.fileInfo.textContent += `, ${probe.naturalWidth}×${probe.naturalHeight}`; };
  probe.src = state.input.url;
  ui.result.hidden = true;
  updateButtons();
  if (!state.busy) setState('ready', 'Ready: choose a scale and press Upscale.');
}

ui.file.addEventListener('change', () => takeFile(ui.file.files[0]));
ui.drop.addEventListener('dragover', (e) => { e.preventDefault(); ui.drop.classList.add('over'); });
ui.drop.addEventListener('dragleave', () => ui.drop.classList.remove('over'));
ui.drop.addEventListener('drop', (e) => {
  e.preventDefault();
  ui.drop.classList.remove('over');
  takeFile(e.dataTransfer.files[0]);
});
document.addEventListener('paste', (e) => {
  const file = [...(e.clipboardData?.files ?? [])].find((f) => f.type.startsWith('image/'));
  if (file) takeFile(file);
});

// ---- model and scale choice -----------------------------------------------------------------

function fillScales() {
  const scales = [...new Set(state.index.models.map((m) => m.scale))].sort((a, b) => a - b);
  ui.scale.replaceChildren(...scales.map((s) => new Option(`${s}×`, s)));
  ui.scale.value = scales.includes(4) ? 4 : scales[scales.length - 1];
  fillModels();
}

function fillModels() {
  const scale = Number(ui.scale.value);
  const models = state.index.models.filter((m) => m.scale === scale);
  ui.model.replaceChildren(...models.map((m) => new Option(m.name, m.id)));
  const fidelity = models.find((m) => m.kind === 'fidelity');
  if (fidelity) ui.model.value = fidelity.id;
  describeModel();
}

function currentSpec() {
  return state.index.models.find((m) => m.id === ui.model.value);
}

function describeModel() {
  const spec = currentSpec();
  ui.modelInfo.textContent = spec ? `${spec.description} Weights: ${spec.licence.spdx}, ${spec.licence.upstream}.` : '';
}

ui.scale.addEventListener('change', fillModels);
ui.model.addEventListener('change', describeModel);
ui.backend.addEventListener('change', async () => {
  if (state.busy) return;
  setState('starting', 'Restarting the engine…');
  try {
    await startEngine();
    setState('ready', state.input ? 'Ready.' : 'Ready: drop, paste or choose an image.');
  } catch (e) {
    showError(e);
  }
});

function updateButtons() {
  ui.go.disabled = state.busy || !state.input || !state.index;
  ui.cancel.hidden = !state.busy;
  for (const el of [ui.scale, ui.model, ui.backend]) el.disabled = state.busy;
}

function showError(e) {
  setState('error', `Error: ${e.message}`);
}

// ---- upscale --------------------------------------------------------------------------------

async function upscale() {
  const spec = currentSpec();
  if (!state.input || !spec) return;
  state.busy = true;
  updateButtons();
  ui.progress.hidden = false;
  ui.progress.value = 0;
  try {
    await ensureEngine();
    await ensureModel(spec);
    setState('busy', 'Upscaling…');
    const tile = Number(params.get('tile') ?? 0);
    const input = state.input.bytes.slice(0);
    const done = await request({ type: 'upscale', id: spec.id, input, tile }, [input]);
    if (done.type === 'cancelled') {
      setState('cancelled', 'Cancelled.');
      return;
    }
    showResult(done, spec);
  } catch (e) {
    showError(e);
  } finally {
    state.busy = false;
    ui.progress.hidden = true;
    updateButtons();
  }
}

function showResult(done, spec) {
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = URL.createObjectURL(new Blob([done.png], { type: 'image/png' }));
  const base = state.input.name.replace(/\.[^.]*$/, '');
  ui.download.href = state.resultUrl;
  ui.download.download = `${base}-${spec.id}.png`;
  ui.previewNote.hidden = true;
  ui.compare.hidden = false;
  ui.after.src = state.resultUrl;
  ui.before.src = state.input.url;
  ui.result.hidden = false;
  ui.result.dataset.width = done.width;
  ui.result.dataset.height = done.height;
  ui.result.dataset.ms = Math.round(done.ms);
  const where = state.info.backend === 'webgpu' ? 'WebGPU' : 'the CPU';
  const tiles = done.tiles === 1 ? '1 tile' : `${done.tiles} tiles of ${done.tileSize} px`;
  setState('done', `Done: ${done.width}×${done.height} in ${(done.ms / 1000).toFixed(1)} s on ${where}, ${tiles}.`);
}

ui.go.addEventListener('click', upscale);

ui.cancel.addEventListener('click', () => {
  if (!state.busy || !state.worker) return;
  ui.status.textContent = 'Cancelling…';
  state.worker.postMessage({ type: 'cancel' });
  // A single long tile (e.g. on the CPU) cannot be interrupted: stop the worker instead.
  const worker = state.worker;
  setTimeout(() => {
    if (state.busy && state.worker === worker && state.pending) {
      const pending = state.pending;
      state.pending = null;
      worker.terminate();
      state.worker = null;
      pending.resolve({ type: 'cancelled' });
    }
  }, CANCEL_GRACE_MS);
});

// ---- before/after comparison ----------------------------------------------------------------

function layoutCompare() {
  const fit = !ui.zoom.checked;
  ui.compare.classList.toggle('fit', fit);
  const width = fit ? ui.after.clientWidth : ui.after.naturalWidth;
  ui.after.style.width = fit ? '' : `${ui.after.naturalWidth}px`;
  ui.before.style.width = `${width}px`;
  const at = Number(ui.slider.value) / 100;
  ui.beforeClip.style.width = `${at * width}px`;
  ui.slider.style.width = `${Math.min(width, ui.compare.clientWidth)}px`;
  ui.divider.style.left = `${at * width}px`;
}

ui.slider.addEventListener('input', layoutCompare);
ui.zoom.addEventListener('change', layoutCompare);
ui.after.addEventListener('load', layoutCompare);
// The PNG is encoded in wasm, so results beyond the browser's image limits still download; only
// the preview is lost.
ui.after.addEventListener('error', () => {
  if (!ui.after.src) return;
  ui.compare.hidden = true;
  ui.previewNote.hidden = false;
});
window.addEventListener('resize', layoutCompare);

// ---- start ----------------------------------------------------------------------------------

async function main() {
  const backend = params.get('backend');
  if (backend) ui.backend.value = backend;
  updateButtons();
  try {
    const response = await fetch('models/index.json', { cache: 'no-cache' });
    if (!response.ok) throw new Error(`cannot load models/index.json: HTTP ${response.status}`);
    state.indexText = await response.text();
    state.index = JSON.parse(state.indexText);
    fillScales();
    setState('starting', 'Starting the engine…');
    await startEngine();
    setState('ready', state.input ? 'Ready.' : 'Ready: drop, paste or choose an image.');
  } catch (e) {
    showError(e);
  }
  updateButtons();
}

main();
