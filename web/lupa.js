// Lupa's engine bridge and public JavaScript API: an `Upscaler` drives the wasm engine in a module
// worker (worker.js, protocol at its top) and fetches and caches model weights (weights.js). On
// the CPU backend, helper workers (pool.js) run tiles of each job beside it, one per core.
//
//   const upscaler = await Upscaler.create({ backend: 'auto', workers: 'auto' });
//   const plan = await upscaler.plan(file, { mode: 'smart', format: 'png' });
//   const { blob, width, height } = await upscaler.upscale(file, request, { signal, onProgress });
//
// - One queue: messages to the worker go one at a time, so a plan asked for during a run waits.
// - Every call takes an AbortSignal. Aborted before its turn: it rejects without sending. Aborted
//   during a run: the engine is told to stop before its next tile, and a worker still busy after
//   CANCEL_GRACE_MS (one long tile cannot be interrupted) is terminated. Aborted during anything
//   else: the call rejects at once and the worker's late reply is ignored. A cancelled call always
//   rejects, with kind 'cancelled'.
// - A worker that dies (panic, error event) or is replaced (restart, dispose) settles what it was
//   doing; the next call starts a fresh one (init again, loaded models forgotten).
// - Every rejection is a LupaError (errors.js) with a `kind`; `name` is 'AbortError' for
//   'cancelled' (the DOM's convention), 'LupaError' otherwise.
// - Two engines (worker.js loads one): the CPU engine alone (lupa-web-cpu, 1.2 MB gzipped) and
//   the full one with WebGPU (lupa-web, 3.5 MB). On 'auto' with a WebGPU adapter and the full
//   engine not yet in Cache Storage (a first visit), the CPU engine starts first, so a job can
//   start as soon as it is up, and the full engine starts beside it in a second worker; once it
//   is up on WebGPU it takes over between calls (a 'backendchange' event). Later starts on
//   'auto' go straight to the full engine.
// Types: lupa.d.ts.

import { LupaError, cancelled, toLupaError } from './errors.js';
import { FLOOR_GMACS, HANG_FACTOR, HelperPool, MIN_HANG_MS, engineCount, engineWorker, stuckAfter } from './pool.js';
import { loadWeights } from './weights.js';
import {
  BROWSER_DECODED, LOSSY_WEBP, browserDecoded, encodeLossyWebp, engineRequest, hasCanvasCodecs, lossyQuality,
} from './browser-codecs.js';

export { ERROR_KINDS, LupaError, cancelled, toLupaError } from './errors.js';

/** @typedef {import('./lupa.d.ts').BackendInfo} BackendInfo */
/** @typedef {import('./lupa.d.ts').Catalogue} Catalogue */
/** @typedef {import('./lupa.d.ts').ModelIndex} ModelIndex */
/** @typedef {import('./lupa.d.ts').ModelSpec} ModelSpec */
/** @typedef {import('./lupa.d.ts').JobRequest} JobRequest */
/** @typedef {import('./lupa.d.ts').JobPlan} JobPlan */
/** @typedef {import('./lupa.d.ts').UpscaleResult} UpscaleResult */
/** @typedef {import('./lupa.d.ts').ProgressEvent} ProgressEvent */
/** @typedef {import('./lupa.d.ts').Input} Input */

/** How long a run may go on after a cancel before its worker is terminated. */
export const CANCEL_GRACE_MS = 3000;

/**
 * A fresh ArrayBuffer with the bytes of `input` (the caller's data is never transferred away).
 * @param {Input} input
 * @returns {Promise<ArrayBuffer>}
 */
async function toBuffer(input) {
  if (input instanceof ArrayBuffer) return input.slice(0);
  if (ArrayBuffer.isView(input)) {
    return input.buffer.slice(input.byteOffset, input.byteOffset + input.byteLength);
  }
  if (input instanceof Blob) {
    try {
      return await input.arrayBuffer();
    } catch (e) {
      throw new LupaError('bad-input', `cannot read the file: ${e.message}`, { cause: e });
    }
  }
  throw new LupaError('bad-input', 'the input must be a Blob, an ArrayBuffer or a Uint8Array');
}

