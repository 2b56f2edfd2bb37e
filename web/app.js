// Lupa's page: the controls (built from the engine's catalogue of modes, sizes, clean-up levels and
// formats), the plan line that says what the first queued file's job will do (Smart mode's choice
// included), Upscale and Cancel, the status line, and the wiring between the modules:
//   lupa.js     the engine bridge (worker, weights, errors)
//   queue.js    the rows of queued files
//   compare.js  the before/after comparison of the selected result
//   crop.js     the crop editor of one queued file (each file has its own crop)
//   install.js  the service worker (offline, updates), shared and opened files
//
// Network: only same-origin files are fetched (models/index.json and the weights, by lupa.js); the
// image is read locally and handed to the worker, and the result comes back as bytes shown through
// a blob: URL. The Content-Security-Policy in index.html enforces connect-src 'self'.
//
// Errors: whatever is shown as an error carries its kind (lupa.d.ts ErrorKind) in a data attribute:
// body[data-error-kind] while the status line shows one, #plan[data-error-kind] when the plan says
// the job will not work, li[data-error-kind] on a failed (or cancelled) queue row.
//
// URL parameters (for testing and power users): ?backend=auto|webgpu|cpu picks the compute backend,
// ?tile=N forces the tile side in input pixels; ?mode=, ?size=, ?format=, ?denoise= preset the
// controls. They win over the settings remembered from an earlier visit (mode, size, fit box,
// clean-up, format, quality, backend: localStorage `lupa-settings-v1`; "Reset settings" forgets them).

import { LupaError, Upscaler, toLupaError } from './lupa.js';
import { createCompare } from './compare.js';
import { createQueue } from './queue.js';
import { createCropper } from './crop.js';
import { onLaunchedFiles, registerServiceWorker, takeSharedFiles } from './install.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const ui = {
  drop: $('drop'), file: $('file'), fileInfo: $('file-info'), mode: $('mode'), size: $('size'),
  fitBox: $('fit-box'), fitWidth: $('fit-width'), fitHeight: $('fit-height'), denoise: $('denoise'),
  format: $('format'), qualityBox: $('quality-box'), quality: $('quality'), qualityValue: $('quality-value'),
  ensembleBox: $('ensemble-box'), ensemble: $('ensemble'), ensembleLabel: $('ensemble-label'),
  ensembleHint: $('ensemble-hint'), model: $('model'), backend: $('backend'), eta: $('eta'),
  update: $('update'), reload: $('reload'), resetSettings: $('reset-settings'), go: $('go'), cancel: $('cancel'),
  modeInfo: $('mode-info'), plan: $('plan'), queueBox: $('queue-box'), queue: $('queue'), zip: $('zip'), progress: $('progress'), status: $('status'), engine: $('engine'),
};

const compare = createCompare({
  result: $('result'), compare: $('compare'), after: $('after'), before: $('before'),
  beforeClip: $('before-clip'), divider: $('divider'), slider: $('slider'),
  download: $('download'), previewNote: $('preview-note'),
});
const queue = createQueue(ui.queue, { onSelect: select, onCrop: editCrop, onRetry: retry, onRemove: remove });
const cropper = createCropper($('crop-box'), { onChange: cropChanged });

/** @type {Upscaler | null} */
let upscaler = null;
/** @type {import('./lupa.d.ts').Catalogue | null} */
let catalogue = null;
let busy = false;
let starting = false; // the engine is starting or restarting: Upscale waits, nothing says Ready
let batch = null;     // the running batch's AbortController (Cancel aborts it)
let planning = null;  // the plan line's AbortController: a newer plan replaces an older one
let planSeq = 0;

function setState(name, text, errorKind) {
  document.body.dataset.state = name;
  if (text !== undefined) ui.status.textContent = text;
  if (name === 'error') document.body.dataset.errorKind = errorKind ?? 'backend';
  else delete document.body.dataset.errorKind;
}

function showError(e) {
  const error = toLupaError(e);
  setState('error', `Error: ${error.message}`, error.kind);
}

function showEngine() {
  const info = upscaler?.backend;
  if (!info) return;
  ui.engine.textContent = `Engine: ${info.backend === 'webgpu' ? 'WebGPU' : 'CPU'} (${info.adapter}). ${info.reason}.`;
  document.body.dataset.backend = info.backend;
}

