// The before/after comparison (web/compare.js, issue 16): fit, the zoom buttons and 1:1, the wheel
// about the cursor, the mouse drag that pans, the split line dragged by mouse and by touch, the
// two-finger pinch (touch through Chromium's DevTools protocol), the keyboard, both halves locked
// together (a cropped result too), and, with the display limit forced down (?previewlimit=100), the
// visible region drawn from the file instead of the result's <img>, compared pixel by pixel with
// the download. Runs the development build (dist-dev/) on the wasm CPU backend.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PHOTO, decodePng, download, runQueue, serveApp } from './support.mjs';

// PHOTO is 64×48: its 2× result 128×96.
const W = 128;
const H = 96;
let app;
let page;

before(async () => {
  app = await serveApp();
  page = await app.open('cpu', '&mode=precision&size=2');
  await page.setViewportSize({ width: 1100, height: 1700 }); // the whole comparison in view
  await runQueue(page, [PHOTO]);
  await page.waitForFunction(() => document.getElementById('after').naturalWidth === 128
    && document.getElementById('before').naturalWidth === 64, null, { timeout: 30_000 });
});

after(async () => {
  await app?.close();
});

/** The view (compare.js: result pixel (x, y) at (tx + s·x, ty + s·y) in the viewport), the
 * viewport's size and its top-left corner on the page. */
async function view(p = page) {
  return p.$eval('#compare', (c) => {
    const r = c.getBoundingClientRect();
    const [tx, ty] = c.dataset.pan.split(',').map(Number);
    return { s: Number(c.dataset.zoom), tx, ty, vw: c.clientWidth, vh: c.clientHeight,
      ox: r.left + c.clientLeft, oy: r.top + c.clientTop, mode: c.dataset.mode };
  });
}

const rect = (selector, p = page) => p.$eval(selector, (e) => {
  const r = e.getBoundingClientRect();
  return { x: r.x, y: r.y, width: r.width, height: r.height };
});
const level = () => page.$eval('#zoom-level', (o) => o.value);
const near = (a, b, tolerance, what) => assert.ok(Math.abs(a - b) <= tolerance, `${what}: ${a} vs ${b}`);

/** The result's pixel (x, y) on the page, by the view. */
const onPage = (v, x, y) => [v.ox + v.tx + v.s * x, v.oy + v.ty + v.s * y];

/** Asserts that #after lies where the view says, and #before exactly over it (crop null). */
async function assertLocked(v) {
  const a = await rect('#after');
  const b = await rect('#before');
  const [x, y] = onPage(v, 0, 0);
  near(a.x, x, 0.01, '#after left');
  near(a.y, y, 0.01, '#after top');
  near(a.width, W * v.s, 0.01, '#after width');
  near(a.height, H * v.s, 0.01, '#after height');
  for (const k of ['x', 'y', 'width', 'height']) near(b[k], a[k], 0.01, `#before ${k} equals #after ${k}`);
}

async function fit() {
  await page.click('#zoom-fit');
  const v = await view();
  near(v.s, Math.min(v.vw / W, v.vh / H), 1e-9, 'fit');
  return v;
}

test('a new result is shown fitted and centred, the original exactly under it', async () => {
  const v = await view();
  assert.equal(v.mode, 'image');
  assert.equal(v.vw, 1050);
  near(v.vh, Math.min(1700 * 0.7, (1050 * H) / W), 1, 'the viewport takes the result shape');
  const s = Math.min(v.vw / W, v.vh / H);
  near(v.s, s, 1e-9, 'fit');
  near(v.tx, Math.round((v.vw - W * s) / 2), 0, 'centred across');
  near(v.ty, Math.round((v.vh - H * s) / 2), 0, 'centred down');
  assert.equal(await level(), `Fit (${Math.round(s * 100)} %)`);
  await assertLocked(v);
  assert.equal(await page.isHidden('#preview-note'), true);
  assert.equal(await page.isHidden('#region'), true);
  assert.equal(await page.getAttribute('#result', 'data-width'), '128');
  assert.equal(await page.getAttribute('#result', 'data-height'), '96');
});

