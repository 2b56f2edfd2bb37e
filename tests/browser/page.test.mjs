// The page as a user meets it (issue 16): the time left and the rate, a queue that takes files at
// any time (rows removed and retried), a crop per file, and an accessibility check by axe-core.
// crop.test.mjs tests the crop editor's dragging, compare.test.mjs the comparison's zoom and pan.
// Runs the development build (dist-dev/) on the wasm CPU backend.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { ARTIFACTS, IMAGES, PHOTO, ROOT, UPSCALE_TIMEOUT, decodePng, download, runQueue, serveApp } from './support.mjs';

const ASTRONAUT = path.join(IMAGES, 'astronaut_128.png');
const HOSTILE = path.join(ROOT, 'tests/fixtures/hostile');
const CARTOON = path.join(IMAGES, 'cartoon_32x40.png');
let app;

before(async () => {
  app = await serveApp();
});

after(async () => {
  await app?.close();
});

/** Records every text `selector` shows from now on (a job on the CPU can be over in a second). */
async function recordTexts(page, selector) {
  await page.$eval(selector, (el) => {
    el.seen = [el.textContent];
    new MutationObserver(() => el.seen.push(el.textContent))
      .observe(el, { childList: true, characterData: true, subtree: true });
  });
  return () => page.$eval(selector, (el) => el.seen);
}

const finished = (page) => page.waitForSelector('body[data-state="done"], body[data-state="error"], body[data-state="cancelled"]',
  { timeout: UPSCALE_TIMEOUT });
/** Chooses `files` and waits for the plan line. */
async function choose(page, files) {
  await page.setInputFiles('#file', files);
  await page.waitForFunction(() => document.getElementById('plan').textContent !== '', null, { timeout: 60_000 });
}
/** Waits until the queue has `n` rows (files are read asynchronously once chosen). */
async function queueLength(page, n, what) {
  await page.waitForFunction((n) => document.querySelectorAll('#queue li').length === n, n, { timeout: 30_000 })
    .catch(async () => assert.fail(`${what}: ${(await rows(page)).length} rows, not ${n}`));
}
const rows = (page) => page.$$eval('#queue li', (lis) => lis.map((li) => ({
  name: li.querySelector('.item-name').textContent, state: li.dataset.state,
  status: li.querySelector('.item-status').textContent,
})));

test('a multi-tile job shows the time left by the progress bar and in its row; the done line gives the rate', async () => {
  const page = await app.open('cpu', '&mode=precision&size=2&tile=16&workers=1');
  await choose(page, ASTRONAUT); // 128×128 in 16-pixel tiles: 64 tiles
  const eta = await recordTexts(page, '#eta');
  const row = await recordTexts(page, '#queue li .item-status');
  await page.click('#go');
  await finished(page);
  const left = /^(about \d+ (s|min) left|under a second left)$/;
  assert.ok((await eta()).some((t) => left.test(t)), `no time left shown: ${(await eta()).join(' | ')}`);
  assert.ok((await row()).some((t) => /tile \d+ of 64, (about \d+ (s|min) left|under a second left)$/.test(t)),
    `no time left in the row: ${(await row()).slice(0, 5).join(' | ')}`);
  const [done] = await rows(page);
  assert.match(done.status, /^Done: 256×256 in \d+\.\d s \(\d+\.\d+ s per output megapixel\) on the CPU, 64 tiles\./);
  assert.equal(await page.textContent('#eta'), '', 'nothing left once done');

  // The same job again: before its first tile the estimate comes from the last job's rate.
  const again = await recordTexts(page, '#eta');
  await page.click('#go');
  await finished(page);
  assert.ok((await again()).some((t) => /left \(from the last job\)$/.test(t)), (await again()).join(' | '));
  await page.close();
});

