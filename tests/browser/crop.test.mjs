// The crop editor (web/crop.js, issue 16): a rectangle drawn, moved and resized through real
// pointer events (mouse, and touch through Chromium's DevTools protocol), the aspect presets, the
// keyboard, the numbers clamped to the image, and the cropped upscale equal to the CLI's --crop.
// Runs the development build (dist-dev/) on the wasm CPU backend.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PHOTO, cliReference, decodePng, download, psnr, serveApp, upscaleQueued } from './support.mjs';

// PHOTO is 64×48.
let app;
let page;

before(async () => {
  app = await serveApp();
  page = await app.open('cpu', '&mode=precision&size=2');
  await page.setViewportSize({ width: 1100, height: 1400 }); // the editor and its drags in view
  await page.setInputFiles('#file', PHOTO);
  await page.click('#queue li .item-crop');
  await page.waitForFunction(() => document.getElementById('crop-w').value === '64', null, { timeout: 30_000 });
});

after(async () => {
  await app?.close();
});

/** The crop as the editor's numbers say: [x, y, w, h]. */
const numbers = () => page.$$eval(['#crop-x', '#crop-y', '#crop-w', '#crop-h'].join(','),
  (inputs) => inputs.map((i) => Number(i.value)));

/** The screen point of image pixel (x, y) of the editor's 64×48 image. */
async function screen(x, y) {
  const box = await page.locator('.crop-image').boundingBox();
  return [box.x + (x * box.width) / 64, box.y + (y * box.height) / 48];
}

/** A mouse drag between two image pixels, in steps (pointer events with the button down). */
async function drag(from, to) {
  const [fx, fy] = await screen(...from);
  const [tx, ty] = await screen(...to);
  await page.mouse.move(fx, fy);
  await page.mouse.down();
  await page.mouse.move(tx, ty, { steps: 5 });
  await page.mouse.up();
}

/** A mouse drag of the rectangle's handle `name` to image pixel `to`: [x, y], or [x, null] (or
 * [null, y]) to move it along one axis only. */
async function dragHandle(name, [x, y]) {
  const box = await page.locator(`.crop-handle[data-handle="${name}"]`).boundingBox();
  const [hx, hy] = [box.x + box.width / 2, box.y + box.height / 2];
  const [tx, ty] = await screen(x ?? 0, y ?? 0);
  await page.mouse.move(hx, hy);
  await page.mouse.down();
  await page.mouse.move(x === null ? hx : tx, y === null ? hy : ty, { steps: 4 });
  await page.mouse.up();
}

async function reset() {
  await page.selectOption('#crop-aspect', 'free');
  await page.click('#crop-clear');
  assert.deepEqual(await numbers(), [0, 0, 64, 48]);
}

test('the editor shows the image enlarged, with the whole image as the crop', async () => {
  const box = await page.locator('.crop-image').boundingBox();
  assert.ok(box.width >= 320, `a 64-pixel image is enlarged to be cropped by hand: ${box.width} px wide`);
  assert.ok(Math.abs(box.width / box.height - 64 / 48) < 0.01, 'its aspect ratio kept');
  assert.match(await page.textContent('#crop-box h2'), /^Crop chelsea_64x48\.png$/);
  assert.match(await page.textContent('#crop-size'), /whole image, 64×48/);
  // The handles on the image's corners are whole, inside the stage's padding.
  const stage = await page.locator('.crop-stage').boundingBox();
  for (const name of ['nw', 'se']) {
    const h = await page.locator(`.crop-handle[data-handle="${name}"]`).boundingBox();
    assert.ok(h.x >= stage.x && h.y >= stage.y && h.x + h.width <= stage.x + stage.width
      && h.y + h.height <= stage.y + stage.height, `the ${name} handle is not clipped`);
  }
  assert.equal(await page.textContent('#queue li .item-name'), 'chelsea_64x48.png (64×48)');
});

test('dragging on the image draws the crop; the row and the plan line follow', async () => {
  await reset();
  await drag([8, 8], [40, 32]);
  assert.deepEqual(await numbers(), [8, 8, 32, 24]);
  assert.match(await page.textContent('#queue li .item-name'), /crop 32×24 at 8,8$/);
  assert.match(await page.textContent('#crop-size'), /^Crop 32×24 at 8,8 of 64×48\.$/);
  await page.waitForFunction(() => / 64×48 PNG\.$/.test(document.getElementById('plan').textContent), null,
    { timeout: 30_000 }); // 32×24 at 2×
  // Dragged up and left of where it started: the rectangle flips, from the same corner.
  await drag([40, 40], [20, 30]);
  assert.deepEqual(await numbers(), [20, 30, 20, 10]);
  // Past the image's edge: clamped to it.
  await drag([50, 10], [90, -20]);
  assert.deepEqual(await numbers(), [50, 0, 14, 10]);
});

test('a drag inside the rectangle moves it, held inside the image', async () => {
  await reset();
  await drag([8, 8], [40, 32]);
  await drag([20, 20], [30, 25]);
  assert.deepEqual(await numbers(), [18, 13, 32, 24]);
  await drag([30, 25], [80, 80]);
  assert.deepEqual(await numbers(), [32, 24, 32, 24], 'stopped at the bottom-right corner');
});

