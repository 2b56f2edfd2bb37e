// Lupa's engine worker: runs the wasm engine (crates/lupa-web) off the main thread.
//
// Messages in:  {type: 'init', index, backend}    index: text of models/index.json
//               {type: 'load', id, weights}       weights: ArrayBuffer of the safetensors file
//               {type: 'upscale', id, input, tile} input: ArrayBuffer of the image file
//               {type: 'cancel'}
// Messages out: {type: 'ready', info} | {type: 'loaded', id} | {type: 'progress', done, total}
//               {type: 'done', png, width, height, tiles, tileSize, ms} | {type: 'cancelled'}
//               {type: 'error', message, request} | {type: 'panic', message}
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
        postMessage({ type: 'ready', info });
        break;
      }
      case 'load':
        lupa.load_model(data.id, new Uint8Array(data.weights));
        postMessage({ type: 'loaded', id: data.id });
        break;
      case 'upscale': {
        const started = performance.now();
        const result = await lupa.upscale(data.id, new Uint8Array(data.input), data.tile ?? 0,
          (done, total) => postMessage({ type: 'progress', done, total }));
        const ms = performance.now() - started;
        const png = result.png.buffer;
        postMessage({ type: 'done', png, width: result.width, height: result.height,
          tiles: result.tiles, tileSize: result.tileSize, ms }, [png]);
        break;
      }
      default:
        throw new Error(`unknown message type ${data.type}`);
    }
  } catch (e) {
    const message = errorText(e);
    if (data.type === 'upscale' && message === 'cancelled') postMessage({ type: 'cancelled' });
    else postMessage({ type: 'error', message, request: data.type });
  }
};