// ---- the controls, from the engine's catalogue ---------------------------------------------

function fillControls(index) {
  const { modes, defaultMode, scales, denoise, formats, ensemble } = catalogue;
  ui.mode.replaceChildren(...modes.map((m) => new Option(m.label, m.id)));
  ui.mode.value = defaultMode;
  ui.size.replaceChildren(new Option('Auto', 'auto'), ...scales.map((s) => new Option(`${s}×`, String(s))),
    new Option('Fit to…', 'fit'));
  ui.denoise.replaceChildren(new Option('Auto', 'auto'), ...denoise.map((d) => new Option(d.label, String(d.level))));
  ui.format.replaceChildren(...formats.map((f) => new Option(f.label, f.id)));
  ui.ensembleLabel.textContent = ensemble.label;
  ui.ensembleHint.textContent = ensemble.description;
  ui.ensembleBox.title = ensemble.description;
  ui.model.replaceChildren(new Option("The mode's choice", ''),
    ...index.models.map((m) => new Option(`${m.name} (${m.scale}×)`, m.id)));
}

/** ?mode= ?size= ?format= ?denoise=, where they name an option. */
function applyPresets() {
  for (const [key, el] of [['mode', ui.mode], ['size', ui.size], ['format', ui.format], ['denoise', ui.denoise]]) {
    const value = params.get(key);
    if (value && [...el.options].some((o) => o.value === value)) el.value = value;
  }
}

// ---- settings remembered between visits (localStorage; the URL's presets win) ---------------

const SETTINGS_KEY = 'lupa-settings-v1';
const remembered = () => [['mode', ui.mode], ['size', ui.size], ['fitWidth', ui.fitWidth],
  ['fitHeight', ui.fitHeight], ['denoise', ui.denoise], ['format', ui.format], ['quality', ui.quality],
  ['backend', ui.backend]];

/** The settings saved by an earlier visit ({} where there are none or storage is blocked). */
function savedSettings() {
  try {
    const saved = JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? '{}');
    return saved && typeof saved === 'object' ? saved : {};
  } catch {
    return {};
  }
}

function saveSettings() {
  const settings = Object.fromEntries(remembered().map(([key, el]) => [key, el.value]));
  try {
    localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
  } catch {
    // storage blocked or full: the settings last for this visit only
  }
}

/** Puts the saved settings back on the controls (values a control no longer offers are skipped);
 * the quality only with the format it was chosen for. */
function restoreSettings(saved) {
  for (const [key, el] of remembered()) {
    const value = saved[key];
    if (typeof value !== 'string' || key === 'quality' || key === 'backend') continue;
    if (el.tagName !== 'SELECT' || [...el.options].some((o) => o.value === value)) el.value = value;
  }
}

const chosenMode = () => catalogue?.modes.find((m) => m.id === ui.mode.value);
const chosenFormat = () => catalogue?.formats.find((f) => f.id === ui.format.value);

/** The quality slider starts at the chosen format's default. */
function resetQuality() {
  const quality = chosenFormat()?.quality;
  if (quality != null) ui.quality.value = String(quality);
  ui.qualityValue.textContent = ui.quality.value;
}

function describeMode() {
  const mode = chosenMode();
  ui.modeInfo.textContent = mode?.description ?? '';
  ui.fitBox.hidden = ui.size.value !== 'fit';
  ui.qualityBox.hidden = chosenFormat()?.quality == null;
  ui.qualityValue.textContent = ui.quality.value;
  ui.ensembleBox.hidden = !mode?.ensemble;
  const spec = upscaler?.index.models.find((m) => m.id === ui.model.value);
  if (spec) ui.modeInfo.textContent = `${spec.description} Weights: ${spec.licence.spdx}, ${spec.licence.upstream}.`;
}

/** The job the controls describe, for `item`. Size "Auto" leaves the size to Smart or the engine. */
function jobRequest(item) {
  const request = { mode: ui.mode.value, format: ui.format.value };
  if (ui.model.value) request.model = ui.model.value;
  if (ui.size.value === 'fit') request.fit = [Number(ui.fitWidth.value), Number(ui.fitHeight.value)];
  else if (ui.size.value !== 'auto') request.scale = Number(ui.size.value);
  if (ui.denoise.value !== 'auto') request.denoise = Number(ui.denoise.value);
  if (chosenFormat()?.quality != null) request.quality = Number(ui.quality.value);
  if (chosenMode()?.ensemble && ui.ensemble.checked) request.ensemble = true;
  if (item.crop) request.crop = [...item.crop];
  return request;
}

