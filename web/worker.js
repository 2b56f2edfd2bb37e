// Lupa's engine worker: runs the wasm engine (crates/lupa-web) off the main thread. Driven by
// lupa.js, which sends one message at a time (all but 'cancel') and waits for its reply. Started
// by pool.js's `engineWorker`: in a build, from a bootstrap that checks this file and the engine
// against their sha384 first (scripts/integrity.mjs).
//
// Messages in:  {type: 'init', index, backend, convolution}   index: text of models/index.json;
//                                                 backend: 'auto' | 'webgpu' | 'cpu';
//                                                 convolution: 'burn' for Burn's conv (benchmarks;
//                                                 default Lupa's fused kernels). The first
//                                                 message: it loads the engine, the CPU engine
//                                                 alone (lupa-web-cpu, a quarter of the size)
//                                                 for 'cpu', the full one (lupa-web) otherwise
//               {type: 'load', id, weights}       weights: ArrayBuffer of the safetensors file
//               {type: 'plan', input, request}    input: ArrayBuffer of the image file;
//                                                 request: the job (JobRequest in lupa.d.ts)
//               {type: 'run', input, request, tile, slots, engines, loseDeviceAfterTile}   tile:
//                                                 tile side in input pixels, 0: automatic; slots:
//                                                 tiles that may be out with the page's helper
//                                                 workers at once (0: none); engines: this engine
//                                                 and the helpers the page runs (started or not),
//                                                 for automatic tiles; loseDeviceAfterTile and
//                                                 failDeviceAfterTile (test hooks): destroy the
//                                                 WebGPU device, or make it report an error (as
//                                                 out of memory), after that many tiles;
//                                                 hangAfterTile (a test hook): stop responding
//                                                 once that many tiles are reported done
//               {type: 'tile-done', taskId, tile} / {type: 'tile-failed', taskId, message}
//                                                 the page's answer to a 'tile' this worker sent
//                                                 ('tile-failed' too for a tile reclaimed unstarted)
//               {type: 'tile', task, hang}        (a helper) run another engine's tile task;
//                                                 hang (a test hook): never answer
//               {type: 'zip', names, files}       files: ArrayBuffers
//               {type: 'cancel'}                  stops the running job before its next tile
// Messages out: {type: 'ready', info, catalogue}  BackendInfo and the modes-as-data catalogue
//               {type: 'loaded', id}
//               {type: 'planned', plan}           JobPlan
//               {type: 'progress', requestId, done, total, pass, passes}   during a 'run'
//               {type: 'done', bytes, mime, extension, width, height, tiles, explanation,
//                      engineFailed, engineMemory, ms}   bytes: ArrayBuffer of the encoded file;
//                                                 engineFailed: the GPU failed and the job finished
//                                                 on the CPU; engineMemory: the wasm memory's size
//                                                 in bytes; ms: the time run_job took
//               {type: 'tile', taskId, task}      during a 'run' with slots: a tile for a helper;
//                                                 task: {index, model, ensemble, width, height,
//                                                 data: Float32Array, context: Float32Array[]}
//               {type: 'reclaim'}                 during a 'run': this engine has no tile left
//                                                 to run; fail the ones not started on a helper
//               {type: 'tiled', tile}             a helper's result: {width, height, data}
//               {type: 'zipped', zip}             zip: ArrayBuffer
//               {type: 'error', error: {kind, message}, request}   request: the failed message's type
//               {type: 'panic', message}
// Every message in may carry a `requestId`; every reply to it carries the same one. A cancelled run
// ends with an 'error' of kind 'cancelled'. After 'panic' the engine is dead: the page must start a
// new worker. Tiles and their results are planar RGB floats (crates/lupa-web/src/wasm.rs): a
// helper's tiles are bit-identical to the coordinator's own.
self.lupaReportPanic = (message) => postMessage({ type: 'panic', message });

let lupa = null;  // the engine's module once loaded
let ready = null; // resolves when it is, from the first 'init'

// Started by pool.js's checked bootstrap (a build), this module runs from a blob: URL: the engine
// is beside the bootstrap's `lupaBase`, and `lupaChecked(name)` fetches a file there and resolves
// to its bytes only if they match the build's sha384 (`lupaImportChecked(name)`: to the module). Started from its own URL, it is beside this.
const base = self.lupaBase ?? import.meta.url;

/** Loads the engine `name` ('lupa-web' or 'lupa-web-cpu', files beside this one), checked where
 * the bootstrap checks. */
async function loadEngine(name) {
  try {
    let module;
    let wasm;
    if (self.lupaChecked) {
      module = await self.lupaImportChecked(`${name}.js`);
      wasm = await self.lupaChecked(`${name}_bg.wasm`);
    } else {
      module = await import(new URL(`./${name}.js`, base).href);
      wasm = new URL(`./${name}_bg.wasm`, base);
    }
    await module.default({ module_or_path: wasm });
    lupa = module;
  } catch (e) {
    throw Object.assign(new Error(`the engine failed to load: ${e?.message ?? e}`), { kind: 'backend' });
  }
}