test('the buttons zoom by 1.5 about the centre; 1:1 is one result pixel per pixel; Fit goes back', async () => {
  const f = await fit();
  const centre = [(f.vw / 2 - f.tx) / f.s, (f.vh / 2 - f.ty) / f.s]; // the result pixel in the middle
  await page.click('#zoom-in');
  let v = await view();
  near(v.s, f.s * 1.5, 1e-9, 'zoomed in by 1.5');
  assert.equal(await level(), `${Math.round(v.s * 100)} %`);
  near(v.tx + v.s * centre[0], v.vw / 2, 0.5, 'the centre stays across');
  near(v.ty + v.s * centre[1], v.vh / 2, 0.5, 'the centre stays down');
  await assertLocked(v);
  await page.click('#zoom-out');
  near((await view()).s, f.s, 1e-9, 'zoomed out again');
  await page.click('#zoom-1');
  v = await view();
  assert.equal(v.s, 1, 'one result pixel per CSS pixel at devicePixelRatio 1');
  assert.equal(await level(), '100 %');
  assert.equal((await rect('#after')).width, W);
  assert.equal(await page.$eval('#compare', (c) => c.classList.contains('pixelated')), true);
  for (let i = 0; i < 20 && !(await page.isDisabled('#zoom-in')); i++) await page.click('#zoom-in');
  assert.equal((await view()).s, 16 * f.s, 'at most 16 × the greater of fit and 1:1, and then + is disabled');
  await fit();
  assert.match(await level(), /^Fit \(\d+ %\)$/);
});

test('the wheel zooms about the cursor', async () => {
  await fit();
  await page.click('#zoom-in'); // larger than the viewport both ways: no edge holds the zoom back
  const v = await view();
  const [px, py] = [Math.round(v.ox + 300), Math.round(v.oy + 200)]; // a wheel event's position is whole pixels
  const under = [(px - v.ox - v.tx) / v.s, (py - v.oy - v.ty) / v.s];
  await page.mouse.move(px, py);
  await page.mouse.wheel(0, -300);
  await page.waitForFunction((s) => Number(document.getElementById('compare').dataset.zoom) > s, v.s);
  const z = await view();
  near(z.s, v.s * Math.exp(300 * 0.0015), 1e-6, 'zoomed in by the wheel');
  const [qx, qy] = onPage(z, ...under);
  near(qx, px, 0.5, 'the pixel under the cursor stays there across');
  near(qy, py, 0.5, 'and down');
  await page.mouse.wheel(0, 300);
  await page.waitForFunction((s) => Number(document.getElementById('compare').dataset.zoom) < s, z.s);
  near((await view()).s, v.s, 1e-6, 'zoomed out again');
});

test('a mouse drag pans by its delta, held so that the result covers the viewport', async () => {
  await fit();
  await page.click('#zoom-in');
  const v = await view();
  const [x, y] = [v.ox + 400, v.oy + 300];
  await page.mouse.move(x, y);
  await page.mouse.down();
  await page.mouse.move(x - 60, y - 40, { steps: 5 });
  await page.mouse.up();
  let p = await view();
  assert.deepEqual([p.s, p.tx, p.ty], [v.s, v.tx - 60, v.ty - 40], 'panned by the mouse delta');
  await assertLocked(p);
  await page.mouse.move(x, y);
  await page.mouse.down();
  await page.mouse.move(x + 2000, y + 2000, { steps: 5 });
  await page.mouse.up();
  p = await view();
  assert.deepEqual([p.tx, p.ty], [0, 0], 'the top-left corner held at the viewport top-left corner');
  await page.mouse.move(x, y);
  await page.mouse.down();
  await page.mouse.move(x - 3000, y - 3000, { steps: 5 });
  await page.mouse.up();
  p = await view();
  assert.deepEqual([p.tx, p.ty], [p.vw - W * p.s, p.vh - H * p.s].map(Math.round), 'and the bottom-right one');
  await assertLocked(p);
});

