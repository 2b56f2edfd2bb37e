// Lupa's engine worker: runs the wasm engine (crates/lupa-web) off the main thread.
//
// Messages in:  {type: 'init', index, backend}    index: text of models/index.json
//               {type: 'load', id, weights}       weights: ArrayBuffer of the safetensors file
//               {type: 'plan', input, request}    input: ArrayBuffer of the image file;
//                                                 request: the job (see crates/lupa-web engine.rs)
//               {type: 'run', input, request, tile}
//               {type: 'zip', names, files}       files: ArrayBuffers
//               {type: 'cancel'}
// Messages out: {type: 'ready', info} | {type: 'loaded', id} | {type: 'planned', plan}
//               {type: 'progress', done, total, pass, passes}
//               {type: 'done', bytes, mime, extension, width, height, tiles, explanation, ms}
//               {type: 'zipped', zip} | {type: 'cancelled'}
//               {type: 'error', message, request} | {type: 'panic', message}
// Every message in may carry a `requestId`; the reply to it (all but 'progress') carries the same one.
// After 'panic' the engine is dead: the page must start a new worker.
import init, * as lupa from './lupa-web.js';

self.lupaReportPanic = (message) => postMessage({ type: 'panic', message });

const ready = init({ module_or_path: new URL('./lupa-web_bg.wasm', import.meta.url) });

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

function errorText(e) {
  if (e instanceof Error) return e.message;
  return String(e);
}

self.onmessage = async ({ data }) => {
  const reply = (message, transfer = []) => postMessage({ ...message, requestId: data.requestId }, transfer);
  if (data.type === 'cancel') {
    // Handled at once, even while an upscale is running: the engine checks between tiles.
    lupa.cancel();
    return;
  }
  try {
    await ready;
    switch (data.type) {
      case 'init': {
        const info = JSON.parse(await lupa.start_engine(data.index, data.backend));
        if (info.backend === 'webgpu') info.adapter = await describeAdapter(info.adapter);
        reply({ type: 'ready', info });
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
        const result = await lupa.run_job(new Uint8Array(data.input), JSON.stringify(data.request),
          data.tile ?? 0, (done, total, pass, passes) => postMessage({ type: 'progress', done, total, pass, passes }));
        const ms = performance.now() - started;
        const bytes = result.bytes.buffer;
        reply({ type: 'done', bytes, mime: result.mime, extension: result.extension, width: result.width,
          height: result.height, tiles: result.tiles, explanation: result.explanation, ms }, [bytes]);
        break;
      }
      case 'zip': {
        const zip = lupa.zip_files(data.names, data.files.map((f) => new Uint8Array(f))).buffer;
        reply({ type: 'zipped', zip }, [zip]);
        break;
      }
      default:
        throw new Error(`unknown message type ${data.type}`);
    }
  } catch (e) {
    const message = errorText(e);
    if (data.type === 'run' && message === 'cancelled') reply({ type: 'cancelled' });
    else reply({ type: 'error', message, request: data.type });
  }
};