// wgpu leaves the adapter name empty on the web; WebGPU's GPUAdapterInfo has the details. Burn asks
// for the high-performance adapter, and so does this.
async function describeAdapter(fallback) {
  try {
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
    const { vendor, architecture, device, description } = adapter?.info ?? {};
    const text = [vendor, architecture, device, description].filter(Boolean).join(' ');
    return text || fallback;
  } catch {
    return fallback;
  }
}

// The engine throws Errors with a `kind` (see lupa.d.ts); anything else is the backend's fault.
function errorOf(e) {
  const message = e instanceof Error ? e.message : String(e);
  return { kind: typeof e?.kind === 'string' ? e.kind : 'backend', message };
}

// The ArrayBuffer of `view`, without a copy when the view covers all of it.
function bufferOf(view) {
  const whole = view.byteOffset === 0 && view.byteLength === view.buffer.byteLength;
  return whole ? view.buffer : view.slice().buffer;
}

// Tiles out with the page's helpers during a 'run': taskId → {resolve, reject}.
const tilesOut = new Map();
let nextTaskId = 1;

/** Hands `task` to the page for a helper; resolves to the tile, rejects if no helper ran it. */
function sendTile(requestId, task) {
  return new Promise((resolve, reject) => {
    const taskId = nextTaskId++;
    tilesOut.set(taskId, { resolve, reject });
    const buffers = [task.data.buffer, ...task.context.map((c) => c.buffer)];
    postMessage({ type: 'tile', requestId, taskId, task }, buffers);
  });
}

self.onmessage = async ({ data }) => {
  const { requestId } = data;
  const reply = (message, transfer = []) => postMessage({ ...message, requestId }, transfer);
  if (data.type === 'cancel') {
    // Handled at once, even while a job runs: the engine checks between tiles.
    lupa?.cancel();
    return;
  }
  if (data.type === 'tile-done' || data.type === 'tile-failed') {
    const out = tilesOut.get(data.taskId);
    tilesOut.delete(data.taskId);
    if (data.type === 'tile-done') out?.resolve(data.tile);
    else out?.reject(new Error(data.message));
    return;
  }
  try {
    if (data.type === 'init') ready ??= loadEngine(data.backend === 'cpu' ? 'lupa-web-cpu' : 'lupa-web');
    if (!ready) throw Object.assign(new Error('the engine is not started (no init)'), { kind: 'backend' });
    await ready;
    switch (data.type) {
      case 'init': {
        lupa.set_fused_convolution(data.convolution !== 'burn');
        const info = JSON.parse(await lupa.start_engine(data.index, data.backend));
        if (info.backend === 'webgpu') info.adapter = await describeAdapter(info.adapter);
        const catalogue = JSON.parse(lupa.catalogue());
        reply({ type: 'ready', info, catalogue });
        break;
      }
      case 'load':
        lupa.load_model(data.id, new Uint8Array(data.weights));
        reply({ type: 'loaded', id: data.id });
        break;
      case 'plan': {
        const plan = JSON.parse(lupa.plan_job(new Uint8Array(data.input), JSON.stringify(data.request)));
        reply({ type: 'planned', plan });
        break;
      }
      case 'run': {
        const started = performance.now();
        // The test hooks: destroy the GPU device, or make it fail, mid-job.
        let lose = data.loseDeviceAfterTile;
        let fail = data.failDeviceAfterTile;
        const hang = data.hangAfterTile;
        const onProgress = (done, total, pass, passes) => {
          if (lose != null && done >= lose) {
            lose = null;
            lupa.lose_device();
          }
          if (fail != null && done >= fail) {
            fail = null;
            lupa.fail_device();
          }
          reply({ type: 'progress', done, total, pass, passes });
          // A test hook: this engine stops responding, in the tile after that many.
          if (hang != null && done >= hang) for (;;);
        };
        const pool = {
          slots: data.slots ?? 0,
          engines: data.engines ?? 1,
          runTile: (task) => sendTile(requestId, task),
          reclaim: () => postMessage({ type: 'reclaim', requestId }),
        };
        const result = await lupa.run_job(new Uint8Array(data.input), JSON.stringify(data.request),
          data.tile ?? 0, onProgress, pool);
        const ms = performance.now() - started;
        const bytes = bufferOf(result.bytes);
        reply({ ...result, type: 'done', bytes, ms }, [bytes]);
        break;
      }
      case 'tile': {
        // A test hook: this helper never answers, as an engine stuck in a tile.
        if (data.hang) for (;;);
        const tile = await lupa.run_tile(data.task);
        reply({ type: 'tiled', tile }, [tile.data.buffer]);
        break;
      }
      case 'zip': {
        const zip = bufferOf(lupa.zip_files(data.names, data.files.map((f) => new Uint8Array(f))));
        reply({ type: 'zipped', zip }, [zip]);
        break;
      }
      default:
        throw Object.assign(new Error(`unknown message type ${data.type}`), { kind: 'backend' });
    }
  } catch (e) {
    reply({ type: 'error', error: errorOf(e), request: data.type });
  }
};

// Messages the checked bootstrap queued while it fetched and checked this module, in order.
for (const event of self.lupaQueued?.splice(0) ?? []) self.onmessage(event);