test('the split line dragged by the mouse moves the slider, and the original is cut there', async () => {
  await fit();
  const v = await view();
  const d = await rect('.divider-handle');
  await page.mouse.move(d.x + d.width / 2, d.y + d.height / 2);
  await page.mouse.down();
  await page.mouse.move(v.ox + 0.25 * v.vw, d.y, { steps: 5 });
  await page.mouse.up();
  near(Number(await page.inputValue('#slider')), 25, 0.01, 'the slider follows');
  const clip = await rect('#before-clip');
  near(clip.x, v.ox, 0.01, 'the cut starts at the left edge');
  near(clip.width, 0.25 * v.vw, 0.01, 'the original is cut at the line');
  near((await rect('#divider')).x + 1, v.ox + 0.25 * v.vw, 0.01, 'the line is there');
  assert.deepEqual(await view(), v, 'no pan or zoom');
  // The line stays put on the screen while the images move under it.
  await page.click('#zoom-in');
  near((await rect('#before-clip')).width, 0.25 * v.vw, 0.01, 'zoomed: the cut stays');
  // The slider, from the keyboard, moves the line (1 % a key).
  await page.focus('#slider');
  await page.keyboard.press('ArrowRight');
  near(Number(await page.inputValue('#slider')), 26, 0.01, 'the slider moved');
  near((await rect('#before-clip')).width, 0.26 * v.vw, 0.01, 'the cut follows the slider');
  await page.$eval('#slider', (s) => { s.value = '50'; s.dispatchEvent(new Event('input', { bubbles: true })); });
});

test('touch: one finger drags the split line; two fingers pinch, zooming about their midpoint', async () => {
  const v = await fit();
  const cdp = await page.context().newCDPSession(page);
  const touch = (type, points = []) => cdp.send('Input.dispatchTouchEvent',
    { type, touchPoints: points.map(([x, y], id) => ({ x, y, id })) });
  try {
    const d = await rect('.divider-handle');
    const [fx, fy] = [d.x + d.width / 2, d.y + d.height / 2];
    const tx = v.ox + 0.75 * v.vw;
    await touch('touchStart', [[fx, fy]]);
    for (let i = 1; i <= 5; i++) await touch('touchMove', [[fx + ((tx - fx) * i) / 5, fy]]);
    await touch('touchEnd');
    near(Number(await page.inputValue('#slider')), 75, 0.01, 'the slider follows the finger');
    near((await rect('#before-clip')).width, 0.75 * v.vw, 0.01, 'the cut follows');
    assert.deepEqual(await view(), v, 'the finger on the line moves the line alone');

    // The fingers' midpoint at the middle across (where fit leaves a margin, the result stays
    // centred) and below the middle: the result pixel under it stays under it.
    const [mx, my] = [v.ox + v.vw / 2, v.oy + v.vh / 2 + 60];
    const under = [(mx - v.ox - v.tx) / v.s, (my - v.oy - v.ty) / v.s];
    await touch('touchStart', [[mx - 50, my]]);
    await touch('touchStart', [[mx - 50, my], [mx + 50, my]]);
    for (let i = 1; i <= 5; i++) await touch('touchMove', [[mx - 50 - 10 * i, my], [mx + 50 + 10 * i, my]]);
    await touch('touchEnd');
    const z = await view();
    near(z.s, v.s * 2, 1e-9, 'twice the distance, twice the zoom');
    const [qx, qy] = onPage(z, ...under);
    near(qx, mx, 0.5, 'the pixel under the midpoint stays there across');
    near(qy, my, 0.5, 'and down');
    await assertLocked(z);
    // One finger pans.
    await touch('touchStart', [[mx, my]]);
    for (let i = 1; i <= 4; i++) await touch('touchMove', [[mx - 10 * i, my - 5 * i]]);
    await touch('touchEnd');
    const p = await view();
    assert.deepEqual([p.s, p.tx, p.ty], [z.s, z.tx - 40, z.ty - 20], 'panned by the finger');
  } finally {
    await cdp.detach();
    await page.$eval('#slider', (s) => { s.value = '50'; s.dispatchEvent(new Event('input', { bubbles: true })); });
  }
});