/** The gist of an engine crash's message: the panic's first line after where it happened, e.g.
 * "wgpu error: Out of Memory". */
function crashReason(message) {
  const text = message.replace(/^the engine crashed: /, '').replace(/^panicked at [^\n]*:\n/, '');
  return text.split('\n')[0].trim() || 'no reason given';
}

export class Upscaler extends EventTarget {
  /** @type {BackendInfo} which backend runs, on what and why (updated by every engine start) */
  backend;
  /** @type {Catalogue} the modes, sizes, clean-up levels and formats the engine offers */
  catalogue;
  /** @type {ModelIndex} the parsed models/index.json */
  index;

  #base;           // URL of the folder with worker.js and models/
  #indexText;      // the text of models/index.json, sent to every new engine
  #backendChoice;  // 'auto' | 'webgpu' | 'cpu'
  #workers;        // 'auto' | number: engines on the CPU backend (see pool.js engineCount)
  #convolution = 'lupa'; // 'lupa' | 'burn' (see create)
  #pool = null;    // the HelperPool of #worker on the CPU backend with more than one engine
  #weights = new Map(); // id → a copy of the weights #worker holds, for the pool's helpers
  #worker = null;  // the current Worker, or null: the next call starts one
  #loaded = new Set();   // ids of the models loaded in #worker
  #inflight = null;      // the message #worker is working on (see #post)
  #tail = Promise.resolve(); // the end of the queue
  #epoch = 0;      // bumped by restart and dispose: calls queued before then are refused
  #nextId = 1;
  #disposed = false;
  #failed = null;  // a worker whose GPU failed during its last job: replaced before the next call
  #spare = null;   // the full engine starting beside the CPU engine: {worker, ready: {info, catalogue} | null}
  #fullEngine = false; // the full engine has run here: 'auto' starts it at once from now on
  #slowestGmacs = 0;   // the slowest tile rate (GMAC/s) #worker's engine has shown; 0: none yet

  /**
   * Fetches `${base}models/index.json`, starts the engine worker `${base}worker.js` on `backend`
   * and waits for it. Rejects with kind 'registry' (index.json unreadable) or the engine's error
   * (e.g. 'backend' for WebGPU asked for and missing). `workers`: how many engines share each
   * job's tiles on the CPU backend ('auto': one per core, within a memory budget; 1: no helpers);
   * WebGPU always runs one. `convolution`, for benchmarks: 'burn' runs Burn's own convolution
   * in the engine instead of Lupa's fused kernels (the default, 'lupa'); the results agree.
   * @param {{ base?: string | URL, backend?: 'auto' | 'webgpu' | 'cpu', workers?: 'auto' | number,
   *           convolution?: 'lupa' | 'burn' }} [options]
   * @returns {Promise<Upscaler>}
   */
  static async create({
    base = new URL('./', import.meta.url), backend = 'auto', workers = 'auto', convolution = 'lupa',
  } = {}) {
    let root = new URL(base, globalThis.location?.href);
    if (!root.pathname.endsWith('/')) root = new URL(`${root.pathname}/`, root);
    const indexText = await fetchIndex(root);
    const upscaler = new Upscaler(root, indexText, backend, workers);
    upscaler.#convolution = convolution;
    await upscaler.#request(null); // start the engine, which checks the registry in full
    return upscaler;
  }

  /** Use Upscaler.create. */
  constructor(base, indexText, backend, workers = 'auto') {
    super();
    this.#base = base;
    this.#indexText = indexText;
    this.#backendChoice = backend;
    this.#workers = workers;
    this.index = JSON.parse(indexText);
  }

