// Lupa's page: queues images, shows what each job will do (Smart mode's choice included), fetches
// and caches the model weights, drives the engine worker one file at a time, and offers each
// result (with a before/after comparison) and a zip of all.
//
// Network: this script fetches only same-origin files (models/index.json and the weights); the
// image is read locally and handed to the worker, and the result comes back as bytes shown through
// a blob: URL. The Content-Security-Policy in index.html enforces connect-src 'self'.
//
// URL parameters (for testing and power users): ?backend=auto|webgpu|cpu picks the compute backend,
// ?tile=N forces the tile side in input pixels; ?mode=, ?size=, ?format=, ?denoise= preset the
// controls.

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const CACHE_NAME = 'lupa-models-v1';
const CANCEL_GRACE_MS = 3000;

const ui = {
  drop: $('drop'), file: $('file'), fileInfo: $('file-info'), mode: $('mode'), size: $('size'),
  fitBox: $('fit-box'), fitWidth: $('fit-width'), fitHeight: $('fit-height'), denoise: $('denoise'),
  format: $('format'), qualityBox: $('quality-box'), quality: $('quality'), qualityValue: $('quality-value'),
  crop: $('crop'), model: $('model'), backend: $('backend'), go: $('go'), cancel: $('cancel'),
  modeInfo: $('mode-info'), plan: $('plan'), queueBox: $('queue-box'), queue: $('queue'), zip: $('zip'),
  progress: $('progress'), status: $('status'), engine: $('engine'), result: $('result'),
  zoom: $('zoom'), download: $('download'), compare: $('compare'), after: $('after'),
  before: $('before'), beforeClip: $('before-clip'), divider: $('divider'), slider: $('slider'),
  previewNote: $('preview-note'),
};

const MODES = {
  smart: 'Recognises photo, illustration or text/screenshot and picks the mode, size and clean-up; change any of them to override.',
  precision: 'Reconstructs detail that is really there, without inventing any: faithful, never fake (SPAN).',
  creative: 'Adds plausible texture and sharpness with a GAN: crisper photos, but some detail is invented (Real-ESRGAN general).',
  'maximum-detail': 'Creative with the largest GAN (Real-ESRGAN x4plus): the most detail, many times slower.',
  illustration: 'For drawings, anime and screenshots: clean lines and flat colour (Real-CUGAN), with optional clean-up.',
};

const state = {
  index: null,        // parsed models/index.json
  indexText: '',
  worker: null,
  info: null,         // BackendInfo from the engine
  loaded: new Set(),  // model ids loaded in the current worker
  pending: new Map(), // request id → {resolve, reject}
  nextId: 1,
  items: [],          // queued files: {name, bytes, url, row, status, result}
  selected: null,     // the item shown in the comparison
  busy: false,
  cancelled: false,
  planSeq: 0,
};

function setState(name, text) {
  document.body.dataset.state = name;
  if (text !== undefined) ui.status.textContent = text;
}

// ---- engine worker ------------------------------------------------------------------------

function onWorkerMessage({ data }) {
  if (data.type === 'progress') {
    onProgress(data);
    return;
  }
  if (data.type === 'panic') {
    // The wasm instance is dead; the next request starts a fresh worker.
    state.worker.terminate();
    state.worker = null;
    rejectAll(new Error(`the engine crashed: ${data.message}`));
    return;
  }
  const pending = state.pending.get(data.requestId);
  if (!pending) return;
  state.pending.delete(data.requestId);
  if (data.type === 'error') pending.reject(new Error(data.message));
  else pending.resolve(data);
}

function rejectAll(error) {
  const all = [...state.pending.values()];
  state.pending.clear();
  for (const p of all) p.reject(error);
}