test('the keyboard on the comparison: arrows pan, + and - zoom, 0 fits, 1 is 1:1', async () => {
  const f = await fit();
  await page.focus('#compare');
  await page.keyboard.press('+');
  const z = await view();
  near(z.s, f.s * 1.5, 1e-9, '+ zooms in');
  await page.keyboard.press('ArrowLeft');
  await page.keyboard.press('ArrowUp');
  let v = await view();
  assert.deepEqual([v.tx, v.ty], [z.tx + 40, z.ty + 40], 'the arrows show more of the left and the top');
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('ArrowDown');
  v = await view();
  assert.deepEqual([v.tx, v.ty], [z.tx, z.ty - 40]);
  await page.keyboard.press('-');
  near((await view()).s, f.s, 1e-9, '- zooms out');
  await page.keyboard.press('1');
  assert.equal((await view()).s, 1, '1 is 1:1');
  await page.keyboard.press('0');
  assert.deepEqual(await view(), f, '0 fits');
});

test('a cropped result: the crop of the original lies exactly under the result, zoomed or not', async () => {
  await page.click('#queue li .item-crop');
  await page.waitForSelector('#crop-box:not([hidden])');
  for (const [id, value] of [['crop-x', '16'], ['crop-y', '12'], ['crop-w', '32'], ['crop-h', '24']]) {
    await page.fill(`#${id}`, value);
    await page.press(`#${id}`, 'Enter');
  }
  await page.click('#crop-done');
  await page.click('#go');
  await page.waitForFunction(() => document.getElementById('after').naturalWidth === 64, null, { timeout: 120_000 });
  assert.equal(await page.getAttribute('body', 'data-state'), 'done', await page.textContent('#status'));
  assert.equal(await page.getAttribute('#result', 'data-width'), '64');
  for (const zoom of ['#zoom-fit', '#zoom-in']) {
    await page.click(zoom);
    const v = await view();
    const a = await rect('#after');
    const b = await rect('#before');
    // 32×24 original pixels at (16, 12) became the 64×48 result: 2 result pixels per original one.
    near(a.x, v.ox + v.tx, 0.01, `${zoom}: #after left`);
    near(a.width, 64 * v.s, 0.01, `${zoom}: #after width`);
    near(b.x + 16 * 2 * v.s, a.x, 0.01, `${zoom}: the crop's left edge on the result's`);
    near(b.y + 12 * 2 * v.s, a.y, 0.01, `${zoom}: the crop's top edge on the result's`);
    near(b.width, 64 * 2 * v.s, 0.01, `${zoom}: the original, 2× the result's scale`);
    near(b.height, 48 * 2 * v.s, 0.01, `${zoom}: its height`);
  }
});

