// The CPU worker pool: helper engines that run tiles of the job another engine (the coordinator,
// driven by lupa.js) is running, so that the wasm CPU backend, one thread per instance, uses every
// core. The coordinator cuts the image into tiles as it always does and hands some to the pool
// (worker.js: 'tile' out, 'tile-done' / 'tile-failed' back); each helper is a worker.js of its
// own on the CPU backend with the job's models loaded, and runs one tile at a time. The result
// is bit-identical to one engine's: every engine runs the same kernels on the same padded tile
// with the same whole-image context (Real-CUGAN's SE means, computed once by the coordinator).
// Tasks wait in this pool's queue until a helper is free; the coordinator, when it has no tile
// left to run, takes back those not started ('reclaim' → `cancel`) and runs them itself.
//
//   const pool = new HelperPool(base, indexText, 1);
//   await pool.ensure(['span-x4'], (id) => weightsCopy(id));  // start helpers, load models
//   const tile = await pool.run(task);                        // rejects: run it yourself
//
// A helper that fails to start, to load a model, or that crashes is terminated; its tile rejects
// (the coordinator runs it) and the next `ensure` starts a fresh one. So is a helper that hangs:
// one whose tile takes HANG_FACTOR times the longest tile seen so far (`noteTileTime`: the
// coordinator's, through lupa.js, and the helpers' own), and at least MIN_HANG_MS. The pool never
// fails a job.

/** Memory one helper engine may take: its tile's activations (crates/lupa-web/src/engine.rs,
 * CPU_TILE_BUDGET: at most about 155 MiB), the weights, one tile in and out, the engine. */
export const HELPER_MEMORY_MB = 320;
/** At most this many engines (coordinator included) share one job. */
export const MAX_ENGINES = 8;
/** A helper whose tile takes this many times the longest tile seen so far is stuck. */
export const HANG_FACTOR = 10;
/** ... and at least this long (ms): a slow device's first tiles vary. */
export const MIN_HANG_MS = 60_000;
/** The slowest rate (billion multiply-adds per second) a working engine is assumed to reach, for
 * the first tile an engine ever runs, when nothing has been measured yet: below the slowest seen,
 * Burn's own convolution on SwiftShader (0.1–0.4 GMAC/s, docs/BENCHMARKS-GPU.md). */
export const FLOOR_GMACS = 0.05;

/** How long (ms) an engine may take for a tile before it counts as stuck, when the longest tile
 * so far took `longestMs`: HANG_FACTOR times that, and at least `minMs`. */
export function stuckAfter(longestMs, minMs = MIN_HANG_MS) {
  return Math.max(minMs, HANG_FACTOR * longestMs);
}

/**
 * How many engines (the coordinator and its helpers) to run on the CPU: `workers` if it is a
 * number, else ('auto') one per logical core (`navigator.hardwareConcurrency`), at most
 * MAX_ENGINES, and as many as fit a quarter of the device's memory (`navigator.deviceMemory`,
 * GiB, where the browser tells; 4 GiB assumed elsewhere) at HELPER_MEMORY_MB each. At least 1.
 * @param {'auto' | number} workers
 * @param {{ cores?: number, memoryGiB?: number }} [device]
 * @returns {number}
 */
export function engineCount(workers, { cores = globalThis.navigator?.hardwareConcurrency,
  memoryGiB = globalThis.navigator?.deviceMemory } = {}) {
  if (typeof workers === 'number' && Number.isFinite(workers)) {
    return Math.min(MAX_ENGINES, Math.max(1, Math.floor(workers)));
  }
  const byCores = Math.max(1, Math.floor(cores || 1));
  const byMemory = Math.max(1, Math.floor(((memoryGiB || 4) * 1024) / 4 / HELPER_MEMORY_MB));
  return Math.min(MAX_ENGINES, byCores, byMemory);
}

/**
 * The sha384 (SRI) of the files the engine worker runs: worker.js and each engine's glue and
 * .wasm. scripts/integrity.mjs writes them into the build's copy of this line; in web/ itself
 * (not built) it stays null and the files run unchecked.
 * @type {Record<string, string> | null}
 */
const ENGINE_INTEGRITY = null;

/**
 * The body of the checked bootstrap (a blob: module worker, `base` and the hashes filled in): it
 * queues the page's messages, fetches worker.js, checks its sha384 and runs it from a blob: URL
 * (`lupaImportChecked`); worker.js checks the engine's glue (`lupaImportChecked`) and .wasm
 * (`lupaChecked`) the same way, and takes the queued messages over. A file that does not match throws: the worker fails to start, naming it.
 */
