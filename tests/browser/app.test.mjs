// Lupa's web app in a real browser: Debian's Chromium, headless, driven by playwright-core.
//
// On machines without a GPU, `--enable-unsafe-webgpu` gives Chromium a SwiftShader WebGPU adapter:
// real WebGPU, emulated on the CPU and slow, so the photo here is a 64×48 crop. The feature tests
// (modes, sizes, Smart, crop/fit/formats, transparency, batch) run on the wasm CPU backend.
//
// Needs: the development build in dist-dev/ (scripts/build-web.sh --dev, or $LUPA_DIST), the native
// `lupa` binary ($LUPA_BIN, default $CARGO_TARGET_DIR/debug/lupa) for the reference output, and
// /usr/bin/chromium ($LUPA_CHROMIUM). embed.test.mjs tests the release build in dist/.
// Writes screenshots and timings to tests/browser/artifacts/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import { createStaticServer } from '../../scripts/static-server.mjs';
import {
  ARTIFACTS, IMAGES, PHOTO, ROOT, UPSCALE_TIMEOUT, cliReference, decodePng, download, launchChromium, psnr, runQueue,
  upscaleQueued,
} from './support.mjs';

const DIST = path.resolve(process.env.LUPA_DIST ?? path.join(ROOT, 'dist-dev'));
const HOSTILE = path.join(ROOT, 'tests/fixtures/hostile');
const MODEL = 'span-x4';

const requests = []; // every request the browser made: {url, method, postData}
const timings = {};
let server;
let base;
let context; // Chromium with WebGPU (SwiftShader where there is no GPU)
const contexts = [];
const profiles = [];
let reference; // the native CLI's output, decoded

before(async () => {
  assert.ok(fs.existsSync(path.join(DIST, 'index.html')), `no build in ${DIST} (run scripts/build-web.sh --dev)`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });

  reference = cliReference(PHOTO, MODEL);

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

// Chromium with a fresh profile; every request any page or worker makes is recorded. The app
// runs without its service worker (as where there is none: insecure contexts), so that page.route
// sees every request; embed.test.mjs tests the service worker.
async function launch(extraArgs) {
  const launched = await launchChromium(profiles, extraArgs, { serviceWorkers: 'block' });
  // Every page starts from the defaults: no settings remembered from an earlier test's page
  // (the test of remembered settings uses a context of its own).
  await launched.addInitScript(() => localStorage.removeItem('lupa-settings-v1'));
  launched.on('request', (r) => requests.push({ url: r.url(), method: r.method(), postData: r.postData() }));
  contexts.push(launched);
  return launched;
}

// Opens the app and waits until its engine has started or failed to; the page either way.
async function openPage(backend, extra = '', ctx = context) {
  const page = await ctx.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  page.logs = logs;
  await page.goto(`${base}/?backend=${backend}${extra}`);
  await page.waitForSelector('body[data-state="ready"], body[data-state="error"]', { timeout: 5 * 60 * 1000 });
  return page;
}

async function openApp(backend, extra = '', ctx = context) {
  const page = await openPage(backend, extra, ctx);
  const state = await page.getAttribute('body', 'data-state');
  assert.equal(state, 'ready', `engine did not start: ${await page.textContent('#status')}\n${page.logs.join('\n')}`);
  return page;
}

/**
 * Puts the JS API at hand in `page` as `globalThis.lupaTest`: `Upscaler`, `input` (the test
 * photo's bytes), `png(result)` (a result's file as numbers, to compare in Node) and
 * `cpuReference(request, options)` (the photo upscaled on one CPU worker, as numbers).
 */
async function installApi(page) {
  await page.evaluate(async (bytes) => {
    const { Upscaler } = await import('./lupa.js');
    const input = new Uint8Array(bytes);
    const png = async (r) => [...new Uint8Array(await r.blob.arrayBuffer())];
    const cpuReference = async (request, options) => {
      const one = await Upscaler.create({ backend: 'cpu', workers: 1 });
      try {
        return await png(await one.upscale(input, request, options));
      } finally {
        one.dispose();
      }
    };
    globalThis.lupaTest = { Upscaler, input, png, cpuReference };
  }, [...fs.readFileSync(PHOTO)]);
}

async function upscalePhoto(page, label) {
  await page.selectOption('#mode', 'precision');
  await page.selectOption('#size', '4');
  const status = await runQueue(page, PHOTO);
  assert.equal(await page.getAttribute('#plan', 'data-models'), MODEL, 'Precision at 4x is SPAN x4');

  const progress = await page.$eval('#progress', (p) => [Number(p.dataset.done), Number(p.dataset.total)]);
  assert.ok(progress[1] >= 1 && progress[0] === progress[1], `progress ended at ${progress}`);

  await page.screenshot({ path: path.join(ARTIFACTS, `after-upscale-${label}.png`), fullPage: true });

  const [name, bytes] = await download(page);
  assert.equal(name, 'chelsea_64x48_256x192.png');
  fs.writeFileSync(path.join(ARTIFACTS, `download-${label}.png`), bytes);
  const png = decodePng(bytes);
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
  await page.waitForFunction(() => document.getElementById('plan').textContent !== '', null, { timeout: 60_000 });
  assert.match(await page.textContent('#plan'), /cannot read this file as an image/);
  await page.click('#go');
  await page.waitForSelector('body[data-state="error"]', { timeout: 60 * 1000 });
  assert.match(await page.textContent('#status'), /cannot read this file as an image/);
  assert.equal(await page.isEnabled('#go'), true, 'the failed file can be retried');
  // The page keeps working: a real image added after it is upscaled.
  await page.selectOption('#size', '2');
  await page.setInputFiles('#file', PHOTO);
  await page.click('#go');
  await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 5 * 60 * 1000 });
  assert.equal(await page.$eval('#queue li:last-child', (li) => li.dataset.state), 'done');
  await page.close();
});