  /**
   * What upscaling `input` as `request` asks would do: the models, Smart mode's choice, the size.
   * @param {Input} input
   * @param {JobRequest} request
   * @param {{ signal?: AbortSignal }} [options]
   * @returns {Promise<JobPlan>}
   */
  async plan(input, request, { signal } = {}) {
    const bytes = await toBuffer(input);
    return (await this.#readAndPlan(bytes, request, signal)).plan;
  }

  /**
   * Plans the job, loads (fetching or from the cache) every model the plan lists, and runs it.
   * `onProgress` hears of the plan, of each model's weights and of each tile. A tile the GPU gets
   * wrong (NaN, black) is computed again on the CPU, and if the GPU fails (its device lost) the
   * job goes on on the CPU from that tile (`engineFailed` in the result; the next call starts a
   * new engine). If the GPU engine crashes (WebGPU's out-of-memory error is one it cannot
   * survive), the job runs again on the CPU and the engine stays there. Test hooks, once that
   * many tiles are done: `loseDeviceAfterTile` destroys the WebGPU device, as a driver reset
   * would; `failDeviceAfterTile` makes it report an error, as when out of memory. And
   * `hangHelperOnTile` makes the CPU pool's helper that gets that tile hang, stopped after
   * `hangAfterMs` at the least (pool.js's MIN_HANG_MS otherwise); `hangAfterTile` makes the
   * job's own engine hang after that many tiles: it is replaced and the call rejects ('backend').
   * The job's engine counts as stuck by the helpers' rule: no tile for HANG_FACTOR times the
   * longest wait between tiles so far, and at least MIN_HANG_MS; in its first tile, no tile in
   * HANG_FACTOR times what the tile's multiply-adds take at the slowest rate this engine has
   * shown (or, before its first tile ever, at FLOOR_GMACS), and at least MIN_HANG_MS.
   * @param {Input} input
   * @param {JobRequest} request
   * @param {{ signal?: AbortSignal, onProgress?: (event: ProgressEvent) => void, tile?: number }} [options]
   * @returns {Promise<UpscaleResult>}
   */
  async upscale(input, request, options = {}) {
    if (request?.format !== LOSSY_WEBP.id) return this.#upscale(input, request, options);
    const quality = lossyQuality(request);
    return encodeLossyWebp(await this.#upscale(input, request, options), quality);
  }

  async #upscale(input, request, { signal, onProgress, tile = 0, ...hooks } = {}) {
    const { bytes, plan, browserDecoded } = await this.#readAndPlan(await toBuffer(input), request, signal);
    onProgress?.({ phase: 'planned', plan });
    const done = await this.#upscaleRead(bytes, plan, request, { signal, onProgress, tile, ...hooks });
    return browserDecoded ? { ...done, explanation: `${BROWSER_DECODED} ${done.explanation}` } : done;
  }

  /** Plans the job; a file in a format the engine does not read, the browser decodes (to PNG). */
  async #readAndPlan(bytes, request, signal) {
    try {
      return { bytes, plan: await this.#plan(bytes.slice(0), request, signal), browserDecoded: false };
    } catch (e) {
      const png = await browserDecoded(bytes, e);
      const plan = await this.#plan(png.slice(0), request, signal);
      return { bytes: png, plan: { ...plan, explanation: `${BROWSER_DECODED} ${plan.explanation}` }, browserDecoded: true };
    }
  }

  async #upscaleRead(bytes, plan, request, { signal, onProgress, tile = 0, ...hooks }) {
    const again = this.backend?.backend === 'webgpu' ? bytes.slice(0) : null;
    try {
      return await this.#run(bytes, plan, engineRequest(request), { signal, onProgress, tile, ...hooks });
    } catch (e) {
      const error = toLupaError(e);
      if (!again || error.kind !== 'backend' || !error.message.startsWith('the engine crashed')) throw error;
      // The GPU engine died mid-job (e.g. out of GPU memory, which WebGPU reports as an error the
      // engine cannot survive): the job runs again on the CPU, which the engine stays on.
      const why = crashReason(error.message);
      await this.restart('cpu');
      this.backend = { ...this.backend, reason: `The GPU engine crashed during a job (${why})` };
      const done = await this.#run(again, plan, engineRequest(request), { signal, onProgress });
      const explanation = `${done.explanation} The GPU engine crashed (${why}): the job ran again on the CPU.`;
      return { ...done, explanation, engineFailed: true };
    }
  }