function checkedBootstrap(base, integrity) {
  return `const base = ${JSON.stringify(base)};
const integrity = ${JSON.stringify(integrity)};
self.lupaQueued = [];
self.onmessage = (e) => self.lupaQueued.push(e);
self.lupaBase = base;
self.lupaChecked = async (name) => {
  const response = await fetch(new URL(name, base));
  if (!response.ok) throw new Error(\`\${name}: HTTP \${response.status}\`);
  const bytes = await response.arrayBuffer();
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-384', bytes));
  const actual = 'sha384-' + btoa(String.fromCharCode(...digest));
  if (actual !== integrity[name]) {
    throw new Error(\`\${name} failed its integrity check (sha384 \${actual}, expected \${integrity[name]})\`);
  }
  return bytes;
};
self.lupaImportChecked = async (name) => {
  const source = await self.lupaChecked(name);
  return import(URL.createObjectURL(new Blob([source], { type: 'text/javascript' })));
};
await self.lupaImportChecked('worker.js');
`;
}

const bootstraps = new Map(); // worker.js URL → the blob: URL of the module that starts it

/**
 * A module worker running `${base}worker.js`.
 * - A build (scripts/integrity.mjs) knows the engine files' sha384: the worker starts from a
 *   same-origin blob: module that fetches worker.js and the engine, checks them and runs them
 *   (`checkedBootstrap`; a page's import map does not reach into workers). Where the browser has
 *   no SubtleCrypto (a page on plain http: other than localhost) nothing can be checked, and
 *   nothing served over plain http could be trusted anyway: the files run unchecked.
 * - Unbuilt (web/ itself): worker.js from its URL, or, where the engine is served from another
 *   origin (a host page embedding the widget from a CDN), from a blob: module that imports it.
 * Another origin must serve the engine with CORS (`Access-Control-Allow-Origin`). The worker has
 * the page's origin either way; worker.js finds the engine beside itself (`lupaBase`, or its
 * import.meta.url).
 * @param {URL} base
 * @returns {Worker}
 */
export function engineWorker(base) {
  const url = new URL('worker.js', base);
  const checked = ENGINE_INTEGRITY !== null && globalThis.crypto?.subtle !== undefined;
  if (!checked && url.origin === globalThis.location?.origin) return new Worker(url, { type: 'module' });
  let bootstrap = bootstraps.get(url.href);
  if (!bootstrap) {
    const source = checked
      ? checkedBootstrap(new URL('./', url).href, ENGINE_INTEGRITY)
      : `import ${JSON.stringify(url.href)};\n`;
    bootstrap = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
    bootstraps.set(url.href, bootstrap);
  }
  return new Worker(bootstrap, { type: 'module' });
}

/** One helper: a worker.js on the CPU backend, and the models it holds. */
class Helper {
  worker;
  loaded = new Set();
  busy = null;      // the pending request's {resolve, reject, id}, or null
  tileSince = 0;    // when its running tile was sent (performance.now()), or 0
  started = null;   // resolves once the engine is up (or the helper is dead)
  dead = false;
  #nextId = 1;
  #chain = Promise.resolve(); // requests go one at a time, in order
  #onDeath;

  constructor(base, onDeath) {
    this.#onDeath = onDeath;
    this.worker = engineWorker(base);
    this.worker.onmessage = ({ data }) => this.#onMessage(data);
    this.worker.onerror = (e) => {
      e.preventDefault();
      this.kill(`a helper engine crashed: ${e.message || 'worker error'}`);
    };
    this.worker.onmessageerror = () => this.kill('a helper engine sent a message that cannot be read');
  }