test('a file chosen and Upscale pressed while the engine starts on WebGPU still gets its result', async () => {
  // On SwiftShader the engine takes seconds to start: the page must not say Ready early, and the
  // press must not be lost (Upscale stays disabled until the engine is up, then runs).
  const page = await context.newPage();
  page.logs = [];
  page.on('console', (m) => page.logs.push(`${m.type()}: ${m.text()}`));
  // Every status line shown, with the page's state at that moment.
  await page.addInitScript(() => {
    window.lupaStatusLog = [];
    new MutationObserver((mutations) => {
      const status = document.getElementById('status');
      if (status && mutations.some((m) => status.contains(m.target) || m.target === status)) {
        window.lupaStatusLog.push([document.body?.dataset.state ?? '', status.textContent]);
      }
    }).observe(document, { childList: true, characterData: true, subtree: true });
  });
  await page.goto(`${base}/?backend=webgpu&mode=precision&size=4`);
  await page.setInputFiles('#file', PHOTO);
  await page.click('#go', { timeout: 5 * 60 * 1000 }); // waits until the button is enabled
  await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: UPSCALE_TIMEOUT });
  assert.equal(await page.getAttribute('body', 'data-state'), 'done', `${await page.textContent('#status')}\n${page.logs.join('\n')}`);
  const png = decodePng((await download(page))[1]);
  assert.deepEqual([png.width, png.height], [256, 192]);
  const log = await page.evaluate(() => window.lupaStatusLog);
  const readyAt = log.findIndex(([state]) => state === 'ready');
  assert.ok(readyAt > 0, `the engine was starting when the file was chosen: ${JSON.stringify(log)}`);
  for (const [state, text] of log.slice(0, readyAt)) {
    assert.doesNotMatch(text, /Ready/, `status "${text}" while ${state}`);
  }
  await page.close();
});

test('a WebGPU device lost mid-job: the rest runs on the CPU, the result is right, the next job gets a new engine', async () => {
  const page = await openApp('webgpu');
  await installApi(page);
  const run = await page.evaluate(async () => {
    const { Upscaler, input, png, cpuReference } = globalThis.lupaTest;
    const request = { model: 'span-x2' };
    const alone = await cpuReference(request, { tile: 24 });
    const gpu = await Upscaler.create({ backend: 'webgpu' });
    // The test hook destroys the device after 2 tiles, as a driver reset would.
    const lost = await gpu.upscale(input, request, { tile: 24, loseDeviceAfterTile: 2 });
    const next = await gpu.upscale(input, request, { tile: 24 });
    const summary = (r) => ({ tiles: r.tiles, explanation: r.explanation, engineFailed: r.engineFailed });
    const result = {
      cpu: alone, lost: await png(lost), next: await png(next),
      lostInfo: summary(lost), nextInfo: summary(next), backend: gpu.backend.backend,
    };
    gpu.dispose();
    return result;
  });
  console.log('device lost:', JSON.stringify(run.lostInfo), 'then:', JSON.stringify(run.nextInfo));
  assert.equal(run.lostInfo.engineFailed, true, run.lostInfo.explanation);
  const counts = run.lostInfo.explanation.match(/The GPU failed during the job .*: (\d+) of (\d+) tiles were computed on the CPU instead\./);
  assert.ok(counts, run.lostInfo.explanation);
  assert.equal(Number(counts[2]), run.lostInfo.tiles);
  assert.equal(Number(counts[1]), run.lostInfo.tiles - 2, 'the tiles done before the loss are kept');
  assert.ok(run.lostInfo.tiles >= 4, `${run.lostInfo.tiles} tiles`);
  const [cpu, lost, next] = [run.cpu, run.lost, run.next].map((b) => decodePng(Buffer.from(b)));
  assert.deepEqual([lost.width, lost.height], [128, 96]);
  const db = psnr(lost, cpu);
  console.log(`recovered vs CPU: PSNR ${db.toFixed(1)} dB`);
  assert.ok(db >= 45, `the recovered result differs from an undisturbed run: ${db.toFixed(1)} dB`);
  // The next job runs on a new engine, on WebGPU again, undisturbed.
  assert.equal(run.backend, 'webgpu');
  assert.equal(run.nextInfo.engineFailed, false, run.nextInfo.explanation);
  assert.ok(psnr(next, cpu) >= 45);
  await page.close();
});

