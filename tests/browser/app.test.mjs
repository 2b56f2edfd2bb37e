// Lupa's web app in a real browser: Debian's Chromium, headless, driven by playwright-core.
//
// On machines without a GPU, `--enable-unsafe-webgpu` gives Chromium a SwiftShader WebGPU adapter:
// real WebGPU, emulated on the CPU and slow, so the photo here is a 64×48 crop.
//
// Needs: the Trunk build in dist/ (or $LUPA_DIST), the native `lupa` binary ($LUPA_BIN, default
// $CARGO_TARGET_DIR/debug/lupa) for the reference output, and /usr/bin/chromium ($LUPA_CHROMIUM).
// Writes screenshots and timings to tests/browser/artifacts/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { PNG } from 'pngjs';
import { createStaticServer } from '../../scripts/static-server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const DIST = path.resolve(process.env.LUPA_DIST ?? path.join(ROOT, 'dist'));
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target');
const LUPA_BIN = process.env.LUPA_BIN ?? path.join(TARGET, 'debug', 'lupa');
const CHROMIUM = process.env.LUPA_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(HERE, 'artifacts');
const PHOTO = path.join(ROOT, 'tests/fixtures/images/chelsea_64x48.png');
const MODEL = 'span-x4';
// SwiftShader compiles every WGSL shader on the CPU: the first upscale is slow.
const UPSCALE_TIMEOUT = 15 * 60 * 1000;

const requests = []; // every request the browser made: {url, method, postData}
const timings = {};
let server;
let base;
let context; // Chromium with WebGPU (SwiftShader where there is no GPU)
const contexts = [];
const profiles = [];
let reference; // the native CLI's output, decoded

function decodePng(bytes) {
  return PNG.sync.read(bytes);
}

function psnr(a, b) {
  assert.equal(a.width, b.width);
  assert.equal(a.height, b.height);
  let sum = 0;
  let n = 0;
  for (let i = 0; i < a.data.length; i += 4) {
    for (let c = 0; c < 3; c++) {
      const d = a.data[i + c] - b.data[i + c];
      sum += d * d;
      n += 1;
    }
  }
  const mse = sum / n;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

before(async () => {
  assert.ok(fs.existsSync(path.join(DIST, 'index.html')), `no Trunk build in ${DIST} (run trunk build)`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });

  const refPath = path.join(ARTIFACTS, `reference-${MODEL}.png`);
  execFileSync(LUPA_BIN, ['upscale', PHOTO, '-o', refPath, '--model', MODEL, '--backend', 'cpu', '-q'], {
    stdio: 'inherit',
  });
  reference = decodePng(fs.readFileSync(refPath));

  server = createStaticServer(DIST);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;

  context = await launch(['--enable-unsafe-webgpu']);
});

after(async () => {
  fs.writeFileSync(path.join(ARTIFACTS, 'timings.json'), JSON.stringify(timings, null, 2));
  for (const c of contexts) await c.close();
  server?.close();
  for (const p of profiles) fs.rmSync(p, { recursive: true, force: true });
});

// Chromium with a fresh profile; every request any page or worker makes is recorded.
async function launch(extraArgs) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'lupa-chromium-'));
  profiles.push(profile);
  const launched = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1100, height: 900 },
    args: [
      ...extraArgs,
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  launched.on('request', (r) => requests.push({ url: r.url(), method: r.method(), postData: r.postData() }));
  contexts.push(launched);
  return launched;
}

async function openApp(backend, extra = '', ctx = context) {
  const page = await ctx.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  page.logs = logs;
  await page.goto(`${base}/?backend=${backend}${extra}`);
  await page.waitForSelector('body[data-state="ready"], body[data-state="error"]', { timeout: 5 * 60 * 1000 });
  const state = await page.getAttribute('body', 'data-state');
  assert.equal(state, 'ready', `engine did not start: ${await page.textContent('#status')}\n${logs.join('\n')}`);
  return page;
}