/** The file the plan line is about: the one being cropped, else the next to run, else the first. */
function planned() {
  return cropper.item ?? queue.items.find((i) => i.status !== 'done') ?? queue.items[0];
}

/** Asks the engine what the planned file's job would do and shows it (Smart's choice too). */
async function showPlan() {
  describeMode();
  const item = planned();
  if (!item) {
    ui.plan.textContent = ''; // nothing queued: no plan to show
    for (const key of ['mode', 'content', 'models', 'errorKind']) delete ui.plan.dataset[key];
    return;
  }
  if (busy || !upscaler) return;
  planning?.abort();
  planning = new AbortController();
  const seq = ++planSeq;
  try {
    const plan = await upscaler.plan(item.bytes, jobRequest(item), { signal: planning.signal });
    if (seq === planSeq) showPlanLine(plan);
  } catch (e) {
    const error = toLupaError(e);
    if (seq === planSeq && error.kind !== 'cancelled') showPlanError(error);
  }
}

function showPlanLine(plan) {
  ui.plan.textContent = `${plan.explanation} → ${plan.output[0]}×${plan.output[1]} ${plan.extension.toUpperCase()}.`;
  ui.plan.dataset.mode = plan.mode;
  ui.plan.dataset.content = plan.content ?? '';
  ui.plan.dataset.models = plan.models.join(',');
  delete ui.plan.dataset.errorKind;
}

function showPlanError(error) {
  ui.plan.textContent = `This will not work: ${error.message}`;
  ui.plan.dataset.mode = '';
  ui.plan.dataset.content = '';
  ui.plan.dataset.models = '';
  ui.plan.dataset.errorKind = error.kind;
}

ui.format.addEventListener('change', resetQuality); // before showPlan, which reads the quality
for (const el of [ui.mode, ui.size, ui.fitWidth, ui.fitHeight, ui.denoise, ui.format, ui.quality, ui.ensemble,
  ui.model]) {
  el.addEventListener('change', showPlan);
}
ui.quality.addEventListener('input', () => { ui.qualityValue.textContent = ui.quality.value; });
for (const [, el] of remembered()) el.addEventListener('change', saveSettings);

// Reset: the catalogue's defaults, the saved settings forgotten (queued files stay).
ui.resetSettings.addEventListener('click', () => {
  try {
    localStorage.removeItem(SETTINGS_KEY);
  } catch {
    // nothing was saved
  }
  if (!catalogue || !upscaler) return;
  fillControls(upscaler.index); // the selects as a first start makes them
  for (const el of [ui.fitWidth, ui.fitHeight, ui.quality]) el.value = el.defaultValue; // the page's
  resetQuality();
  describeMode();
  showPlan();
  if (ui.backend.value !== 'auto') {
    ui.backend.value = 'auto';
    ui.backend.dispatchEvent(new Event('change')); // restarts the engine
  }
});

function updateButtons() {
  ui.go.disabled = busy || starting || !queue.items.length || !upscaler;
  ui.cancel.hidden = !busy;
  for (const el of [ui.mode, ui.size, ui.fitWidth, ui.fitHeight, ui.denoise, ui.format, ui.quality, ui.ensemble,
    ui.model, ui.backend]) {
    el.disabled = busy || (starting && el === ui.backend);
  }
  ui.zip.hidden = busy || queue.items.filter((i) => i.result).length < 2;
}

// ---- input ----------------------------------------------------------------------------------

/** Queues `files`; while a batch runs they join it (it runs every queued file before it ends). */
async function addFiles(files) {
  const images = [...files].filter(Boolean);
  if (!images.length) return;
  // Finished batches are replaced by the new files; unfinished ones are added to.
  if (!busy && queue.items.length && queue.items.every((i) => i.status === 'done')) {
    queue.clear();
    compare.hide();
    cropper.close();
  }
  let unreadable = null;
  for (const file of images) {
    try {
      await queue.add(file);
    } catch (e) {
      unreadable = new LupaError('bad-input', `cannot read ${file.name || 'the pasted image'}: ${e.message}`);
    }
  }
  showQueue();
  if (unreadable) showError(unreadable);
  else if (busy) return; // the batch's status line stays
  else if (upscaler && !starting) setState('ready', 'Ready: press Upscale.');
  showPlan();
}