  /** Loads the plan's models and runs the job on the engine. */
  async #run(bytes, plan, request, { signal, onProgress, tile = 0, loseDeviceAfterTile, failDeviceAfterTile,
    hangHelperOnTile = null, hangAfterTile = null, hangAfterMs = MIN_HANG_MS }) {
    for (const id of plan.models) await this.#ensureModel(id, signal, onProgress);
    // Two tiles out per helper, so that its next one waits in the pool's queue; the engine takes
    // back ('reclaim') those not started when it has none left to run.
    const helpers = await this.#readyPool(plan.models);
    const slots = 2 * helpers;
    // Automatic tiles are cut for every engine this Upscaler runs, ready or not: the tiles, and so
    // the result, do not depend on how many helpers were up in time.
    const engines = this.backend?.engines ?? 1;
    const pool = this.#pool;
    if (pool) Object.assign(pool, { hangOnTile: hangHelperOnTile, minHangMs: hangAfterMs });
    // The time between progress reports: what tells a helper stuck in a tile (pool.js), and this
    // engine stuck (the same rule: HANG_FACTOR times the longest so far, at least hangAfterMs).
    // Only while a tile is running: a resize between passes and the encoding at the end report
    // nothing and may take long. Before any tile of the job is done, the first tile's
    // multiply-adds (the first model's per pixel, times the input's pixels over the tiles) at the
    // slowest rate this engine has shown set the limit.
    let last = performance.now();
    let longest = 0;
    let tiling = false;
    let firstTileGmac = 0;
    const macsPerPixel = this.index.models.find((m) => m.id === plan.models[0])?.macs_per_pixel ?? 0;
    const timeTile = (done, total, pass) => {
      const now = performance.now();
      if (done > 0) {
        longest = Math.max(longest, now - last);
        pool?.noteTileTime(now - last);
        if (firstTileGmac > 0 && (pass ?? 1) === 1) {
          const gmacs = firstTileGmac / ((now - last) / 1000);
          this.#slowestGmacs = this.#slowestGmacs ? Math.min(this.#slowestGmacs, gmacs) : gmacs;
        }
      } else if (!firstTileGmac) {
        firstTileGmac = (macsPerPixel * plan.input[0] * plan.input[1]) / Math.max(1, total) / 1e9;
      }
      last = now;
      tiling = done < total;
    };
    const stuck = () => {
      const quiet = performance.now() - last;
      const limit = longest > 0 ? stuckAfter(longest, hangAfterMs) : this.#firstTileLimit(firstTileGmac, hangAfterMs);
      return tiling && quiet > limit ? quiet : 0;
    };
    const hooks = { loseDeviceAfterTile, failDeviceAfterTile, hangAfterTile };
    const done = await this.#request({ type: 'run', input: bytes, request, tile, slots, engines, ...hooks }, {
      transfer: [bytes],
      signal,
      stuck,
      onProgress: ({ done, total, pass, passes }) => {
        timeTile(done, total, pass);
        onProgress?.({ phase: 'tiles', done, total, pass, passes });
      },
    });
    const { type, requestId, ...result } = done; // the worker's 'done' message: UpscaleResult's fields
    return { ...result, blob: new Blob([done.bytes], { type: done.mime }), engines: 1 + helpers, plan };
  }

  /** How long (ms) the first tile of a job, `gmac` billion multiply-adds, may take before the
   * engine counts as stuck: HANG_FACTOR times that work at the slowest rate this engine has shown,
   * or at FLOOR_GMACS before it has shown any; at least `minMs`. */
  #firstTileLimit(gmac, minMs) {
    const ms = this.#slowestGmacs ? (HANG_FACTOR * 1000 * gmac) / this.#slowestGmacs : (1000 * gmac) / FLOOR_GMACS;
    return Math.max(minMs, ms);
  }

  /** Starts the pool's helpers and loads `models` into them; resolves to the helpers ready (0
   * without a pool). A helper that fails is left out: the job runs without it. */
  async #readyPool(models) {
    if (!this.#pool) return 0;
    return this.#pool.ensure(models, (id) => this.#weights.get(id)?.slice(0) ?? null);
  }

  /**
   * Fetches (or takes from the cache) and loads one model's weights, so that a later upscale
   * starts at once.
   * @param {string} modelId
   * @param {{ signal?: AbortSignal, onProgress?: (event: ProgressEvent) => void }} [options]
   * @returns {Promise<void>}
   */
  async warmup(modelId, { signal, onProgress } = {}) {
    await this.#ensureModel(modelId, signal, onProgress);
  }

  /**
   * A stored zip of `files`.
   * @param {{ name: string, bytes: Input }[]} files
   * @param {{ signal?: AbortSignal }} [options]
   * @returns {Promise<Blob>}
   */
  async zip(files, { signal } = {}) {
    const buffers = await Promise.all(files.map((f) => toBuffer(f.bytes)));
    const { zip } = await this.#request({ type: 'zip', names: files.map((f) => f.name), files: buffers },
      { transfer: buffers, signal });
    return new Blob([zip], { type: 'application/zip' });
  }

  /**
   * Replaces the worker (the call in flight and those queued reject with kind 'backend') and
   * starts the engine again, on `backend` if given.
   * @param {'auto' | 'webgpu' | 'cpu'} [backend]
   * @returns {Promise<void>}
   */
  async restart(backend = this.#backendChoice) {
    if (this.#disposed) throw disposedError();
    this.#backendChoice = backend;
    this.#epoch += 1;
    this.#dropSpare();
    this.#replaceWorker(this.#worker, new LupaError('backend', 'the engine was restarted'));
    await this.#request(null);
  }

  /** Stops the worker; every pending call rejects, and later calls too. */
  dispose() {
    this.#disposed = true;
    this.#epoch += 1;
    this.#dropSpare();
    this.#replaceWorker(this.#worker, disposedError());
  }

  // ---- jobs -----------------------------------------------------------------------------------

  async #plan(bytes, request, signal) {
    const lossy = request?.format === LOSSY_WEBP.id;
    if (lossy) lossyQuality(request);
    const { plan } = await this.#request({ type: 'plan', input: bytes, request: engineRequest(request) },
      { transfer: [bytes], signal });
    return lossy ? { ...plan, extension: 'webp' } : plan;
  }

  /** Loads model `id` into the current engine unless it is there. */
  async #ensureModel(id, signal, onProgress) {
    const spec = this.index.models.find((m) => m.id === id);
    if (!spec) {
      const available = this.index.models.map((m) => m.id).join(', ');
      throw new LupaError('unknown-model', `unknown model \`${id}\`; available: ${available}`);
    }
    if (this.#loaded.has(id)) return;
    await loadWeights(this.#base, spec, {
      signal,
      onSource: (from) => onProgress?.({ phase: 'weights', model: spec, from }),
      load: (weights) => {
        if (this.#pool) this.#weights.set(id, weights.slice(0)); // `weights` goes to the worker
        return this.#request({ type: 'load', id, weights }, { transfer: [weights], signal });
      },
    });
  }

  // ---- the queue ------------------------------------------------------------------------------

  /**
   * Sends `message` to the engine when every earlier message has been answered, starting a worker
   * first if there is none; resolves to the reply. `message` null only starts the engine.
   */
  #request(message, { transfer = [], signal, onProgress, stuck } = {}) {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(cancelled());
        return;
      }
      const epoch = this.#epoch;
      let settled = false;
      let entry = null; // once posted
      const settle = (fn, value) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        fn(value);
      };
      const onAbort = () => {
        if (entry?.type === 'run' && this.#inflight === entry) this.#cancelRun(entry);
        else settle(reject, cancelled()); // a late reply is ignored
      };
      signal?.addEventListener('abort', onAbort, { once: true });

      // The queue waits for the worker's reply even when the caller has stopped waiting.
      const turn = this.#tail.then(async () => {
        if (settled) return; // aborted while queued: nothing is sent
        try {
          if (this.#disposed) throw disposedError();
          if (epoch !== this.#epoch) throw new LupaError('backend', 'the engine was restarted');
          await this.#startWorker();
          if (settled || !message) {
            settle(resolve, undefined);
            return;
          }
          entry = this.#post(message, transfer, onProgress);
          if (stuck) this.#watch(entry, stuck);
          const reply = await entry.reply;
          settle(resolve, reply);
        } catch (e) {
          settle(reject, toLupaError(e));
        }
      });
      this.#tail = turn.catch(() => {});
    });
  }

  /** Starts a worker and its engine unless one runs (and has not failed). */
  async #startWorker() {
    if (this.#worker && this.#worker === this.#failed) {
      this.#replaceWorker(this.#worker, new LupaError('backend', 'the engine failed'));
    }
    if (this.#worker) return;
    const start = await this.#startPlan();
    const worker = engineWorker(this.#base);
    let started = false;
    this.#listen(worker, () => (started ? 'the engine crashed' : 'the engine failed to start'));
    this.#worker = worker;
    this.#loaded = new Set();
    try {
      const { info, catalogue } = await this.#post({ type: 'init', index: this.#indexText, backend: start.backend, convolution: this.#convolution }).reply;
      // WebGPU runs one engine (one GPU); the CPU backend one per core, helpers started at the
      // first upscale.
      const engines = info.backend === 'cpu' ? engineCount(this.#workers) : 1;
      this.#pool = engines > 1 ? new HelperPool(this.#base, this.#indexText, engines - 1) : null;
      this.backend = { ...info, engines, reason: start.reason ?? info.reason };
      this.catalogue = withBrowserFormats(catalogue);
      if (start.backend !== 'cpu') this.#fullEngine = true;
      started = true;
      // After this start's callers have gone on (a page says Ready and may start a job).
      if (start.spare) setTimeout(() => this.#startSpare(), 0);
    } catch (e) {
      // An engine that did not start is no use: the next call tries again.
      if (this.#worker === worker) {
        worker.terminate();
        this.#worker = null;
        this.#inflight = null;
      }
      throw e;
    }
  }

  /**
   * What the next engine start runs: the backend asked for, except that 'auto' runs the CPU
   * engine where there is no WebGPU adapter, and with one starts the CPU engine first (and the
   * full one beside it: `spare`) until the full engine has run here or is in Cache Storage (the
   * installed app's precache).
   * @returns {Promise<{ backend: 'auto' | 'webgpu' | 'cpu', reason?: string, spare?: boolean }>}
   */
  async #startPlan() {
    const backend = this.#backendChoice;
    if (backend !== 'auto' || this.#fullEngine) return { backend };
    const why = await missingWebGPU();
    if (why) return { backend: 'cpu', reason: `WebGPU is unavailable: ${why}` };
    const engineUrl = new URL('lupa-web_bg.wasm', this.#base);
    if (await globalThis.caches?.match(engineUrl).catch(() => null)) return { backend };
    return { backend: 'cpu', reason: 'The CPU engine runs while the WebGPU engine loads', spare: true };
  }

  /** Starts the full engine on 'auto' in a second worker; once it is up on WebGPU, a queued turn
   * makes it the engine (see #adoptSpare). */
  #startSpare() {
    if (this.#disposed || this.#worker === null) return;
    const worker = engineWorker(this.#base);
    const spare = { worker, ready: null };
    this.#spare = spare;
    startEngine(worker, { type: 'init', index: this.#indexText, backend: 'auto', convolution: this.#convolution }).then((ready) => {
      if (this.#spare !== spare) return;
      if (ready.info.backend !== 'webgpu') {
        // The adapter failed the engine's own check: the CPU engine stays.
        this.#dropSpare();
        this.backend = { ...this.backend, reason: ready.info.reason };
        this.dispatchEvent(new Event('backendchange'));
        return;
      }
      spare.ready = ready;
      const turn = this.#tail.then(() => this.#adoptSpare(spare));
      this.#tail = turn.catch(() => {});
    }, () => {
      if (this.#spare === spare) this.#dropSpare(); // the CPU engine stays
    });
  }

  /** Makes the spare the engine, between calls: the CPU engine and its helpers stop. */
  #adoptSpare(spare) {
    if (this.#spare !== spare || this.#disposed) return;
    this.#spare = null;
    this.#replaceWorker(this.#worker, new LupaError('backend', 'the WebGPU engine took over'));
    const { worker } = spare;
    this.#listen(worker, () => 'the engine crashed');
    this.#worker = worker;
    this.#loaded = new Set();
    this.#fullEngine = true;
    const { info } = spare.ready;
    this.backend = { ...info, engines: 1, reason: `${info.reason}; the CPU engine ran until this engine had loaded` };
    this.dispatchEvent(new Event('backendchange'));
  }

  /** Routes `worker`'s messages to #onMessage; an error event or an unreadable message replaces
   * it (`what()` names an error event: a crash, or a failed start). */
  #listen(worker, what) {
    worker.onmessage = ({ data }) => this.#onMessage(worker, data);
    worker.onerror = (e) => {
      e.preventDefault();
      this.#replaceWorker(worker, new LupaError('backend', `${what()}: ${e.message || 'worker error'}`));
    };
    worker.onmessageerror = () => {
      this.#replaceWorker(worker, new LupaError('backend', 'the engine sent a message that cannot be read'));
    };
  }

  #dropSpare() {
    this.#spare?.worker.terminate();
    this.#spare = null;
  }

  /** Posts `message` to the worker; the entry's `reply` settles with the answer. */
  #post(message, transfer = [], onProgress) {
    const entry = { id: this.#nextId++, type: message.type, worker: this.#worker, onProgress, aborted: false, timer: 0 };
    entry.reply = new Promise((resolve, reject) => {
      entry.resolve = resolve;
      entry.reject = reject;
    });
    this.#inflight = entry;
    try {
      this.#worker.postMessage({ ...message, requestId: entry.id }, transfer);
    } catch (e) {
      this.#inflight = null;
      entry.reject(new LupaError('bad-input', `cannot send the data to the engine: ${e.message}`, { cause: e }));
    }
    return entry;
  }

  #onMessage(worker, data) {
    if (worker !== this.#worker) return; // a replaced worker's last words
    if (data.type === 'tile') {
      this.#relayTile(worker, data);
      return;
    }
    if (data.type === 'reclaim') {
      this.#pool?.cancel('reclaimed: the job runs it itself');
      return;
    }
    if (data.type === 'panic') {
      this.#replaceWorker(worker, new LupaError('backend', `the engine crashed: ${data.message}`));
      return;
    }
    if (data.type === 'loaded') this.#loaded.add(data.id); // true even if its caller gave up
    // The job finished on the CPU after its GPU failed (the device lost): the next call starts a
    // new engine, which looks for a working GPU again.
    if (data.type === 'done' && data.engineFailed) this.#failed = worker;
    const entry = this.#inflight;
    if (!entry || data.requestId !== entry.id) return;
    if (data.type === 'progress') {
      if (!entry.aborted) entry.onProgress?.(data);
      return;
    }
    this.#inflight = null;
    clearTimeout(entry.timer);
    if (data.type === 'error') {
      const { kind = 'backend', message = 'the engine failed' } = data.error ?? {};
      entry.reject(new LupaError(kind, message));
    } else if (entry.aborted) {
      entry.reject(cancelled()); // finished after all, but nobody wants it now
    } else {
      entry.resolve(data);
    }
  }

  /** Runs a tile the engine hands out on the pool and sends it back; if no helper can, the
   * engine is told, and runs the tile itself. */
  #relayTile(worker, { taskId, task }) {
    const pool = this.#pool;
    const run = pool ? pool.run(task) : Promise.reject(new Error('there is no helper pool'));
    run.then(
      (tile) => worker.postMessage({ type: 'tile-done', taskId, tile }, [tile.data.buffer]),
      (e) => worker.postMessage({ type: 'tile-failed', taskId, message: e.message }),
    );
  }

  /** Replaces the worker when `stuck()` (ms without a sign of life, or 0) says it hangs while it
   * works on `entry`: the call rejects with kind 'backend' and the next one starts a new engine. */
  #watch(entry, stuck) {
    const timer = setInterval(() => {
      if (this.#inflight !== entry) {
        clearInterval(timer);
        return;
      }
      const quiet = stuck();
      if (!quiet) return;
      clearInterval(timer);
      const seconds = (quiet / 1000).toFixed(1);
      this.#replaceWorker(entry.worker, new LupaError('backend', `the engine stopped responding (no tile done in ${seconds} s)`));
    }, 500);
  }

  /** Asks the running job to stop; terminates its worker if it has not after the grace time. */
  #cancelRun(entry) {
    if (entry.aborted) return;
    entry.aborted = true;
    this.#pool?.cancel();
    entry.worker.postMessage({ type: 'cancel' });
    entry.timer = setTimeout(() => {
      if (this.#inflight === entry) this.#replaceWorker(entry.worker, cancelled());
    }, CANCEL_GRACE_MS);
  }

  /** Terminates `worker` if it is the current one; its call in flight rejects with `error`. */
  #replaceWorker(worker, error) {
    if (!worker || worker !== this.#worker) return;
    worker.terminate();
    this.#worker = null;
    this.#slowestGmacs = 0;
    this.#loaded = new Set();
    this.#pool?.dispose();
    this.#pool = null;
    this.#weights = new Map();
    const entry = this.#inflight;
    this.#inflight = null;
    if (entry) {
      clearTimeout(entry.timer);
      entry.reject(entry.aborted ? cancelled() : error);
    }
  }
}

const disposedError = () => new LupaError('backend', 'the upscaler was disposed');

/** The engine's catalogue and the formats the browser encodes itself (lossy WebP, after WebP). */
function withBrowserFormats(catalogue) {
  if (!hasCanvasCodecs() || catalogue.formats.some((f) => f.id === LOSSY_WEBP.id)) return catalogue;
  const formats = [...catalogue.formats];
  const at = formats.findIndex((f) => f.id === 'webp');
  formats.splice(at < 0 ? formats.length : at + 1, 0, { ...LOSSY_WEBP });
  return { ...catalogue, formats };
}

/** Why this browser cannot run WebGPU (one phrase), or null when it has an adapter. */
async function missingWebGPU() {
  const gpu = globalThis.navigator?.gpu;
  if (!gpu) return 'this browser does not expose WebGPU (navigator.gpu is missing)';
  try {
    return (await gpu.requestAdapter({ powerPreference: 'high-performance' })) ? null : 'no WebGPU adapter was found';
  } catch (e) {
    return `requesting a WebGPU adapter failed: ${e.message}`;
  }
}

/** Sends `init` to a new `worker`; resolves to its 'ready' reply ({info, catalogue}), rejects
 * with its error. The caller sets the worker's handlers afterwards. */
function startEngine(worker, init) {
  return new Promise((resolve, reject) => {
    worker.onmessage = ({ data }) => {
      if (data.type === 'ready') resolve(data);
      else if (data.type === 'error') reject(new LupaError(data.error?.kind ?? 'backend', data.error?.message ?? 'the engine failed'));
      else if (data.type === 'panic') reject(new LupaError('backend', `the engine crashed: ${data.message}`));
    };
    worker.onerror = (e) => {
      e.preventDefault();
      reject(new LupaError('backend', `the engine failed to start: ${e.message || 'worker error'}`));
    };
    worker.postMessage({ ...init, requestId: 0 });
  });
}

/** The text of `${base}models/index.json`, checked to be JSON with a list of models. */
async function fetchIndex(base) {
  let text;
  try {
    const response = await fetch(new URL('models/index.json', base), { cache: 'no-cache' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    text = await response.text();
  } catch (e) {
    throw new LupaError('registry', `cannot load models/index.json: ${e.message}`, { cause: e });
  }
  let index;
  try {
    index = JSON.parse(text);
  } catch (e) {
    throw new LupaError('registry', `models/index.json is not valid JSON: ${e.message}`, { cause: e });
  }
  if (!Array.isArray(index?.models)) throw new LupaError('registry', 'models/index.json lists no models');
  return text;
}