test('a WebGPU error the engine cannot survive (a simulated out-of-memory): the job runs again on the CPU', async () => {
  const page = await openApp('webgpu');
  await installApi(page);
  const run = await page.evaluate(async () => {
    const { Upscaler, input, png, cpuReference } = globalThis.lupaTest;
    const request = { model: 'span-x2' };
    const alone = await cpuReference(request);
    const gpu = await Upscaler.create({ backend: 'webgpu' });
    // The test hook makes the device report an uncaptured error after 2 tiles, as a driver out of
    // memory does; the engine dies of it.
    const failed = await gpu.upscale(input, request, { tile: 24, failDeviceAfterTile: 2 });
    const result = {
      cpu: alone, failed: await png(failed), explanation: failed.explanation,
      engineFailed: failed.engineFailed, backend: gpu.backend.backend, reason: gpu.backend.reason,
    };
    gpu.dispose();
    return result;
  });
  console.log('GPU error:', run.explanation, '| engine now:', run.backend, run.reason);
  assert.equal(run.engineFailed, true, run.explanation);
  assert.match(run.explanation, /The GPU engine crashed \(wgpu error: .*max buffer size.*\): the job ran again on the CPU\.$/);
  assert.equal(run.backend, 'cpu', 'the engine stays on the CPU');
  assert.match(run.reason, /The GPU engine crashed during a job/);
  const [cpu, failed] = [run.cpu, run.failed].map((b) => decodePng(Buffer.from(b)));
  assert.ok(psnr(failed, cpu) >= 45, 'the job run again on the CPU gives the CPU result');
  await page.close();
});

test('cancel stops an upscale between tiles', async () => {
  const page = await openApp('cpu', '&tile=16&mode=precision&size=4');
  await page.setInputFiles('#file', PHOTO);
  await page.waitForFunction(() => document.getElementById('plan').textContent !== '', null, { timeout: 60_000 });
  await page.click('#go');
  await page.waitForFunction(() => Number(document.getElementById('progress').dataset.done) >= 1, null, {
    timeout: 5 * 60 * 1000,
  });
  await page.click('#cancel');
  await page.waitForSelector('body[data-state="cancelled"], body[data-state="done"]', { timeout: 60 * 1000 });
  assert.equal(await page.getAttribute('body', 'data-state'), 'cancelled');
  const [done, total] = await page.$eval('#progress', (p) => [Number(p.dataset.done), Number(p.dataset.total)]);
  assert.ok(done < total, `cancelled at ${done} of ${total} tiles`);
  assert.equal(await page.$eval('#queue li', (li) => li.dataset.errorKind), 'cancelled', 'the row says why it stopped');
  await page.close();
});

test('the CPU worker pool: tiles shared by 3 workers equal one worker bit for bit; a crashed helper is replaced', async () => {
  const page = await openApp('cpu');
  const photo = fs.readFileSync(PHOTO).toString('base64');
  const cartoon = fs.readFileSync(path.join(IMAGES, 'cartoon_32x40.png')).toString('base64');
  // Runs each job on a fresh Upscaler with `workers` engines; returns each result's PNG (base64),
  // engines, tiles and the last progress event.
  const run = (workers, jobs) => page.evaluate(async ({ workers, jobs }) => {
    const { Upscaler } = await import('./lupa.js');
    const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)));
    const upscaler = await Upscaler.create({ backend: 'cpu', workers });
    try {
      const out = [];
      for (const { image, request, tile } of jobs) {
        let last = null;
        const done = await upscaler.upscale(bytes(image), request, { tile, onProgress: (e) => { if (e.phase === 'tiles') last = e; } });
        out.push({ png: b64(done.bytes), engines: done.engines, tiles: done.tiles, last });
      }
      return { engines: upscaler.backend.engines, out };
    } finally {
      upscaler.dispose();
    }
  }, { workers, jobs });
  const jobs = [
    // SPAN x4 in 16-px tiles: 4×3 = 12 tiles.
    { image: photo, request: { mode: 'precision', model: 'span-x4', scale: 4 }, tile: 16 },
    // Real-CUGAN 2x in 16-px tiles: every tile gets the coordinator's whole-image SE means.
    { image: cartoon, request: { mode: 'illustration', model: 'realcugan-se-x2-no-denoise', scale: 2 }, tile: 16 },
  ];
  const one = await run(1, jobs);
  const three = await run(3, jobs);
  assert.equal(one.engines, 1);
  assert.equal(three.engines, 3);
  for (const [i, job] of jobs.entries()) {
    const [a, b] = [one.out[i], three.out[i]];
    assert.equal(a.engines, 1);
    assert.equal(b.engines, 3, `job ${i}: both helpers were ready`);
    assert.ok(b.tiles >= 6, `job ${i}: ${b.tiles} tiles`);
    assert.equal(b.png, a.png, `${job.request.model}: 3 workers' PNG differs from one worker's`);
    assert.deepEqual([b.last.done, b.last.total], [b.tiles, b.tiles], 'one progress bar over every worker');
  }
  // Automatic tiles: the 64×48 photo is one tile for one worker, and strips for three, so that
  // the helpers have work (two strips: with SPAN's 16-px overlap a third would make the largest
  // tile larger); the same image to rounding (tiled equals untiled).
  const auto = [{ image: photo, request: { mode: 'precision', model: 'span-x2', scale: 2 } }];
  const [oneAuto, threeAuto] = [(await run(1, auto)).out[0], (await run(3, auto)).out[0]];
  assert.deepEqual([oneAuto.tiles, threeAuto.tiles], [1, 2], 'automatic tiles: cut for the engines');
  const db = psnr(...[oneAuto, threeAuto].map((o) => decodePng(Buffer.from(o.png, 'base64'))));
  console.log(`three strips against one tile: PSNR ${db.toFixed(1)} dB`);
  assert.ok(db >= 50, `three strips against one tile: ${db.toFixed(1)} dB`);

  // A crash: every helper throws on its first tile. Their tiles are run by the coordinator, the
  // result is the same, and the next job starts fresh helpers.
  const crashed = await page.evaluate(async ({ image, request, tile }) => {
    const { Upscaler } = await import('./lupa.js');
    const bytes = Uint8Array.from(atob(image), (c) => c.charCodeAt(0));
    const upscaler = await Upscaler.create({ backend: 'cpu', workers: 3 });
    await upscaler.upscale(bytes, request, { tile }); // the helpers are up
    window.lupaPoolTest = upscaler;
    return upscaler.backend.engines;
  }, jobs[0]);
  assert.equal(crashed, 3);
  const workers = page.workers();
  assert.ok(workers.length >= 3, `${workers.length} workers`);
  let closed = 0;
  for (const w of workers) w.on('close', () => { closed += 1; });
  for (const w of workers) {
    await w.evaluate(() => {
      const original = self.onmessage;
      let crashed = false;
      self.onmessage = (e) => {
        if (e.data?.type === 'tile' && !crashed) {
          crashed = true;
          throw new Error('injected crash');
        }
        return original(e);
      };
    });
  }
  const after = await page.evaluate(async ({ image, request, tile }) => {
    const upscaler = window.lupaPoolTest;
    const bytes = Uint8Array.from(atob(image), (c) => c.charCodeAt(0));
    const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)));
    const first = await upscaler.upscale(bytes, request, { tile });
    const second = await upscaler.upscale(bytes, request, { tile });
    upscaler.dispose();
    return { first: b64(first.bytes), second: b64(second.bytes), engines: [first.engines, second.engines] };
  }, jobs[0]);
  assert.ok(closed >= 2, `both crashed helpers were terminated (${closed} workers closed)`);
  assert.equal(after.first, one.out[0].png, 'the crashed helpers\' tiles were redone: same result');
  assert.equal(after.second, one.out[0].png);
  assert.deepEqual(after.engines, [3, 3], 'fresh helpers replaced the crashed ones');
  await page.close();
});

