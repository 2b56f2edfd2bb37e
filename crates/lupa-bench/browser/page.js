// The benchmark page (an ES module): one upscale by Lupa (its real bridge and web worker from the
// Trunk build, timed in the worker) or by UpscalerJS (timed in the page with performance.now()).
// Driven by bench.mjs through `page.evaluate`; the server maps /lupa/ to the Trunk build and /npm/ to
// this folder's node_modules.

import { Upscaler } from '/lupa/lupa.js';

const b64ToBytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));

async function bytesToB64(bytes) {
  const blob = new Blob([bytes]);
  const url = await new Promise((resolve) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.readAsDataURL(blob);
  });
  return url.slice(url.indexOf(',') + 1);
}

// --- Lupa -----------------------------------------------------------------------------------

/**
 * Upscales `warm`, then each of `inputs` (PNG bytes, base64) with model `id` on `backend`
 * (webgpu | webgpu-burn: Burn's conv | cpu: one engine | cpu-pool: the CPU worker pool, one engine
 * per core), through Lupa's
 * own bridge (lupa.js). Returns the adapter and, per input, the time in ms (the coordinating
 * worker's, around the engine's run), the size and the PNG (base64).
 */
window.benchLupa = async ({ backend, id, warm, inputs }) => {
  const pool = backend === 'cpu-pool';
  // webgpu-burn: WebGPU with Burn's own convolution instead of Lupa's kernel.
  const burn = backend === 'webgpu-burn';
  const upscaler = await Upscaler.create({
    base: '/lupa/',
    backend: pool ? 'cpu' : burn ? 'webgpu' : backend,
    workers: pool ? 'auto' : 1,
    convolution: burn ? 'burn' : 'lupa',
  });
  try {
    const spec = upscaler.index.models.find((m) => m.id === id);
    if (!spec) throw new Error(`no model ${id} in the Lupa build`);
    await upscaler.warmup(id);
    const request = { mode: 'precision', model: id, scale: spec.scale, format: 'png' };
    await upscaler.upscale(b64ToBytes(warm), request);
    const results = [];
    for (const input of inputs) {
      const done = await upscaler.upscale(b64ToBytes(input), request);
      const png = await bytesToB64(new Uint8Array(done.bytes));
      results.push({ ms: done.ms, width: done.width, height: done.height, png });
    }
    const { backend: used, adapter, engines } = upscaler.backend;
    const workers = used === 'cpu' ? `, ${engines} worker${engines > 1 ? 's' : ''}` : '';
    return { adapter: `${used} (${adapter}${workers})`, results };
  } finally {
    upscaler.dispose();
  }
};

// --- UpscalerJS -----------------------------------------------------------------------------

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.append(s);
  });
}

const UPSCALER_MODELS = {
  'esrgan-slim': 'ESRGANSlim4x',
  'esrgan-medium': 'ESRGANMedium4x',
  'esrgan-thick': 'ESRGANThick4x',
};

async function decode(b64) {
  const bitmap = await createImageBitmap(new Blob([b64ToBytes(b64)], { type: 'image/png' }));
  return window.tf.tidy(() => window.tf.browser.fromPixels(bitmap, 3));
}

/**
 * Upscales `warm`, then each of `inputs` 4x with UpscalerJS `model` on tfjs `backend`
 * (webgl|webgpu|wasm|cpu); whole images up to 256×256, patches above. Times `upscale` until its
 * tensor is read.
 */
window.benchUpscaler = async ({ backend, model, warm, inputs }) => {
  const npm = '/npm';
  await loadScript(`${npm}/@tensorflow/tfjs/dist/tf.min.js`);
  if (backend === 'wasm') {
    await loadScript(`${npm}/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js`);
    window.tf.wasm.setWasmPaths(`${npm}/@tensorflow/tfjs-backend-wasm/dist/`);
  }
  if (backend === 'webgpu') {
    // tfjs-backend-webgpu 4.11 (the version UpscalerJS 1.0 pins) calls GPUAdapter.requestAdapterInfo(),
    // which browsers replaced by the GPUAdapter.info attribute.
    if (self.GPUAdapter && !GPUAdapter.prototype.requestAdapterInfo) {
      GPUAdapter.prototype.requestAdapterInfo = function requestAdapterInfo() {
        return Promise.resolve(this.info);
      };
    }
    await loadScript(`${npm}/@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js`);
  }
  await loadScript(`${npm}/@upscalerjs/default-model/dist/umd/index.min.js`);
  await loadScript(`${npm}/upscaler/dist/browser/umd/upscaler.js`);
  const global = UPSCALER_MODELS[model];
  if (!global) throw new Error(`unknown UpscalerJS model ${model}`);
  await loadScript(`${npm}/@upscalerjs/${model}/dist/umd/models/${model}/src/x4/index.js`);
  const tf = window.tf;
  if (!(await tf.setBackend(backend))) throw new Error(`tfjs backend ${backend} is unavailable`);
  await tf.ready();
  const upscaler = new window.Upscaler({
    model: { ...window[global], path: `${npm}/@upscalerjs/${model}/models/x4/model.json` },
  });
  await upscaler.getModel();
  const run = async (b64) => {
    const pixels = await decode(b64);
    const started = performance.now();
    // Whole images above 256×256 run tfjs's wasm heap out of memory ("memory access out of
    // bounds" at 1024×1024): there UpscalerJS's own tiling runs, 256-px patches with 16 px padding.
    const [h, w] = pixels.shape;
    const patches = h * w > 256 * 256 ? { patchSize: 256, padding: 16 } : {};
    const out = await upscaler.upscale(pixels, { output: 'tensor', ...patches });
    const data = await out.data();
    const ms = performance.now() - started;
    pixels.dispose();
    return { ms, out, data };
  };
  (await run(warm)).out.dispose();
  const results = [];
  for (const input of inputs) {
    const { ms, out, data } = await run(input);
    const [height, width] = out.shape;
    out.dispose();
    results.push({ ms, width, height, png: await bytesToB64(await encodePng(data, width, height)) });
  }
  return { adapter: `tfjs ${tf.version.tfjs} ${tf.getBackend()}`, results };
};

/** PNG bytes of an RGB float tensor's data (0–255), rounded to 8 bits. */
async function encodePng(data, width, height) {
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgba[i] = Math.round(data[j]);
    rgba[i + 1] = Math.round(data[j + 1]);
    rgba[i + 2] = Math.round(data[j + 2]);
    rgba[i + 3] = 255;
  }
  const canvas = new OffscreenCanvas(width, height);
  canvas.getContext('2d').putImageData(new ImageData(rgba, width, height), 0, 0);
  return new Uint8Array(await (await canvas.convertToBlob({ type: 'image/png' })).arrayBuffer());
}