test('a result over the display limit shows the visible region drawn from its file, else the original; never a blank', async () => {
  const limited = await app.open('cpu', '&mode=precision&size=2&previewlimit=100');
  try {
    await limited.setViewportSize({ width: 1100, height: 1700 });
    await runQueue(limited, [PHOTO]);
    await limited.waitForFunction(() => document.getElementById('compare').dataset.mode === 'region'
      && !document.getElementById('region').hidden, null, { timeout: 30_000 });
    assert.equal(await limited.isHidden('#after'), true, 'the result is not given to an <img>');
    assert.equal(await limited.getAttribute('#after', 'src'), null);
    assert.match(await limited.textContent('#preview-note'), /larger than the browser can display whole.*the part in view.*download is complete/s);
    assert.equal(await limited.isVisible('#preview-note'), true);
    const [, bytes] = await download(limited);
    const png = decodePng(bytes);
    assert.deepEqual([png.width, png.height], [W, H]);

    // Each result pixel's centre, where the view puts it on the page, shows that pixel's colour.
    const check = async (what) => {
      const v = await view(limited);
      const samples = [];
      for (let y = 0; y < H; y += 7) {
        for (let x = 0; x < W; x += 5) {
          const [px, py] = onPage(v, x + 0.5, y + 0.5);
          if (px > v.ox + 1 && px < v.ox + v.vw - 1 && py > v.oy + 1 && py < v.oy + v.vh - 1) samples.push([x, y, px, py]);
        }
      }
      assert.ok(samples.length >= 20, `${what}: ${samples.length} pixels in view`);
      const colours = await limited.$eval('#region', (c, points) => {
        const r = c.getBoundingClientRect();
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return points.map(([, , px, py]) => {
          const i = (Math.floor(((py - r.top) * c.height) / r.height) * c.width + Math.floor(((px - r.left) * c.width) / r.width)) * 4;
          return [data[i], data[i + 1], data[i + 2], data[i + 3]];
        });
      }, samples);
      let worst = 0;
      samples.forEach(([x, y], k) => {
        const i = (y * W + x) * 4;
        assert.equal(colours[k][3], 255, `${what}: pixel ${x},${y} drawn (opaque)`);
        for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(colours[k][c] - png.data[i + c]));
      });
      assert.ok(worst <= 2, `${what}: the region differs from the download by up to ${worst}`);
      return v;
    };
    const f = await check('fitted');
    assert.equal(await limited.getAttribute('#region', 'data-region'), `0,0,${W},${H}`, 'fitted: all of it');

    // Zoomed in and panned: a smaller region, redrawn once the view rests.
    await limited.click('#zoom-in');
    await limited.click('#zoom-in');
    const v = await view(limited);
    const [x, y] = [v.ox + 500, v.oy + 300];
    await limited.mouse.move(x, y);
    await limited.mouse.down();
    await limited.mouse.move(x + 150, y + 100, { steps: 3 });
    await limited.mouse.up();
    const p = await view(limited);
    assert.ok(p.s > f.s * 2 && p.tx !== v.tx, 'zoomed and panned');
    const region = [Math.floor(-p.tx / p.s), Math.floor(-p.ty / p.s)];
    region.push(Math.min(Math.ceil((p.vw - p.tx) / p.s), W) - region[0], Math.min(Math.ceil((p.vh - p.ty) / p.s), H) - region[1]);
    assert.ok(region[2] < W && region[3] < H, `a part of the result in view: ${region}`);
    await limited.waitForFunction((r) => document.getElementById('region').dataset.region === r, region.join(','),
      { timeout: 10_000 });
    await check('zoomed and panned');
    const canvas = await rect('#region', limited);
    near(canvas.width, region[2] * p.s, 0.5, 'the drawing is at the screen scale');

    // A browser that cannot cut the region out either: the original, enlarged, with a note.
    await limited.evaluate(() => { globalThis.createImageBitmap = () => Promise.reject(new Error('too large')); });
    await limited.click('#zoom-out');
    await limited.waitForFunction(() => document.getElementById('compare').dataset.mode === 'original', null,
      { timeout: 10_000 });
    assert.match(await limited.textContent('#preview-note'), /the original is shown, enlarged.*download is complete/s);
    assert.equal(await limited.isHidden('#region'), true);
    assert.equal(await limited.isHidden('#slider'), true, 'no split to move');
    const o = await view(limited);
    near((await rect('#before-clip', limited)).width, o.vw, 0.01, 'the original across the whole viewport');
    const b = await rect('#before', limited);
    near(b.x, o.ox + o.tx, 0.01, 'where the result would be');
    near(b.width, W * o.s, 0.01, 'at its size');
  } finally {
    await limited.close();
  }
});