test('a CPU helper that hangs in a tile is stopped and its tile runs on the job’s worker; a job’s worker that hangs is replaced, in its first tile too', async () => {
  const page = await openPage('cpu');
  await installApi(page);
  const run = await page.evaluate(async () => {
    const { Upscaler, input, png, cpuReference } = globalThis.lupaTest;
    const request = { model: 'span-x2' };
    const alone = await cpuReference(request, { tile: 16 });
    const pool = await Upscaler.create({ backend: 'cpu', workers: 3 });
    const started = performance.now();
    // The test hook: the helper given tile 2 never answers; it is stopped after 1.5 s at the least.
    const hung = await pool.upscale(input, request, { tile: 16, hangHelperOnTile: 2, hangAfterMs: 1500 });
    const ms = performance.now() - started;
    const next = await pool.upscale(input, request, { tile: 16 });
    // The job's own worker hangs after 3 tiles: it is replaced, the call rejects, the next one runs.
    const stopped = await pool.upscale(input, request, { tile: 16, hangAfterTile: 3, hangAfterMs: 1500 })
      .then(() => 'finished', (e) => `${e.kind}: ${e.message}`);
    const again = await pool.upscale(input, request, { tile: 16 });
    // Hung in a job's first tile: measured against this engine's slowest tile rate so far.
    const firstStopped = await pool.upscale(input, request, { tile: 16, hangAfterTile: 0, hangAfterMs: 1500 })
      .then(() => 'finished', (e) => `${e.kind}: ${e.message}`);
    pool.dispose();
    // ... and on an engine that has run no tile yet: the first tile's multiply-adds at the floor
    // rate (about 0.1 GMAC / 0.05 GMAC/s: 2 s here).
    const fresh = await Upscaler.create({ backend: 'cpu', workers: 1 });
    const freshStarted = performance.now();
    const freshStopped = await fresh.upscale(input, request, { tile: 16, hangAfterTile: 0, hangAfterMs: 1500 })
      .then(() => 'finished', (e) => `${e.kind}: ${e.message}`);
    const freshMs = performance.now() - freshStarted;
    fresh.dispose();
    return { alone, hung: await png(hung), next: await png(next), again: await png(again), ms,
      tiles: hung.tiles, engines: [hung.engines, next.engines], stopped, firstStopped, freshStopped, freshMs };
  });
  console.log(`a helper hung on tile 2 of ${run.tiles}: the job took ${(run.ms / 1000).toFixed(1)} s; engines ${run.engines}`);
  assert.ok(run.tiles >= 8, `${run.tiles} tiles`);
  assert.deepEqual(run.hung, run.alone, 'the result with a hung helper equals one worker\'s bit for bit');
  assert.deepEqual(run.next, run.alone);
  assert.deepEqual(run.engines, [3, 3], 'the stuck helper is replaced at the next job');
  console.log(`the job's own worker made to hang: ${run.stopped}`);
  assert.match(run.stopped, /^backend: the engine stopped responding \(no tile done in \d+\.\d s\)$/);
  assert.deepEqual(run.again, run.alone, 'the next job runs on a new engine');
  console.log(`hung in the first tile: ${run.firstStopped}; on a fresh engine: ${run.freshStopped} after ${(run.freshMs / 1000).toFixed(1)} s`);
  assert.match(run.firstStopped, /^backend: the engine stopped responding \(no tile done in \d+\.\d s\)$/);
  assert.match(run.freshStopped, /^backend: the engine stopped responding \(no tile done in \d+\.\d s\)$/);
  await page.close();
});