test('files added while a batch runs join it; rows can be removed; a cancelled row can be retried', async () => {
  const page = await app.open('cpu', '&mode=precision&size=2&tile=16&workers=1');
  await choose(page, [ASTRONAUT, PHOTO]);
  await page.click('#go');
  await page.waitForFunction(() => Number(document.getElementById('progress').dataset.done) >= 1, null,
    { timeout: UPSCALE_TIMEOUT });
  await page.setInputFiles('#file', CARTOON); // mid-batch
  await queueLength(page, 3, 'the file joined the queue');
  await finished(page);
  assert.equal(await page.textContent('#status'), 'All 3 files done.');
  assert.deepEqual((await rows(page)).map((r) => r.state), ['done', 'done', 'done']);
  const [, cartoon] = await download(page, '#queue li:nth-child(3) .item-download');
  assert.deepEqual([decodePng(cartoon).width, decodePng(cartoon).height], [64, 80], 'the added file was upscaled');

  // Remove the second row; the others stay, with their results.
  await page.click('#queue li:nth-child(2) .item-remove');
  assert.deepEqual((await rows(page)).map((r) => r.name.split(' ')[0]), ['astronaut_128.png', 'cartoon_32x40.png']);

  // A new file, cancelled in its first tiles: its row offers Retry, which runs it to the end.
  await page.setInputFiles('#file', ASTRONAUT);
  await queueLength(page, 1, 'a finished batch is replaced by new files');
  await page.click('#go');
  await page.waitForFunction(() => Number(document.getElementById('progress').dataset.done) >= 1, null,
    { timeout: UPSCALE_TIMEOUT });
  await page.click('#cancel');
  await finished(page);
  assert.equal((await rows(page))[0].state, 'cancelled');
  assert.ok(await page.isVisible('#queue li .item-retry'), 'a cancelled row offers Retry');
  await page.click('#queue li .item-retry');
  await finished(page);
  const [retried] = await rows(page);
  assert.equal(retried.state, 'done', retried.status);
  assert.ok(!(await page.isVisible('#queue li .item-retry')), 'no Retry once done');
  await page.close();
});

test('each file of a batch keeps its own crop, and the plan line follows the crop being edited', async () => {
  const page = await app.open('cpu', '&mode=precision&size=2');
  await choose(page, [PHOTO, ASTRONAUT]);
  await page.click('#queue li:nth-child(2) .item-crop');
  await page.waitForSelector('#crop-box:not([hidden]) #crop-w');
  for (const [id, value] of [['crop-x', '10'], ['crop-y', '20'], ['crop-w', '50'], ['crop-h', '40']]) {
    await page.fill(`#${id}`, value);
    await page.press(`#${id}`, 'Enter');
  }
  await page.waitForFunction(() => /→ 100×80 PNG/.test(document.getElementById('plan').textContent), null,
    { timeout: 30_000 });
  assert.match(await page.textContent('#queue li:nth-child(2) .item-name'), /crop 50×40 at 10,20/);
  await page.click('#crop-done');
  await page.click('#go');
  await finished(page);
  const [, first] = await download(page, '#queue li:nth-child(1) .item-download');
  const [, second] = await download(page, '#queue li:nth-child(2) .item-download');
  assert.deepEqual([decodePng(first).width, decodePng(first).height], [128, 96], 'the first file: all of it');
  assert.deepEqual([decodePng(second).width, decodePng(second).height], [100, 80], 'the second: its crop');
  await page.close();
});