/** The queue box, the files line and the buttons, after files came or went. */
function showQueue() {
  ui.queueBox.hidden = !queue.items.length;
  const total = queue.items.reduce((n, i) => n + i.bytes.byteLength, 0);
  ui.fileInfo.textContent = queue.items.length === 1
    ? `${queue.items[0].name}, ${(total / 1024).toFixed(0)} KB`
    : queue.items.length ? `${queue.items.length} files, ${(total / 1024).toFixed(0)} KB` : '';
  updateButtons();
}

/** A failed or cancelled row runs again: at once, or after the running batch's other files. */
function retry(item) {
  queue.setState(item, 'queued', 'Queued');
  if (!busy) upscaleAll();
}

/** Removes a row (not the one running: Cancel stops that). */
function remove(item) {
  if (item.status === 'busy') return;
  if (cropper.item === item) cropper.close();
  if (queue.selected === item) compare.hide();
  queue.remove(item);
  showQueue();
  if (!busy && !queue.items.length && upscaler && !starting) setState('ready', 'Ready: drop, paste or choose images.');
  showPlan();
}

function editCrop(item) {
  cropper.edit(item);
  showPlan();
}

// While a crop is dragged the plan line follows, one plan at a time (the engine plans in ms).
let cropPlan = null;
function cropChanged(item) {
  queue.setCrop(item);
  // A finished file with a new crop runs again on the next Upscale (its result stays till then).
  if (item.status === 'done') queue.setState(item, 'queued', 'Queued again: the crop changed.');
  if (cropPlan) return;
  cropPlan = requestAnimationFrame(() => {
    cropPlan = null;
    showPlan();
  });
}

ui.file.addEventListener('change', () => { addFiles(ui.file.files); ui.file.value = ''; });
ui.drop.addEventListener('dragover', (e) => { e.preventDefault(); ui.drop.classList.add('over'); });
ui.drop.addEventListener('dragleave', () => ui.drop.classList.remove('over'));
ui.drop.addEventListener('drop', (e) => {
  e.preventDefault();
  ui.drop.classList.remove('over');
  addFiles(e.dataTransfer.files);
});
// The drop zone from the keyboard: Enter or Space opens the file chooser.
ui.drop.addEventListener('keydown', (e) => {
  if ((e.key === 'Enter' || e.key === ' ') && e.target === ui.drop) {
    e.preventDefault();
    ui.file.click();
  }
});
document.addEventListener('paste', (e) => {
  const files = [...(e.clipboardData?.files ?? [])].filter((f) => f.type.startsWith('image/'));
  if (files.length) addFiles(files);
});

// ---- upscale --------------------------------------------------------------------------------

// The time left: from the tiles done so far, and before the first tile from the last job's rate.

/** Seconds per output megapixel measured by the jobs done so far, per backend and models. */
const rates = new Map();
const rateKey = (models) => `${upscaler?.backend?.backend}|${models.join(',')}`;

/** "about 12 s left", "about 3 min left". */
function timeLeft(seconds) {
  if (seconds < 1) return 'under a second left';
  if (seconds < 90) return `about ${Math.round(seconds)} s left`;
  return `about ${Math.round(seconds / 60)} min left`;
}

function showEta(item, text) {
  ui.eta.textContent = text;
  item.eta = text;
}