test('the handles resize from the opposite corner or edge', async () => {
  await reset();
  await drag([8, 8], [40, 32]);
  // The bottom-right handle to pixel (60, 44): the top-left corner stays.
  await dragHandle('se', [60, 44]);
  assert.deepEqual(await numbers(), [8, 8, 52, 36]);
  // The left edge to x = 20: the right edge (60) and the height stay.
  await dragHandle('w', [20, null]);
  assert.deepEqual(await numbers(), [20, 8, 40, 36]);
});

test('aspect presets hold the crop to 1:1, 4:3 and 16:9 while it is drawn and resized', async () => {
  await reset();
  await page.selectOption('#crop-aspect', '1:1');
  assert.deepEqual(await numbers(), [8, 0, 48, 48], 'choosing 1:1: the largest square, centred');
  await drag([4, 4], [40, 20]); // wider than tall: the larger side wins
  assert.deepEqual(await numbers(), [4, 4, 36, 36]);
  // The right edge dragged left to x = 20: the height follows.
  await dragHandle('e', [20, null]);
  assert.deepEqual(await numbers(), [4, 4, 16, 16]);
  await drag([44, 10], [70, 70]); // past the image: the largest square that fits from (44, 10)
  assert.deepEqual(await numbers(), [44, 10, 20, 20]);
  for (const [aspect, ratio] of [['4:3', 4 / 3], ['16:9', 16 / 9]]) {
    await page.click('#crop-clear');
    await page.selectOption('#crop-aspect', aspect);
    await drag([2, 2], [50, 40]);
    const [, , w, h] = await numbers();
    assert.ok(Math.abs(w / h - ratio) < 0.05, `${aspect}: ${w}×${h}`);
    assert.ok(w >= 48, `${aspect}: the drag's larger side wins: ${w}×${h}`);
  }
});

test('the keyboard moves (1 px, 10 with Shift) and resizes (Alt) the focused rectangle', async () => {
  await reset();
  await drag([8, 8], [40, 32]);
  await page.focus('.crop-rect');
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('ArrowDown');
  assert.deepEqual(await numbers(), [9, 9, 32, 24]);
  await page.keyboard.press('Shift+ArrowRight');
  assert.deepEqual(await numbers(), [19, 9, 32, 24]);
  await page.keyboard.press('Shift+ArrowRight');
  await page.keyboard.press('Shift+ArrowRight');
  assert.deepEqual(await numbers(), [32, 9, 32, 24], 'held inside the image');
  await page.keyboard.press('Alt+ArrowLeft');
  await page.keyboard.press('Alt+ArrowDown');
  assert.deepEqual(await numbers(), [32, 9, 31, 25]);
});

test('typed numbers apply on Enter, clamped to the image', async () => {
  await reset();
  for (const [id, value] of [['crop-x', '10'], ['crop-y', '5'], ['crop-w', '999'], ['crop-h', '20']]) {
    await page.fill(`#${id}`, value);
    await page.press(`#${id}`, 'Enter');
  }
  assert.deepEqual(await numbers(), [10, 5, 54, 20], 'the width clamped to what is left of the image');
  await page.fill('#crop-x', '-4');
  await page.press('#crop-x', 'Enter');
  assert.deepEqual(await numbers(), [0, 5, 54, 20]);
  await page.click('#crop-clear');
  assert.equal(await page.textContent('#queue li .item-name'), 'chelsea_64x48.png (64×48)', 'no crop left');
});

test('a one-finger touch drag draws the crop', async () => {
  await reset();
  const cdp = await page.context().newCDPSession(page);
  const [fx, fy] = await screen(16, 12);
  const [tx, ty] = await screen(48, 36);
  const touch = (type, x, y) => cdp.send('Input.dispatchTouchEvent',
    { type, touchPoints: type === 'touchEnd' ? [] : [{ x, y, id: 1 }] });
  await touch('touchStart', fx, fy);
  for (let i = 1; i <= 5; i++) await touch('touchMove', fx + ((tx - fx) * i) / 5, fy + ((ty - fy) * i) / 5);
  await touch('touchEnd');
  await cdp.detach();
  assert.deepEqual(await numbers(), [16, 12, 32, 24]);
});

test('the cropped upscale equals the CLI with the same --crop', async () => {
  await reset();
  await drag([8, 6], [40, 30]);
  assert.deepEqual(await numbers(), [8, 6, 32, 24]);
  await page.click('#crop-done');
  assert.equal(await page.isHidden('#crop-box'), true);
  await upscaleQueued(page);
  const [name, bytes] = await download(page);
  assert.equal(name, 'chelsea_64x48_64x48.png');
  assert.match(await page.textContent('#queue li .item-status'), /span-x2 on 32×24/, 'Precision 2x: span-x2');
  const cli = cliReference(PHOTO, 'span-x2', ['--crop', '8,6,32,24'], 'span-x2-crop');
  const db = psnr(decodePng(bytes), cli);
  assert.ok(db >= 45, `the browser's cropped upscale matches the CLI's: ${db.toFixed(1)} dB`);
});