test('every kind of error a user can meet reaches the page with its kind', async () => {
  const kindOf = (page, selector) => page.$eval(selector, (el) => el.dataset.errorKind ?? '');
  const failedWith = async (page, kind) => {
    await page.waitForSelector('body[data-state="error"]', { timeout: 5 * 60 * 1000 });
    const status = await page.textContent('#status');
    assert.equal(await kindOf(page, 'body'), kind, `${status}\n${page.logs.join('\n')}`);
    return status;
  };
  const planSays = async (page, kind) => {
    await page.waitForSelector('#plan[data-error-kind]', { timeout: 2 * 60 * 1000 });
    assert.equal(await kindOf(page, '#plan'), kind, await page.textContent('#plan'));
    assert.match(await page.textContent('#plan'), /^This will not work: /);
  };

  // bad-input: a text file named like an image, in the plan, the status and its row.
  let page = await openApp('cpu');
  await page.setInputFiles('#file', { name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('just text') });
  await planSays(page, 'bad-input');
  await page.click('#go');
  await failedWith(page, 'bad-input');
  assert.equal(await kindOf(page, '#queue li'), 'bad-input');
  await page.close();

  // limit: a 4097×4097 image at 8x is 32776×32776, more than the browser engine can hold.
  const blank = new PNG({ width: 4097, height: 4097 });
  const big = PNG.sync.write(blank, { colorType: 2, filterType: 0 });
  page = await openApp('cpu', '&mode=precision&size=8');
  await page.setInputFiles('#file', { name: 'blank.png', mimeType: 'image/png', buffer: big });
  await planSays(page, 'limit');
  await page.click('#go');
  await failedWith(page, 'limit');
  assert.equal(await kindOf(page, '#queue li'), 'limit');
  await page.close();

  // In a fresh profile (nothing cached), without WebGPU:
  const fresh = await launch([]);

  // weights: files that are not the weights the registry promises are refused, and not cached.
  await fresh.route('**/*.safetensors', (r) => r.fulfill({ status: 200, body: Buffer.from('not weights') }));
  page = await openApp('cpu', '&mode=precision&size=2', fresh);
  await page.setInputFiles('#file', PHOTO);
  await page.waitForFunction(() => document.getElementById('plan').textContent !== '', null, { timeout: 60_000 });
  await page.click('#go');
  await failedWith(page, 'weights');
  assert.equal(await kindOf(page, '#queue li'), 'weights');
  const cached = await page.evaluate(async () => (await (await caches.open('lupa-models-v1')).keys()).length);
  assert.equal(cached, 0, 'refused weights must not be cached');
  await page.close();
  await fresh.unroute('**/*.safetensors');

  // backend: WebGPU asked for where there is none; the engine does not start.
  page = await openPage('webgpu', '', fresh);
  const status = await failedWith(page, 'backend');
  assert.match(status, /WebGPU/);
  assert.equal(await page.isEnabled('#go'), false);
  await page.close();

  // registry: a models/index.json of a format the engine does not know (checked in wasm).
  const future = JSON.stringify({ format_version: 99, models: [] });
  await fresh.route('**/models/index.json', (r) => r.fulfill({ status: 200, contentType: 'application/json', body: future }));
  page = await openPage('cpu', '', fresh);
  assert.match(await failedWith(page, 'registry'), /format_version 99/);
  await page.close();
  await fresh.unroute('**/models/index.json');
});

// ---- features, on the wasm CPU backend ------------------------------------------------------