test('formats in: GIF (first frame, said), TIFF, AVIF through the browser, HEIC refused; lossy WebP out is smaller', async () => {
  const page = await app.open('cpu', '&mode=precision&size=2');
  // An AVIF made by the engine itself (which encodes AVIF but does not decode it).
  await page.selectOption('#format', 'avif');
  await runQueue(page, PHOTO);
  const [, avif] = await download(page);
  await page.selectOption('#format', 'png');
  const fixture = (name, mimeType) => ({ name, mimeType, buffer: fs.readFileSync(path.join(HOSTILE, name)) });
  const files = [
    fixture('animated.gif', 'image/gif'), fixture('photo.tiff', 'image/tiff'),
    { name: 'photo.avif', mimeType: 'image/avif', buffer: avif }, fixture('photo.heic', 'image/heic'),
  ];
  await page.setInputFiles('#file', files);
  await page.waitForFunction(() => document.querySelectorAll('#queue li').length === 4);
  await page.click('#go');
  await finished(page);
  const [gif, tiff, fromAvif, heic] = await rows(page);
  assert.match(gif.status, /^Done: 128×96 .*first frame/, gif.status);
  assert.match(tiff.status, /^Done: 128×96/, tiff.status);
  assert.match(fromAvif.status, /^Done: 256×192 .*Decoded by the browser/, fromAvif.status);
  assert.equal(heic.state, 'error');
  assert.match(heic.status, /photo\.heic|unknown format/, heic.status);
  assert.match(heic.status, /the browser cannot decode it either/, heic.status);
  await page.click('#queue li:nth-child(4) .item-remove'); // the next file replaces the batch

  // Lossy WebP (the browser's encoder, default quality) against the engine's lossless WebP.
  const sizes = {};
  for (const format of ['webp', 'webp-lossy']) {
    await page.selectOption('#format', format);
    await runQueue(page, ASTRONAUT);
    const [name, bytes] = await download(page);
    assert.equal(name, 'astronaut_128_256x256.webp');
    const chunks = bytes.toString('latin1');
    assert.equal(chunks.slice(8, 12), 'WEBP');
    assert.equal(chunks.includes('VP8L'), format === 'webp', `${format}: a lossless (VP8L) bitstream or not`);
    assert.equal(chunks.includes('VP8 '), format === 'webp-lossy', `${format}: a lossy (VP8) bitstream or not`);
    sizes[format] = bytes.length;
  }
  assert.equal(await page.$eval('#quality', (q) => q.value), '80', 'the lossy default quality');
  assert.ok(sizes['webp-lossy'] < sizes.webp / 2, `lossy ${sizes['webp-lossy']} B vs lossless ${sizes.webp} B`);
  await page.close();
});

test('the keyboard: Tab reaches the drop zone with a visible focus ring, and Enter or Space opens the file chooser', async () => {
  const page = await app.open('cpu');
  await page.keyboard.press('Tab');
  for (let i = 0; i < 20 && !(await page.evaluate(() => document.activeElement?.id === 'drop')); i++) {
    await page.keyboard.press('Tab');
  }
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'drop', 'Tab reaches the drop zone');
  const ring = await page.$eval('#drop', (el) => [el.matches(':focus-visible'), getComputedStyle(el).outlineStyle,
    getComputedStyle(el).outlineWidth]);
  assert.deepEqual(ring, [true, 'solid', '2px'], 'the focus is visible');
  // Listening from before the first key press: Playwright turns the chooser's interception on
  // asynchronously, so a waitForEvent started with the press can miss it.
  const choosers = [];
  page.on('filechooser', (chooser) => choosers.push(chooser));
  await page.waitForTimeout(500);
  for (const key of ['Enter', ' ']) {
    const before = choosers.length;
    await page.keyboard.press(key);
    for (let waited = 0; choosers.length === before && waited < 30_000; waited += 100) await page.waitForTimeout(100);
    assert.equal(choosers.length, before + 1, `${JSON.stringify(key)} opens the file chooser`);
    const chooser = choosers.at(-1);
    assert.equal(chooser.isMultiple(), true, 'for several files');
    await chooser.setFiles(PHOTO);
    await page.waitForFunction(() => document.activeElement?.id === 'drop', null, { timeout: 10_000 });
  }
  await page.waitForFunction(() => document.querySelectorAll('#queue li').length === 2); // one file each
  assert.match(await page.textContent('#status'), /^Ready/);
  await page.close();
});

test('accessibility: axe-core finds no violations on the page, before and after an upscale; screenshot', async () => {
  const axe = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  const page = await app.open('cpu', '&mode=precision&size=2');
  const check = async (when) => {
    await page.evaluate(axe); // through DevTools: the page's CSP forbids inline scripts
    const result = await page.evaluate(() => globalThis.axe.run(document, { resultTypes: ['violations'] }));
    const violations = result.violations.map((v) => `${v.id} (${v.impact}): ${v.help}: `
      + v.nodes.map((n) => n.target.join(' ')).join(', '));
    assert.deepEqual(violations, [], `axe, ${when}`);
  };
  await check('on arrival');
  await runQueue(page, [PHOTO, CARTOON]);
  await page.click('#queue li:nth-child(2) .item-crop');
  await page.waitForSelector('#crop-box:not([hidden])');
  await check('with results, the queue and the crop editor open');
  await page.screenshot({ path: path.join(ARTIFACTS, 'page-in-use.png'), fullPage: true });
  await page.close();
});