function onProgress(item, event) {
  if (batch?.signal.aborted) return; // "Cancelling…" stays
  if (event.phase === 'planned') {
    item.clock = null; // this job's first tile report: {at, units}
    queue.setStatus(item, event.plan.explanation);
    if (item === planned()) {
      planSeq += 1; // the plan of what runs replaces any the controls asked for
      showPlanLine(event.plan);
    }
    // Before its first tile, a file's time left comes from the rate of the last such job.
    const [w, h] = event.plan.output;
    const rate = rates.get(rateKey(event.plan.models));
    showEta(item, rate ? `${timeLeft(rate * (w * h) / 1e6)} (from the last job)` : '');
  } else if (event.phase === 'weights') {
    const { model, from } = event;
    setState('loading', from === 'cache'
      ? `Loading ${model.name} from the cache…`
      : `Downloading ${model.name} (${(model.weights.bytes / 1e6).toFixed(1)} MB, once)…`);
  } else if (event.phase === 'tiles') {
    const { done, total, pass, passes } = event;
    ui.progress.max = Math.max(total, 1);
    ui.progress.value = done;
    ui.progress.dataset.done = done;
    ui.progress.dataset.total = total;
    ui.progress.dataset.pass = pass;
    const units = pass * total + done;
    const all = total * passes;
    queue.setProgress(item, units, all);
    // The clock starts at the first tile report (the weights are loaded by then).
    const now = performance.now();
    item.clock ??= { at: now, units };
    if (units > item.clock.units) {
      const perUnit = (now - item.clock.at) / 1000 / (units - item.clock.units);
      showEta(item, timeLeft(perUnit * (all - units)));
    }
    const of = passes > 1 ? `pass ${pass + 1} of ${passes}, ` : '';
    const text = `Upscaling ${item.name}: ${of}tile ${done} of ${total}`;
    queue.setStatus(item, item.eta ? `${text}, ${item.eta}` : text);
    setState('busy', text);
  }
}

async function processItem(item, signal) {
  queue.setState(item, 'busy', 'Planning…');
  setState('busy', `Upscaling ${item.name}…`);
  showEta(item, '');
  const request = jobRequest(item);
  const tile = Number(params.get('tile') ?? 0);
  const done = await upscaler.upscale(item.bytes, request, { signal, tile, onProgress: (e) => onProgress(item, e) });
  const stem = item.name.replace(/\.[^.]*$/, '');
  queue.setResult(item, {
    ...done,
    url: URL.createObjectURL(done.blob),
    crop: request.crop ?? null,
    filename: `${stem}_${done.width}x${done.height}.${done.extension}`,
  });
  showEta(item, '');
  const megapixels = (done.width * done.height) / 1e6;
  const perMegapixel = done.ms / 1000 / megapixels;
  rates.set(rateKey(done.plan.models), perMegapixel);
  // Workers share tiles: a one-tile job ran on one.
  const cpu = done.engines > 1 && done.tiles > 1 ? `the CPU (${done.engines} workers)` : 'the CPU';
  const gpu = done.engineFailed ? 'WebGPU, then the CPU' : 'WebGPU'; // the explanation says why
  const where = upscaler.backend.backend === 'webgpu' ? gpu : cpu;
  const tiles = done.tiles === 1 ? '1 tile' : `${done.tiles} tiles`;
  const rate = perMegapixel >= 0.1 ? perMegapixel.toFixed(1) : perMegapixel.toFixed(2);
  queue.setState(item, 'done', `Done: ${done.width}×${done.height} in ${(done.ms / 1000).toFixed(1)} s `
    + `(${rate} s per output megapixel) on ${where}, ${tiles}. ${done.explanation}`);
}

/** Runs every queued file, in order, files added while it runs too; when all are done, all of
 * them again (with the current settings). A failed file says why and the rest go on. */
async function upscaleAll() {
  if (busy || !upscaler) return;
  const waiting = queue.items.filter((i) => i.status !== 'done');
  for (const item of waiting.length ? waiting : queue.items) {
    if (item.status !== 'queued') queue.setState(item, 'queued', 'Queued');
  }
  if (!queue.items.length) return;
  busy = true;
  batch = new AbortController();
  const { signal } = batch;
  updateButtons();
  ui.progress.hidden = false;
  ui.progress.value = 0;
  for (const key of ['done', 'total', 'pass']) delete ui.progress.dataset[key];
  const failures = [];
  const ran = [];
  let finished = 0;
  let cancelled = false;
  try {
    for (let item; (item = queue.items.find((i) => i.status === 'queued'));) {
      if (signal.aborted) {
        cancelled = true;
        break;
      }
      ran.push(item);
      try {
        if (cropper.item === item) cropper.close();
        await processItem(item, signal);
        finished += 1;
        const shown = queue.selected;
        if (!shown || shown === item || !shown.result || ran.length === 1) select(item);
      } catch (e) {
        const error = toLupaError(e);
        if (error.kind === 'cancelled') {
          queue.setState(item, 'cancelled', 'Cancelled.', 'cancelled');
          cancelled = true;
          break;
        }
        failures.push(error);
        queue.setState(item, 'error', `Error: ${error.message}`, error.kind);
      }
    }
    const [first] = failures;
    if (cancelled) setState('cancelled', 'Cancelled.');
    else if (first && ran.length === 1) setState('error', `Error: ${first.message}`, first.kind);
    else if (first) setState('error', `${failures.length} of ${ran.length} files failed; ${finished} done.`, first.kind);
    else if (ran.length === 1) setState('done', ran[0].row.querySelector('.item-status').textContent);
    else setState('done', `All ${ran.length} files done.`);
  } catch (e) {
    showError(e);
  } finally {
    busy = false;
    batch = null;
    ui.progress.hidden = true;
    ui.eta.textContent = '';
    showEngine(); // a crashed engine is started again, perhaps differently
    updateButtons();
  }
}

