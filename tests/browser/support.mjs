// What the browser test files share: Chromium's launch, PNG decoding and PSNR, the native CLI's
// reference output, and the paths they all use.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { PNG } from 'pngjs';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '../..');
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target');
export const LUPA_BIN = process.env.LUPA_BIN ?? path.join(TARGET, 'debug', 'lupa');
export const CHROMIUM = process.env.LUPA_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = path.join(HERE, 'artifacts');
export const IMAGES = path.join(ROOT, 'tests/fixtures/images');
// SwiftShader compiles every WGSL shader on the CPU: the first upscale is slow.
export const UPSCALE_TIMEOUT = 15 * 60 * 1000;
/** The test photo: a 64×48 crop of a real photo (tests/fixtures/images/SOURCES.md: CC0). */
export const PHOTO = path.join(IMAGES, 'chelsea_64x48.png');

export function decodePng(bytes) {
  return PNG.sync.read(bytes);
}

/** PSNR in dB of two decoded PNGs over RGB (Infinity when equal). */
export function psnr(a, b) {
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

/** The native CLI's upscale of `input` with `model` on the CPU (and the options in `args`, the
 * output named after `name`), decoded: the reference. */
export function cliReference(input, model, args = [], name = model) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const out = path.join(ARTIFACTS, `reference-${name}.png`);
  execFileSync(LUPA_BIN, ['upscale', input, '-o', out, '--model', model, ...args, '--backend', 'cpu', '-q'],
    { stdio: 'inherit' });
  return decodePng(fs.readFileSync(out));
}

/**
 * Chromium, headless, with a fresh profile (a folder pushed onto `profiles`, for the caller to
 * delete), and `options` for Playwright's launchPersistentContext.
 */
export async function launchChromium(profiles, extraArgs = [], options = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'lupa-chromium-'));
  profiles.push(profile);
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1100, height: 900 },
    ...options,
    args: [
      ...extraArgs,
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** The app's page: chooses `files`, waits for the plan, presses Upscale and waits for the whole
 * queue; returns the status line. */
export async function runQueue(page, files, timeout = UPSCALE_TIMEOUT) {
  await page.setInputFiles('#file', files);
  await page.waitForFunction(() => document.getElementById('plan').textContent !== '', null, { timeout: 60_000 });
  return upscaleQueued(page, timeout);
}

/** Presses Upscale and waits for the whole queue, which must end done; returns the status line. */
export async function upscaleQueued(page, timeout = UPSCALE_TIMEOUT) {
  await page.click('#go');
  await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout });
  const status = await page.textContent('#status');
  assert.equal(await page.getAttribute('body', 'data-state'), 'done', `${status}\n${page.logs?.join('\n')}`);
  return status;
}

/** Downloads the selected result; returns [suggested name, bytes]. */
export async function download(page, selector = '#download') {
  const [file] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  const saved = path.join(ARTIFACTS, `dl-${Date.now()}-${file.suggestedFilename()}`);
  await file.saveAs(saved);
  return [file.suggestedFilename(), fs.readFileSync(saved)];
}

/**
 * The app's development build (dist-dev/, or $LUPA_DIST) served locally, with Chromium on the CPU
 * backend by default, for the test files of one feature each:
 *
 *   const app = await serveApp();          // in before()
 *   const page = await app.open('cpu', '&mode=precision'); // waits until the engine is ready
 *   await app.close();                     // in after()
 */
export async function serveApp({ args = [], dist = process.env.LUPA_DIST ?? path.join(ROOT, 'dist-dev') } = {}) {
  const { createStaticServer } = await import('../../scripts/static-server.mjs');
  assert.ok(fs.existsSync(path.join(dist, 'index.html')), `no build in ${dist} (run scripts/build-web.sh --dev)`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const server = createStaticServer(dist);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  const profiles = [];
  const context = await launchChromium(profiles, args, { serviceWorkers: 'block' });
  await context.addInitScript(() => localStorage.removeItem('lupa-settings-v1'));
  return {
    base,
    context,
    /** Opens the app on `backend` (URL parameters in `extra`) and waits until it is ready. */
    async open(backend = 'cpu', extra = '') {
      const page = await context.newPage();
      page.logs = [];
      page.on('console', (m) => page.logs.push(`${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => page.logs.push(`pageerror: ${e.message}`));
      await page.goto(`${base}/?backend=${backend}${extra}`);
      await page.waitForSelector('body[data-state="ready"], body[data-state="error"]', { timeout: 5 * 60 * 1000 });
      assert.equal(await page.getAttribute('body', 'data-state'), 'ready',
        `engine did not start: ${await page.textContent('#status')}\n${page.logs.join('\n')}`);
      return page;
    },
    async close() {
      await context.close();
      server.close();
      for (const p of profiles) fs.rmSync(p, { recursive: true, force: true });
    },
  };
}