async function upscalePhoto(page, label) {
  await page.setInputFiles('#file', PHOTO);
  assert.equal(await page.inputValue('#scale'), '4');
  assert.equal(await page.inputValue('#model'), MODEL, 'the default 4x model is the fidelity one');
  await page.click('#go');
  await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: UPSCALE_TIMEOUT });
  const status = await page.textContent('#status');
  assert.equal(await page.getAttribute('body', 'data-state'), 'done', `${status}\n${page.logs.join('\n')}`);

  const progress = await page.$eval('#progress', (p) => [Number(p.dataset.done), Number(p.dataset.total)]);
  assert.ok(progress[1] >= 1 && progress[0] === progress[1], `progress ended at ${progress}`);

  await page.screenshot({ path: path.join(ARTIFACTS, `after-upscale-${label}.png`), fullPage: true });

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  assert.equal(download.suggestedFilename(), `chelsea_64x48-${MODEL}.png`);
  const file = path.join(ARTIFACTS, `download-${label}.png`);
  await download.saveAs(file);
  const png = decodePng(fs.readFileSync(file));
  assert.deepEqual([png.width, png.height], [256, 192], 'a 64×48 photo upscaled 4x');

  const db = psnr(png, reference);
  const ms = Number(await page.getAttribute('#result', 'data-ms'));
  timings[label] = { ms, psnr_vs_cli_db: db, status };
  console.log(`${label}: ${status} PSNR vs native CLI ${db.toFixed(2)} dB`);
  assert.ok(db >= 45, `${label} result differs from the native CLI: PSNR ${db.toFixed(2)} dB < 45 dB`);
  return status;
}

test('WebGPU: a real photo is upscaled 4x with SPAN, downloaded, and matches the native CLI', async () => {
  const page = await openApp('webgpu');
  assert.equal(await page.getAttribute('body', 'data-backend'), 'webgpu');
  const engine = await page.textContent('#engine');
  console.log(engine);
  timings.webgpu_adapter = engine;
  await upscalePhoto(page, 'webgpu');
  // Again on the same engine: shaders are compiled now, so this is the steady-state time.
  await upscalePhoto(page, 'webgpu-warm');
  await page.close();
});

test('CPU fallback: the same upscale on the wasm CPU backend, weights from Cache Storage', async () => {
  const before = requests.length;
  const page = await openApp('cpu');
  assert.equal(await page.getAttribute('body', 'data-backend'), 'cpu');
  await upscalePhoto(page, 'cpu');
  const downloads = requests.slice(before).filter((r) => r.url.includes('.safetensors'));
  assert.deepEqual(downloads, [], 'the second visit must load the weights from the cache');
  await page.close();
});

test('auto falls back to the CPU where WebGPU has no adapter, and still upscales', async () => {
  // Without --enable-unsafe-webgpu, headless Chromium on a GPU-less machine has navigator.gpu but
  // no adapter: what a user with a blocklisted or missing GPU gets.
  const noGpu = await launch([]);
  const page = await openApp('auto', '', noGpu);
  assert.equal(await page.getAttribute('body', 'data-backend'), 'cpu');
  assert.match(await page.textContent('#engine'), /CPU .*WebGPU is unavailable/);
  await upscalePhoto(page, 'auto-fallback');
  await page.close();
});

test('a file that is not an image gets a clear error, and the page keeps working', async () => {
  const page = await openApp('cpu');
  await page.setInputFiles('#file', { name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('just text') });
  await page.click('#go');
  await page.waitForSelector('body[data-state="error"]', { timeout: 60 * 1000 });
  assert.match(await page.textContent('#status'), /cannot read this file as an image/);
  assert.equal(await page.isEnabled('#go'), true);
  await page.close();
});

test('cancel stops an upscale between tiles', async () => {
  const page = await openApp('cpu', '&tile=16');
  await page.setInputFiles('#file', PHOTO);
  await page.click('#go');
  await page.waitForFunction(() => Number(document.getElementById('progress').dataset.done) >= 1, null, {
    timeout: 5 * 60 * 1000,
  });
  await page.click('#cancel');
  await page.waitForSelector('body[data-state="cancelled"], body[data-state="done"]', { timeout: 60 * 1000 });
  assert.equal(await page.getAttribute('body', 'data-state'), 'cancelled');
  const [done, total] = await page.$eval('#progress', (p) => [Number(p.dataset.done), Number(p.dataset.total)]);
  assert.ok(done < total, `cancelled at ${done} of ${total} tiles`);
  await page.close();
});

test('privacy: the browser requested nothing but the app’s own static files', () => {
  assert.ok(requests.length > 0);
  for (const r of requests) {
    if (r.url.startsWith('blob:') || r.url.startsWith('data:')) continue;
    const url = new URL(r.url);
    assert.equal(url.origin, base, `request to another origin: ${r.url}`);
    assert.equal(r.method, 'GET', `${r.method} ${r.url}`);
    assert.equal(r.postData, null, `request with a body: ${r.url}`);
    const file = path.join(DIST, decodeURIComponent(url.pathname));
    assert.ok(fs.existsSync(file), `request for something that is not a file of the app: ${r.url}`);
  }
});