// Width and height of a WebP file (extended VP8X header, or a plain VP8L or VP8 bitstream).
function webpSize(bytes) {
  assert.equal(bytes.toString('latin1', 0, 4), 'RIFF');
  assert.equal(bytes.toString('latin1', 8, 12), 'WEBP');
  const chunk = bytes.toString('latin1', 12, 16);
  if (chunk === 'VP8X') return [bytes.readUIntLE(24, 3) + 1, bytes.readUIntLE(27, 3) + 1];
  if (chunk === 'VP8L') {
    const bits = bytes.readUInt32LE(21);
    return [(bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1];
  }
  assert.equal(chunk, 'VP8 ', `unexpected WebP chunk ${chunk}`);
  return [bytes.readUInt16LE(26) & 0x3fff, bytes.readUInt16LE(28) & 0x3fff];
}

// Names in a zip's central directory.
function zipNames(bytes) {
  const names = [];
  for (let i = 0; i + 46 <= bytes.length; i++) {
    if (bytes.readUInt32LE(i) !== 0x02014b50) continue;
    const length = bytes.readUInt16LE(i + 28);
    names.push(bytes.toString('utf8', i + 46, i + 46 + length));
    i += 45 + length;
  }
  return names;
}

test('Precision and Creative at 2x, 3x, 4x and 8x give the right sizes', async () => {
  const page = await openApp('cpu');
  for (const mode of ['precision', 'creative']) {
    for (const size of ['2', '3', '4', '8']) {
      await page.selectOption('#mode', mode);
      await page.selectOption('#size', size);
      const status = await runQueue(page, PHOTO);
      const [name, bytes] = await download(page);
      const png = decodePng(bytes);
      const s = Number(size);
      assert.deepEqual([png.width, png.height], [64 * s, 48 * s], `${mode} ${size}x`);
      assert.equal(name, `chelsea_64x48_${64 * s}x${48 * s}.png`);
      const models = await page.getAttribute('#plan', 'data-models');
      const expected = mode === 'precision' ? { 2: 'span-x2', 3: 'span-x4', 4: 'span-x4', 8: 'span-x4,span-x2' }
        : { 2: 'realesr-general-x4v3', 3: 'realesr-general-x4v3', 4: 'realesr-general-x4v3', 8: 'realesr-general-x4v3,span-x2' };
      assert.equal(models, expected[s], `${mode} ${size}x`);
      timings[`cpu-${mode}-x${size}`] = Number(await page.getAttribute('#result', 'data-ms'));
      console.log(`${mode} ${size}x: ${status}`);
    }
  }
  await page.screenshot({ path: path.join(ARTIFACTS, 'modes.png'), fullPage: true });
  await page.close();
});

test('an illustration with Real-CUGAN and clean-up; Smart shows its choice and can be overridden', async () => {
  const page = await openApp('cpu');
  // Smart recognises a UI screenshot and a cartoon before anything runs.
  await page.setInputFiles('#file', path.join(IMAGES, 'gimp_layer_new_200x150.png'));
  await page.waitForFunction(() => document.getElementById('plan').dataset.content === 'text', null, { timeout: 60_000 });
  assert.match(await page.textContent('#plan'), /Looks like text or a screenshot/);
  await page.reload();
  await page.waitForSelector('body[data-state="ready"]', { timeout: 5 * 60 * 1000 });
  await page.setInputFiles('#file', path.join(IMAGES, 'cartoon_kodim_128.png'));
  await page.waitForFunction(() => document.getElementById('plan').dataset.content === 'illustration', null, { timeout: 60_000 });
  assert.match(await page.textContent('#plan'), /Looks like an illustration.*realcugan-se-x4-no-denoise/);
  await page.screenshot({ path: path.join(ARTIFACTS, 'smart-choice.png'), fullPage: true });
  await page.reload();
  await page.waitForSelector('body[data-state="ready"]', { timeout: 5 * 60 * 1000 });

  // The user's choices: Illustration at 2x with strong clean-up on a small cartoon.
  await page.selectOption('#mode', 'illustration');
  await page.selectOption('#size', '2');
  await page.selectOption('#denoise', '3');
  await runQueue(page, path.join(IMAGES, 'cartoon_32x40.png'));
  assert.equal(await page.getAttribute('#plan', 'data-models'), 'realcugan-se-x2-denoise3x');
  const png = decodePng((await download(page))[1]);
  assert.deepEqual([png.width, png.height], [64, 80]);

  // Smart on a photo runs end to end (Creative 4x for a small photo).
  await page.selectOption('#mode', 'smart');
  await page.selectOption('#size', 'auto');
  await page.selectOption('#denoise', 'auto');
  await runQueue(page, PHOTO);
  assert.equal(await page.getAttribute('#plan', 'data-content'), 'photo');
  assert.equal(await page.getAttribute('#plan', 'data-mode'), 'creative');
  const smart = decodePng((await download(page))[1]);
  assert.deepEqual([smart.width, smart.height], [256, 192]);
  await page.close();
});

test('crop, fit to a box and save as WebP; AVIF and JPEG too', async () => {
  const page = await openApp('cpu');
  await page.selectOption('#mode', 'precision');
  await page.selectOption('#size', 'fit');
  await page.fill('#fit-width', '240');
  await page.fill('#fit-height', '135');
  await page.selectOption('#format', 'webp');
  await page.setInputFiles('#file', PHOTO);
  await page.click('#queue li .item-crop'); // the file's crop, in the crop editor's numbers
  for (const [id, value] of [['crop-x', '0'], ['crop-y', '6'], ['crop-w', '64'], ['crop-h', '36']]) {
    await page.fill(`#${id}`, value);
    await page.press(`#${id}`, 'Enter');
  }
  await page.click('#crop-done');
  await page.waitForFunction(() => /64×36/.test(document.getElementById('plan').textContent), null, { timeout: 60_000 });
  await upscaleQueued(page);
  assert.match(await page.textContent('#plan'), /span-x4 on 64×36, then Lanczos3 down to 240×135/);
  const [name, webp] = await download(page);
  assert.equal(name, 'chelsea_64x48_240x135.webp');
  assert.deepEqual(webpSize(webp), [240, 135]);

  for (const [format, check] of [
    ['avif', (b) => assert.equal(b.toString('latin1', 4, 12), 'ftypavif')],
    ['jpeg', (b) => assert.equal(b.readUInt16BE(0), 0xffd8)],
  ]) {
    await page.selectOption('#size', '2'); // a new file: no crop
    await page.selectOption('#format', format);
    await runQueue(page, PHOTO);
    const [file, bytes] = await download(page);
    assert.ok(file.endsWith(format === 'jpeg' ? '.jpg' : '.avif'), file);
    check(bytes);
  }
  await page.close();
});

test('settings are remembered between visits, the URL’s presets win, and Reset forgets them', async () => {
  const own = await launchChromium(profiles, []); // without the other tests' settings wipe
  contexts.push(own);
  const page = await own.newPage();
  const ready = () => page.waitForSelector('body[data-state="ready"]', { timeout: 5 * 60 * 1000 });
  const values = () => page.evaluate(() => Object.fromEntries(['mode', 'size', 'denoise', 'format', 'quality', 'backend']
    .map((id) => [id, document.getElementById(id).value])));
  await page.goto(`${base}/`);
  await ready();
  const defaults = await values();
  assert.equal(defaults.mode, 'smart');
  await page.selectOption('#mode', 'precision');
  await page.selectOption('#size', '3');
  await page.selectOption('#denoise', '2');
  await page.selectOption('#format', 'jpeg');
  await page.$eval('#quality', (q) => { q.value = '70'; q.dispatchEvent(new Event('change')); });
  await page.click('summary');
  await page.selectOption('#backend', 'cpu');
  await ready();
  const chosen = { mode: 'precision', size: '3', denoise: '2', format: 'jpeg', quality: '70', backend: 'cpu' };
  assert.deepEqual(await values(), chosen);

  await page.reload();
  await ready();
  assert.deepEqual(await values(), chosen, 'a new visit starts with the settings of the last');
  assert.equal(await page.getAttribute('body', 'data-backend'), 'cpu');

  await page.goto(`${base}/?mode=creative`);
  await ready();
  assert.deepEqual(await values(), { ...chosen, mode: 'creative' }, 'the URL preset wins, the rest remembered');

  await page.click('summary');
  await page.click('#reset-settings');
  await ready();
  assert.deepEqual(await values(), { ...defaults, backend: 'auto' });
  await page.goto(`${base}/`);
  await ready();
  assert.deepEqual(await values(), { ...defaults, backend: 'auto' }, 'Reset forgets the saved settings');
  await page.close();
});

test('a PNG with transparency keeps it', async () => {
  // The photo inside a fully transparent 8-pixel frame.
  const photo = decodePng(fs.readFileSync(PHOTO));
  const framed = new PNG({ width: 80, height: 64 });
  for (let y = 0; y < 64; y++) {
    for (let x = 0; x < 80; x++) {
      const o = (y * 80 + x) * 4;
      const inside = x >= 8 && x < 72 && y >= 8 && y < 56;
      const i = ((y - 8) * 64 + (x - 8)) * 4;
      for (let c = 0; c < 3; c++) framed.data[o + c] = inside ? photo.data[i + c] : 0;
      framed.data[o + 3] = inside ? 255 : 0;
    }
  }
  const page = await openApp('cpu');
  await page.selectOption('#mode', 'precision');
  await page.selectOption('#size', '2');
  await runQueue(page, { name: 'framed.png', mimeType: 'image/png', buffer: PNG.sync.write(framed) });
  const out = decodePng((await download(page))[1]);
  assert.deepEqual([out.width, out.height], [160, 128]);
  const alpha = (x, y) => out.data[(y * out.width + x) * 4 + 3];
  assert.equal(alpha(2, 2), 0, 'the frame stays transparent');
  assert.equal(alpha(80, 64), 255, 'the photo stays opaque');
  await page.close();
});

test('five files in one batch, each with its result, and all in one zip', async () => {
  const page = await openApp('cpu');
  await page.selectOption('#mode', 'precision');
  await page.selectOption('#size', '2');
  const files = ['chelsea_64x48.png', 'astronaut_face_40x32.png', 'cartoon_32x40.png', 'chelsea_64x48_exif6_srgb.jpg',
    'astronaut_128.png'].map((f) => path.join(IMAGES, f));
  const status = await runQueue(page, files);
  assert.equal(status, 'All 5 files done.');
  const states = await page.$$eval('#queue li', (rows) => rows.map((r) => r.dataset.state));
  assert.deepEqual(states, ['done', 'done', 'done', 'done', 'done']);
  // Each row has its own download.
  const [one] = await download(page, '#queue li:nth-child(2) .item-download');
  assert.equal(one, 'astronaut_face_40x32_80x64.png');
  await page.screenshot({ path: path.join(ARTIFACTS, 'batch.png'), fullPage: true });
  const [zipName, zip] = await download(page, '#zip');
  assert.equal(zipName, 'lupa-upscaled.zip');
  assert.deepEqual(zipNames(zip).sort(), [
    'astronaut_128_256x256.png', 'astronaut_face_40x32_80x64.png', 'cartoon_32x40_64x80.png',
    'chelsea_64x48_128x96.png', 'chelsea_64x48_exif6_srgb_128x96.png',
  ].sort());
  await page.close();
});

test('a sample of the hostile corpus in one batch: each row as tests/fixtures/hostile/expected.csv says', async () => {
  const page = await openApp('cpu', '&mode=precision&size=2');
  const sample = ['bomb_65535x65535.png', 'zeros_20000x20000.png', 'animated.webp', 'truncated.jpg', 'cmyk.jpg',
    'bitflip.webp', 'palette_trns.png'];
  await page.setInputFiles('#file', sample.map((f) => path.join(HOSTILE, f)));
  await page.waitForFunction(() => document.getElementById('plan').textContent !== '', null, { timeout: 60_000 });
  await page.click('#go');
  await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 5 * 60 * 1000 });
  assert.match(await page.textContent('#status'), /3 of 7 files failed; 4 done/);
  const rows = await page.$$eval('#queue li', (lis) => lis.map((li) => ({
    state: li.dataset.state, kind: li.dataset.errorKind ?? '', text: li.querySelector('.item-status').textContent,
  })));
  const row = (file) => rows[sample.indexOf(file)];
  for (const bomb of ['bomb_65535x65535.png', 'zeros_20000x20000.png']) {
    assert.equal(row(bomb).kind, 'limit', `${bomb}: ${row(bomb).text}`);
    assert.match(row(bomb).text, /more than the 1024 MiB Lupa decodes/);
  }
  assert.equal(row('bitflip.webp').kind, 'bad-input', row('bitflip.webp').text);
  assert.match(row('animated.webp').text, /^Done: 128×96 .*only its first frame/);
  assert.match(row('truncated.jpg').text, /^Done: 128×96 .*ends early/);
  assert.match(row('cmyk.jpg').text, /^Done: 128×96/);
  assert.match(row('palette_trns.png').text, /^Done: 64×80/);
  await page.close();
});

