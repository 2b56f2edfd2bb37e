// Browser measurements, in a fresh headless Chromium: Lupa's web worker or UpscalerJS upscaling
// PNGs one after the other, after a warm-up on a small one. Prints one JSON line:
//   {adapter, peakRssMb, results: [{ms, width, height}, ...], macsPerPixel (UpscalerJS only)}
// where ms is the time of each upscale (Lupa: the worker's performance.now() around the engine's run;
// UpscalerJS: the page's around upscale() until the tensor is read) and peakRssMb the peak resident
// size of Chromium's renderer plus its GPU process over the whole launch (see workPeakRssMb).
//
//   node bench.mjs '{"runner":"lupa","backend":"webgpu","model":"span-x4","warm":"warm.png",
//                    "inputs":[{"input":"in.png","output":"out.png"}],"dist":"../../../dist"}'
//
// `output` is optional: where to write that upscale's PNG.
// runner "lupa": backend webgpu|webgpu-burn|cpu|cpu-pool (webgpu-burn: Burn's conv instead of
// Lupa's kernel; cpu: one engine; cpu-pool: one per core), model a
// Lupa model id; needs the Trunk build (dist).
// runner "upscalerjs": backend webgl|webgpu|wasm|cpu, model esrgan-slim|esrgan-medium|esrgan-thick.
// Chromium: /usr/bin/chromium or $LUPA_CHROMIUM, with WebGPU and WebGL on SwiftShader where there
// is no GPU.

import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { createStaticServer } from '../../../scripts/static-server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.LUPA_CHROMIUM ?? '/usr/bin/chromium';

/** Serves page.js (an ES module importing /lupa/lupa.js) at /, the Trunk build under /lupa/ and
 * node_modules under /npm/. */
function createServer(dist) {
  const lupa = createStaticServer(dist);
  const npm = createStaticServer(path.join(HERE, 'node_modules'));
  const strip = (req, prefix) => {
    req.url = req.url.slice(prefix.length - 1);
  };
  return http.createServer((req, res) => {
    if (req.url === '/' || req.url === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><meta charset="utf-8"><title>Lupa bench</title><script type="module" src="/page.js"></script>');
    } else if (req.url === '/page.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      res.end(fs.readFileSync(path.join(HERE, 'page.js')));
    } else if (req.url.startsWith('/lupa/')) {
      strip(req, '/lupa/');
      lupa.emit('request', req, res);
    } else if (req.url.startsWith('/npm/')) {
      strip(req, '/npm/');
      npm.emit('request', req, res);
    } else {
      res.writeHead(404).end();
    }
  });
}

/**
 * Peak resident size (VmHWM, MB) of the Chromium processes that do the work: the renderer (the page
 * and its workers: wasm, JavaScript) plus the GPU process (WebGPU/WebGL, SwiftShader included).
 * Both are descendants of this process, told apart by their `--type=` switch.
 */
function workPeakRssMb() {
  const parent = new Map();
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      parent.set(Number(pid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // The process ended while we looked.
    }
  }
  const isDescendant = (pid) => {
    for (let p = parent.get(pid); p; p = parent.get(p)) if (p === process.pid) return true;
    return false;
  };
  let kb = 0;
  for (const pid of parent.keys()) {
    if (!isDescendant(pid)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!/--type=(renderer|gpu-process)/.test(cmdline)) continue;
      const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmHWM:'));
      kb += Number(line?.split(/\s+/)[1] ?? 0);
    } catch {
      // Gone.
    }
  }
  return kb / 1024;
}

/**
 * Multiply-adds per input pixel of an UpscalerJS model: every Conv2D's kernel size × in × out
 * channels, times the pixel factor of its input (×s² after UpSampling2D or a pixel shuffle).
 */
function upscalerMacsPerPixel(model) {
  const json = JSON.parse(fs.readFileSync(path.join(HERE, 'node_modules/@upscalerjs', model, 'models/x4/model.json'), 'utf8'));
  const shapes = new Map(json.weightsManifest.flatMap((g) => g.weights).map((w) => [w.name, w.shape]));
  const factor = new Map();
  let macs = 0;
  for (const layer of json.modelTopology.model_config.config.layers) {
    const inputs = (layer.inbound_nodes ?? []).flat().map((n) => n[0]);
    let f = Math.max(1, ...inputs.map((i) => factor.get(i) ?? 1));
    if (layer.class_name === 'UpSampling2D') f *= layer.config.size[0] * layer.config.size[1];
    if (layer.class_name.startsWith('PixelShuffle')) f *= 16;
    if (layer.class_name === 'Conv2D') {
      const k = shapes.get(`${layer.name}/kernel`);
      macs += k.reduce((a, b) => a * b, 1) * f;
    }
    factor.set(layer.name, f);
  }
  return macs;
}

async function measure(job) {
  const server = createServer(path.resolve(job.dist ?? path.join(HERE, '../../../dist')));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'lupa-bench-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--enable-unsafe-webgpu',
      '--enable-unsafe-swiftshader',
      '--use-angle=swiftshader',
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  try {
    const page = await context.newPage();
    const logs = [];
    page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    const args = {
      backend: job.backend,
      model: job.model,
      id: job.model,
      warm: fs.readFileSync(job.warm).toString('base64'),
      inputs: job.inputs.map(({ input }) => fs.readFileSync(input).toString('base64')),
    };
    const fn = { lupa: 'benchLupa', upscalerjs: 'benchUpscaler' }[job.runner];
    if (!fn) throw new Error(`unknown runner ${job.runner} (lupa or upscalerjs)`);
    let result;
    try {
      result = await page.evaluate(([name, a]) => window[name](a), [fn, args]);
    } catch (e) {
      // The first line says what went wrong; the console's last lines say where.
      const recent = logs.slice(-5).map((l) => l.slice(0, 200));
      throw new Error([e.message.split('\n')[0], ...recent].join('\n'));
    }
    const peakRssMb = workPeakRssMb();
    const results = result.results.map(({ ms, width, height, png }, i) => {
      const { output } = job.inputs[i];
      if (output) fs.writeFileSync(output, Buffer.from(png, 'base64'));
      return { ms, width, height };
    });
    const macsPerPixel = job.runner === 'upscalerjs' ? upscalerMacsPerPixel(job.model) : undefined;
    return { adapter: result.adapter, peakRssMb, results, macsPerPixel };
  } finally {
    await context.close();
    server.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

const job = JSON.parse(process.argv[2] ?? '{}');
try {
  console.log(JSON.stringify(await measure(job)));
} catch (e) {
  console.error(e.message);
  process.exit(1);
}