function select(item) {
  queue.select(item);
  compare.show(item);
}

ui.go.addEventListener('click', upscaleAll);

ui.cancel.addEventListener('click', () => {
  if (!batch || batch.signal.aborted) return;
  ui.status.textContent = 'Cancelling…';
  batch.abort();
});

ui.zip.addEventListener('click', async () => {
  const done = queue.items.filter((i) => i.result);
  if (done.length < 2 || busy) return;
  try {
    const blob = await upscaler.zip(done.map((i) => ({ name: i.result.filename, bytes: i.result.bytes })));
    const link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    link.download = 'lupa-upscaled.zip';
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  } catch (e) {
    showError(e);
  }
});

// ---- the engine -----------------------------------------------------------------------------

/** Starts the engine on `backend` and builds the controls from its catalogue. */
async function start(backend) {
  setState('starting', 'Starting the engine…');
  // ?workers=N sets how many CPU engines share a job (default: one per core).
  const workers = params.has('workers') ? Number(params.get('workers')) : 'auto';
  const created = await Upscaler.create({ backend, workers });
  try {
    catalogue = created.catalogue;
    fillControls(created.index);
  } catch (e) {
    created.dispose();
    catalogue = null;
    throw new LupaError('backend', `the engine's catalogue cannot be read: ${e.message}`);
  }
  upscaler = created;
  // On a first visit the CPU engine starts first and the WebGPU engine takes over when loaded.
  upscaler.addEventListener('backendchange', showEngine);
  const saved = savedSettings();
  restoreSettings(saved);
  applyPresets();
  resetQuality();
  if (saved.format === ui.format.value && typeof saved.quality === 'string') ui.quality.value = saved.quality;
  describeMode();
  showEngine();
}

function ready() {
  setState('ready', queue.items.length ? 'Ready.' : 'Ready: drop, paste or choose images.');
  updateButtons();
  showPlan();
}

/** Runs `action` (starting or restarting the engine) with Upscale held until it is done. */
async function whileStarting(action) {
  starting = true;
  updateButtons();
  try {
    await action();
    starting = false;
    ready();
  } catch (e) {
    starting = false;
    showError(e);
    updateButtons();
  }
}

ui.backend.addEventListener('change', () => {
  if (busy || starting) return;
  whileStarting(async () => {
    if (!upscaler) return start(ui.backend.value); // the first start failed: try this backend
    setState('starting', 'Restarting the engine…');
    await upscaler.restart(ui.backend.value);
    showEngine();
  });
});

// ---- the installed app: offline, updates, files opened or shared ---------------------------

/** Offers the new version: a reload, once no batch runs (results on the page would be lost: the
 * button asks first). */
function offerUpdate(reload) {
  ui.update.hidden = false;
  ui.reload.addEventListener('click', () => {
    if (busy) return;
    const unsaved = queue.items.some((i) => i.result);
    if (unsaved && !confirm('Reloading clears the results on this page. Reload now?')) return;
    ui.reload.disabled = true;
    reload();
  });
}

async function main() {
  const savedBackend = savedSettings().backend;
  const backend = params.get('backend') ?? (['auto', 'webgpu', 'cpu'].includes(savedBackend) ? savedBackend : 'auto');
  ui.backend.value = backend;
  onLaunchedFiles(addFiles);
  takeSharedFiles(params).then((files) => files.length && addFiles(files), () => {});
  await whileStarting(() => start(backend));
  // After the engine is up, so that precaching the app does not slow the first visit's start.
  registerServiceWorker({ onUpdate: offerUpdate });
}

main();