test('a batch of 50 images: cancel half way keeps every finished result, the rest run after; memory sampled', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lupa-batch-'));
  const files = Array.from({ length: 50 }, (_, i) => {
    const file = path.join(dir, `photo_${String(i).padStart(2, '0')}.png`);
    fs.copyFileSync(PHOTO, file);
    return file;
  });
  const page = await openApp('cpu', '&mode=precision&size=2');
  await page.setInputFiles('#file', files);
  await page.waitForFunction(() => document.getElementById('plan').textContent !== '', null, { timeout: 60_000 });
  await page.click('#go');
  await page.waitForFunction(() => document.querySelectorAll('#queue li[data-state="done"]').length >= 10, null,
    { timeout: 5 * 60 * 1000 });
  await page.click('#cancel');
  await page.waitForSelector('body[data-state="cancelled"]', { timeout: 60_000 });
  const rows = () => page.$$eval('#queue li', (lis) => lis.map((li) => li.dataset.state));
  const after = await rows();
  const finished = after.filter((s) => s === 'done').length;
  assert.ok(finished >= 10 && finished < 50, `${finished} of 50 done when cancelled`);
  assert.deepEqual(after.slice(0, finished), Array(finished).fill('done'), 'the files before the cancel are done');
  // Every finished result is whole: its download is the 128×96 PNG.
  const [name, bytes] = await download(page, '#queue li:first-child .item-download');
  assert.equal(name, 'photo_00_128x96.png');
  assert.deepEqual([decodePng(bytes).width, decodePng(bytes).height], [128, 96]);
  // Upscale again runs the files not done; the finished ones keep their results.
  await page.click('#go');
  await page.waitForSelector('body[data-state="done"]', { timeout: 10 * 60 * 1000 });
  assert.deepEqual(await rows(), Array(50).fill('done'));
  assert.match(await page.textContent('#status'), new RegExp(`All ${50 - finished} files done`));
  await page.close();
  fs.rmSync(dir, { recursive: true, force: true });

  // The same 50 jobs through the API on one engine: its memory after each, and the page's heap.
  const api = await openPage('cpu');
  await installApi(api);
  const samples = await api.evaluate(async () => {
    const { Upscaler, input } = globalThis.lupaTest;
    const upscaler = await Upscaler.create({ backend: 'cpu', workers: 1 });
    const out = [];
    for (let i = 0; i < 50; i++) {
      const r = await upscaler.upscale(input, { model: 'span-x2' });
      out.push({ width: r.width, engine: r.engineMemory, heap: performance.memory?.usedJSHeapSize ?? 0 });
    }
    upscaler.dispose();
    return out;
  });
  await api.close();
  assert.ok(samples.every((s) => s.width === 128));
  const mib = (b) => (b / 2 ** 20).toFixed(1);
  const [first, tenth, last] = [samples[0], samples[9], samples[49]];
  timings.batch_memory = { first, tenth, last };
  console.log(`50 jobs on one engine: wasm memory ${mib(first.engine)} MiB after the 1st, ${mib(tenth.engine)} `
    + `after the 10th, ${mib(last.engine)} after the 50th; page heap ${mib(first.heap)} → ${mib(last.heap)} MiB`);
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