function request(message, transfer = []) {
  return new Promise((resolve, reject) => {
    const id = state.nextId++;
    state.pending.set(id, { resolve, reject });
    state.worker.postMessage({ ...message, requestId: id }, transfer);
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
    rejectAll(new Error(`the engine failed to start: ${e.message || 'worker error'}`));
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

// ---- the job the controls describe ------------------------------------------------------------

function jobRequest(item) {
  const request = { mode: ui.mode.value, format: ui.format.value };
  if (ui.model.value) request.model = ui.model.value;
  if (ui.size.value === 'fit') request.fit = [Number(ui.fitWidth.value), Number(ui.fitHeight.value)];
  else if (ui.size.value !== 'auto') request.scale = Number(ui.size.value);
  else if (ui.mode.value !== 'smart' && !ui.model.value) request.scale = 4;
  if (ui.denoise.value !== 'auto') request.denoise = Number(ui.denoise.value);
  if (['jpeg', 'avif'].includes(ui.format.value)) request.quality = Number(ui.quality.value);
  const crop = ui.crop.value.trim();
  if (crop && item === state.items[0]) {
    const numbers = crop.split(',').map((v) => Number(v.trim()));
    if (numbers.length !== 4 || numbers.some((n) => !Number.isInteger(n) || n < 0)) {
      throw new Error('crop must be four whole numbers: x, y, width, height');
    }
    request.crop = numbers;
  }
  return request;
}

function describeMode() {
  ui.modeInfo.textContent = MODES[ui.mode.value] ?? '';
  ui.fitBox.hidden = ui.size.value !== 'fit';
  ui.qualityBox.hidden = !['jpeg', 'avif'].includes(ui.format.value);
  ui.qualityValue.textContent = ui.quality.value;
  const spec = state.index?.models.find((m) => m.id === ui.model.value);
  if (spec) ui.modeInfo.textContent = `${spec.description} Weights: ${spec.licence.spdx}, ${spec.licence.upstream}.`;
}

// Asks the engine what the first queued file's job would do and shows it (Smart's choice too).
async function showPlan() {
  describeMode();
  const item = state.items[0];
  if (!item || state.busy || !state.worker) return;
  const seq = ++state.planSeq;
  try {
    const input = item.bytes.slice(0);
    const { plan } = await request({ type: 'plan', input, request: jobRequest(item) }, [input]);
    if (seq !== state.planSeq) return;
    ui.plan.textContent = `${plan.explanation} → ${plan.output[0]}×${plan.output[1]} ${plan.extension.toUpperCase()}.`;
    ui.plan.dataset.mode = plan.mode;
    ui.plan.dataset.content = plan.content ?? '';
    ui.plan.dataset.models = plan.models.join(',');
  } catch (e) {
    if (seq === state.planSeq) {
      ui.plan.textContent = `This will not work: ${e.message}`;
      ui.plan.dataset.mode = '';
    }
  }
}

for (const el of [ui.mode, ui.size, ui.fitWidth, ui.fitHeight, ui.denoise, ui.format, ui.quality, ui.crop, ui.model]) {
  el.addEventListener('change', showPlan);
}
ui.quality.addEventListener('input', () => { ui.qualityValue.textContent = ui.quality.value; });

function fillModels() {
  const options = state.index.models.map((m) => new Option(`${m.name} (${m.scale}×)`, m.id));
  ui.model.replaceChildren(new Option("The mode's choice", ''), ...options);
}

// ---- the queue ------------------------------------------------------------------------------

async function addFiles(files) {
  const images = [...files].filter(Boolean);
  if (!images.length) return;
  if (state.busy) return;
  // Finished batches are replaced by the new files; unfinished ones are added to.
  if (state.items.length && state.items.every((i) => i.status === 'done')) clearQueue();
  for (const file of images) {
    const bytes = await file.arrayBuffer();
    const item = { name: file.name || 'pasted-image.png', bytes, url: URL.createObjectURL(file), status: 'queued', result: null };
    item.row = queueRow(item);
    state.items.push(item);
    const probe = new Image();
    probe.onload = () => {
      item.size = [probe.naturalWidth, probe.naturalHeight];
      item.row.querySelector('.item-name').textContent = `${item.name} (${item.size[0]}×${item.size[1]})`;
    };
    probe.src = item.url;
  }
  ui.queueBox.hidden = false;
  const total = state.items.reduce((n, i) => n + i.bytes.byteLength, 0);
  ui.fileInfo.textContent = state.items.length === 1
    ? `${state.items[0].name}, ${(total / 1024).toFixed(0)} KB`
    : `${state.items.length} files, ${(total / 1024).toFixed(0)} KB`;
  updateButtons();
  if (!state.busy) setState('ready', 'Ready: press Upscale.');
  showPlan();
}

function clearQueue() {
  for (const item of state.items) {
    URL.revokeObjectURL(item.url);
    if (item.result) URL.revokeObjectURL(item.result.url);
  }
  state.items = [];
  state.selected = null;
  ui.queue.replaceChildren();
  ui.result.hidden = true;
  ui.zip.hidden = true;
}

function queueRow(item) {
  const row = document.createElement('li');
  row.dataset.state = 'queued';
  row.innerHTML = '<span class="item-name"></span><progress max="1" value="0"></progress><a class="item-download" hidden>Download</a><span class="item-status">Queued</span>';
  row.querySelector('.item-name').textContent = item.name;
  row.addEventListener('click', (e) => {
    if (item.result && !e.target.closest('a')) select(item);
  });
  ui.queue.append(row);
  return row;
}

function setItem(item, status, text) {
  item.status = status;
  item.row.dataset.state = status;
  item.row.querySelector('.item-status').textContent = text;
}

ui.file.addEventListener('change', () => { addFiles(ui.file.files); ui.file.value = ''; });
ui.drop.addEventListener('dragover', (e) => { e.preventDefault(); ui.drop.classList.add('over'); });
ui.drop.addEventListener('dragleave', () => ui.drop.classList.remove('over'));
ui.drop.addEventListener('drop', (e) => {
  e.preventDefault();
  ui.drop.classList.remove('over');
  addFiles(e.dataTransfer.files);
});
document.addEventListener('paste', (e) => {
  const files = [...(e.clipboardData?.files ?? [])].filter((f) => f.type.startsWith('image/'));
  if (files.length) addFiles(files);
});

ui.backend.addEventListener('change', async () => {
  if (state.busy) return;
  setState('starting', 'Restarting the engine…');
  try {
    await startEngine();
    setState('ready', state.items.length ? 'Ready.' : 'Ready: drop, paste or choose images.');
    showPlan();
  } catch (e) {
    showError(e);
  }
});

function updateButtons() {
  ui.go.disabled = state.busy || !state.items.length || !state.index;
  ui.cancel.hidden = !state.busy;
  for (const el of [ui.mode, ui.size, ui.denoise, ui.format, ui.quality, ui.crop, ui.model, ui.backend]) {
    el.disabled = state.busy;
  }
  ui.zip.hidden = state.busy || state.items.filter((i) => i.result).length < 2;
}

function showError(e) {
  setState('error', `Error: ${e.message}`);
}

// ---- upscale --------------------------------------------------------------------------------

let current = null; // the item being processed

function onProgress({ done, total, pass, passes }) {
  ui.progress.max = Math.max(total, 1);
  ui.progress.value = done;
  ui.progress.dataset.done = done;
  ui.progress.dataset.total = total;
  ui.progress.dataset.pass = pass;
  if (!current) return;
  const bar = current.row.querySelector('progress');
  bar.max = Math.max(total * passes, 1);
  bar.value = pass * total + done;
  const of = passes > 1 ? `pass ${pass + 1} of ${passes}, ` : '';
  const text = `Upscaling ${current.name}: ${of}tile ${done} of ${total}`;
  current.row.querySelector('.item-status').textContent = text;
  if (state.busy) ui.status.textContent = text;
}

async function processItem(item) {
  current = item;
  setItem(item, 'busy', 'Planning…');
  const jobRequestFor = jobRequest(item);
  let input = item.bytes.slice(0);
  const planned = await request({ type: 'plan', input, request: jobRequestFor }, [input]);
  if (state.cancelled) return 'cancelled';
  const { plan } = planned;
  for (const id of plan.models) {
    const spec = state.index.models.find((m) => m.id === id);
    await ensureModel(spec);
    if (state.cancelled) return 'cancelled';
  }
  setState('busy', `Upscaling ${item.name}…`);
  setItem(item, 'busy', plan.explanation);
  const tile = Number(params.get('tile') ?? 0);
  input = item.bytes.slice(0);
  const done = await request({ type: 'run', input, request: jobRequestFor, tile }, [input]);
  if (done.type === 'cancelled') return 'cancelled';
  const base = item.name.replace(/\.[^.]*$/, '');
  item.result = {
    url: URL.createObjectURL(new Blob([done.bytes], { type: done.mime })),
    bytes: done.bytes,
    crop: jobRequestFor.crop ?? null,
    filename: `${base}_${done.width}x${done.height}.${done.extension}`,
    ...done,
  };
  const link = item.row.querySelector('.item-download');
  link.href = item.result.url;
  link.download = item.result.filename;
  link.hidden = false;
  item.row.querySelector('progress').value = item.row.querySelector('progress').max;
  const where = state.info.backend === 'webgpu' ? 'WebGPU' : 'the CPU';
  const tiles = done.tiles === 1 ? '1 tile' : `${done.tiles} tiles`;
  setItem(item, 'done', `Done: ${done.width}×${done.height} in ${(done.ms / 1000).toFixed(1)} s on ${where}, ${tiles}. ${done.explanation}`);
  return 'done';
}

async function upscaleAll() {
  // Files not done yet; when all are done, all of them again (with the current settings).
  let todo = state.items.filter((i) => i.status !== 'done');
  if (!todo.length) todo = [...state.items];
  if (!todo.length) return;
  state.busy = true;
  state.cancelled = false;
  updateButtons();
  ui.progress.hidden = false;
  ui.progress.value = 0;
  let failed = 0;
  let finished = 0;
  try {
    await ensureEngine();
    for (const item of todo) {
      if (state.cancelled) break;
      try {
        const outcome = await processItem(item);
        if (outcome === 'cancelled') {
          setItem(item, 'cancelled', 'Cancelled.');
          state.cancelled = true;
          break;
        }
        finished += 1;
        if (!state.selected || state.selected.status !== 'done' || todo.length === 1) select(item);
      } catch (e) {
        failed += 1;
        setItem(item, 'error', `Error: ${e.message}`);
        if (!state.worker) await startEngine(); // the engine crashed: a fresh one for the rest
      }
    }
    const last = state.items.at(-1);
    if (state.cancelled) setState('cancelled', 'Cancelled.');
    else if (failed && todo.length === 1) setState('error', last.row.querySelector('.item-status').textContent);
    else if (failed) setState('error', `${failed} of ${todo.length} files failed; ${finished} done.`);
    else if (todo.length === 1) setState('done', todo[0].row.querySelector('.item-status').textContent);
    else setState('done', `All ${todo.length} files done.`);
  } catch (e) {
    showError(e);
  } finally {
    current = null;
    state.busy = false;
    ui.progress.hidden = true;
    updateButtons();
  }
}

function select(item) {
  state.selected = item;
  for (const i of state.items) i.row.classList.toggle('selected', i === item);
  showResult(item);
}

function showResult(item) {
  const result = item.result;
  ui.download.href = result.url;
  ui.download.download = result.filename;
  ui.download.textContent = `Download ${result.extension.toUpperCase()}`;
  ui.previewNote.hidden = true;
  ui.compare.hidden = false;
  ui.after.src = result.url;
  ui.before.src = item.url;
  ui.result.hidden = false;
  ui.result.dataset.width = result.width;
  ui.result.dataset.height = result.height;
  ui.result.dataset.ms = Math.round(result.ms);
}

ui.go.addEventListener('click', upscaleAll);

ui.zip.addEventListener('click', async () => {
  const done = state.items.filter((i) => i.result);
  if (done.length < 2 || state.busy) return;
  try {
    const files = done.map((i) => i.result.bytes.slice(0));
    const { zip } = await request({ type: 'zip', names: done.map((i) => i.result.filename), files }, files);
    const link = document.createElement('a');
    link.href = URL.createObjectURL(new Blob([zip], { type: 'application/zip' }));
    link.download = 'lupa-upscaled.zip';
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  } catch (e) {
    showError(e);
  }
});

ui.cancel.addEventListener('click', () => {
  if (!state.busy || !state.worker) return;
  state.cancelled = true;
  ui.status.textContent = 'Cancelling…';
  state.worker.postMessage({ type: 'cancel' });
  // A single long tile (e.g. on the CPU) cannot be interrupted: stop the worker instead.
  const worker = state.worker;
  setTimeout(() => {
    if (state.busy && state.worker === worker && state.pending.size) {
      const all = [...state.pending.values()];
      state.pending.clear();
      worker.terminate();
      state.worker = null;
      state.loaded.clear();
      for (const p of all) p.resolve({ type: 'cancelled' });
    }
  }, CANCEL_GRACE_MS);
});

// ---- before/after comparison ----------------------------------------------------------------

function layoutCompare() {
  const fit = !ui.zoom.checked;
  ui.compare.classList.toggle('fit', fit);
  const width = fit ? ui.after.clientWidth : ui.after.naturalWidth;
  ui.after.style.width = fit ? '' : `${ui.after.naturalWidth}px`;
  // The original is drawn so that the region the result came from (the crop, or all of it)
  // lies exactly under the result.
  const [x, y, w] = state.selected?.result?.crop ?? [0, 0, ui.before.naturalWidth];
  const scale = width / Math.max(w, 1);
  ui.before.style.width = `${ui.before.naturalWidth * scale}px`;
  ui.before.style.marginLeft = `${-x * scale}px`;
  ui.before.style.marginTop = `${-y * scale}px`;
  const at = Number(ui.slider.value) / 100;
  ui.beforeClip.style.width = `${at * width}px`;
  ui.slider.style.width = `${Math.min(width, ui.compare.clientWidth)}px`;
  ui.divider.style.left = `${at * width}px`;
}

ui.slider.addEventListener('input', layoutCompare);
ui.zoom.addEventListener('change', layoutCompare);
ui.after.addEventListener('load', layoutCompare);
ui.before.addEventListener('load', layoutCompare);
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
    fillModels();
    for (const [key, el] of [['mode', ui.mode], ['size', ui.size], ['format', ui.format], ['denoise', ui.denoise]]) {
      if (params.get(key)) el.value = params.get(key);
    }
    describeMode();
    setState('starting', 'Starting the engine…');
    await startEngine();
    setState('ready', state.items.length ? 'Ready.' : 'Ready: drop, paste or choose images.');
    showPlan();
  } catch (e) {
    showError(e);
  }
  updateButtons();
}

main();