  /** Sends `message` once the requests before it are answered; resolves to the reply. */
  request(message, transfer = []) {
    const send = () => new Promise((resolve, reject) => {
      if (this.dead) {
        reject(new Error('the helper engine is gone'));
        return;
      }
      this.busy = { resolve, reject, id: this.#nextId };
      this.worker.postMessage({ ...message, requestId: this.#nextId++ }, transfer);
    });
    const reply = this.#chain.then(send, send);
    this.#chain = reply.catch(() => {});
    return reply;
  }

  #onMessage(data) {
    if (data.type === 'panic') {
      this.kill(`a helper engine crashed: ${data.message}`);
      return;
    }
    const busy = this.busy;
    if (!busy || data.requestId !== busy.id) return;
    this.busy = null;
    if (data.type === 'error') busy.reject(new Error(data.error?.message ?? 'the helper engine failed'));
    else busy.resolve(data);
  }

  /** Terminates the worker; the pending request rejects with `why`. */
  kill(why) {
    if (this.dead) return;
    this.dead = true;
    this.worker.terminate();
    const busy = this.busy;
    this.busy = null;
    busy?.reject(new Error(why));
    this.#onDeath(this);
  }
}

export class HelperPool {
  #base;
  #indexText;
  #size;
  /** @type {Helper[]} */
  #helpers = [];
  #queue = [];      // tasks waiting for a helper: {task, resolve, reject}
  #disposed = false;
  #longestTileMs = 0;  // the longest tile any engine took so far (0: none done yet)
  #watch = 0;          // the interval that looks for stuck helpers while tiles run
  /** Test hooks: the task index a helper is told to hang on, and the least time before a stuck
   * helper is stopped (MIN_HANG_MS unless set). */
  hangOnTile = null;
  minHangMs = MIN_HANG_MS;

  /**
   * @param {URL} base the folder with worker.js
   * @param {string} indexText the text of models/index.json
   * @param {number} size helpers to run (0: the pool is empty and every run rejects)
   */
  constructor(base, indexText, size) {
    this.#base = base;
    this.#indexText = indexText;
    this.#size = Math.max(0, size);
  }

  /** Helpers this pool runs when all are up. */
  get size() {
    return this.#size;
  }

  /** Helpers up now, with the models of the last `ensure`. */
  get ready() {
    return this.#helpers.filter((h) => !h.dead).length;
  }

  /**
   * Starts missing helpers and loads `models` into every helper (weights(id) gives a fresh
   * ArrayBuffer of a model's weights, transferred to the helper). Helpers that fail are dropped;
   * resolves to the number ready.
   * @param {string[]} models
   * @param {(id: string) => ArrayBuffer | null} weights
   * @returns {Promise<number>}
   */
  async ensure(models, weights) {
    if (this.#disposed) return 0;
    while (this.#helpers.length < this.#size) {
      const helper = new Helper(this.#base, (h) => this.#onDeath(h));
      this.#helpers.push(helper);
      helper.started = helper.request({ type: 'init', index: this.#indexText, backend: 'cpu' })
        .catch((e) => helper.kill(`a helper engine failed to start: ${e.message}`));
    }
    await Promise.all(this.#helpers.map(async (helper) => {
      await helper.started;
      for (const id of models) {
        if (helper.dead || helper.loaded.has(id)) continue;
        const bytes = weights(id);
        if (!bytes) {
          helper.kill(`no weights for ${id}`);
          continue;
        }
        try {
          await helper.request({ type: 'load', id, weights: bytes }, [bytes]);
          helper.loaded.add(id);
        } catch (e) {
          helper.kill(`a helper engine refused ${id}: ${e.message}`);
        }
      }
    }));
    return this.ready;
  }

  /**
   * Runs a tile task (worker.js's 'tile') on the first free helper that holds its model; resolves
   * to the tile `{width, height, data}`, rejects when no helper could run it.
   */
  run(task) {
    return new Promise((resolve, reject) => {
      if (!this.#helpers.some((h) => !h.dead && h.loaded.has(task.model))) {
        reject(new Error(`no helper engine holds ${task.model}`));
        return;
      }
      this.#queue.push({ task, resolve, reject });
      this.#dispatch();
    });
  }

  /** An engine took `ms` for a tile: what a stuck helper is measured against. */
  noteTileTime(ms) {
    this.#longestTileMs = Math.max(this.#longestTileMs, ms);
  }

  /** Rejects every task still waiting for a helper (a cancel, or the job reclaiming them);
   * those running finish. */
  cancel(why = 'cancelled') {
    for (const { reject } of this.#queue.splice(0)) reject(new Error(why));
  }

  /** Terminates every helper; waiting tasks reject. */
  dispose() {
    this.#disposed = true;
    this.cancel('the pool was closed');
    for (const helper of this.#helpers.splice(0)) helper.kill('the pool was closed');
    clearInterval(this.#watch);
  }

  /** Stops helpers stuck in a tile (their tile rejects: the coordinator runs it); runs while any
   * helper has a tile. */
  #watchForHangs() {
    if (this.#watch) return;
    this.#watch = setInterval(() => {
      const running = this.#helpers.filter((h) => !h.dead && h.tileSince);
      if (!running.length) {
        clearInterval(this.#watch);
        this.#watch = 0;
        return;
      }
      if (!this.#longestTileMs) return; // nothing to measure against yet
      const limit = stuckAfter(this.#longestTileMs, this.minHangMs);
      for (const helper of running) {
        const ms = performance.now() - helper.tileSince;
        if (ms > limit) helper.kill(`a helper engine stopped responding (no tile back in ${(ms / 1000).toFixed(1)} s)`);
      }
    }, Math.min(1000, this.minHangMs / 4));
  }

  #dispatch() {
    for (const helper of this.#helpers) {
      if (helper.dead || helper.busy) continue;
      const i = this.#queue.findIndex(({ task }) => helper.loaded.has(task.model));
      if (i < 0) continue;
      const [{ task, resolve, reject }] = this.#queue.splice(i, 1);
      const buffers = [task.data.buffer, ...task.context.map((c) => c.buffer)];
      const hang = task.index === this.hangOnTile;
      const sent = performance.now();
      helper.tileSince = sent;
      helper.request({ type: 'tile', task, hang }, buffers)
        .then(({ tile }) => {
          this.noteTileTime(performance.now() - sent);
          resolve(tile);
        }, reject)
        .finally(() => {
          helper.tileSince = 0;
          this.#dispatch();
        });
      this.#watchForHangs();
    }
  }

  /** A dead helper leaves the pool (the next `ensure` starts another); tasks only it could run reject. */
  #onDeath(helper) {
    this.#helpers = this.#helpers.filter((h) => h !== helper);
    for (const entry of [...this.#queue]) {
      if (!this.#helpers.some((h) => !h.dead && h.loaded.has(entry.task.model))) {
        this.#queue.splice(this.#queue.indexOf(entry), 1);
        entry.reject(new Error('no helper engine is left'));
      }
    }
  }
}
