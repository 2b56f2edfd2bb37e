// Lupa embedded and installed, on the release build (dist/, scripts/build-web.sh), in Debian's
// Chromium, headless:
// - the first visit: every byte it downloads before the first upscale can start, per file, raw
//   and gzipped, within the budget (README "Release build");
// - the <lupa-upscaler> widget on a host page of another origin, under a strict CSP, in a form
//   whose submit goes to a local endpoint that records it: the upload is the upscaled file, and
//   nothing sent before the submit carried image bytes;
// - the installable app: manifest and installability, a shared image, an offline reload that
//   still upscales, and an update to a new version.
// Writes first-load.json and screenshots to tests/browser/artifacts/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { createStaticServer } from '../../scripts/static-server.mjs';
import {
  ARTIFACTS, PHOTO, ROOT, cliReference, decodePng, download, launchChromium, psnr, runQueue,
} from './support.mjs';

const DIST = path.resolve(process.env.LUPA_RELEASE_DIST ?? path.join(ROOT, 'dist'));
/** Everything a first visit downloads before the first upscale can start, models excluded. */
const FIRST_LOAD_BUDGET_GZIP = 3_000_000;

const profiles = [];
const contexts = [];
const servers = [];
let lupaBase; // dist/ with CORS, as a CDN would serve it: the widget's origin

before(async () => {
  assert.ok(fs.existsSync(path.join(DIST, 'index.html')), `no release build in ${DIST} (run scripts/build-web.sh)`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  lupaBase = await listen(createStaticServer(DIST, { cors: true }), '127.0.0.1');
});

after(async () => {
  for (const c of contexts) await c.close();
  for (const s of servers) s.close();
  for (const p of profiles) fs.rmSync(p, { recursive: true, force: true });
});

/** Starts `server` on a free port; resolves to its origin, named by `host`. */
async function listen(server, host, port = 0) {
  servers.push(server);
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return `http://${host}:${server.address().port}`;
}

async function launch(options = {}, args = []) {
  const context = await launchChromium(profiles, args, options);
  contexts.push(context);
  return context;
}

async function newPage(context) {
  const page = await context.newPage();
  page.logs = [];
  page.on('console', (m) => page.logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => page.logs.push(`pageerror: ${e.message}`));
  return page;
}

const gzipSize = (bytes) => zlib.gzipSync(bytes, { level: 9 }).length;

/** The full engine's files (not the CPU engine's, lupa-web-cpu*). */
const FULL_ENGINE = /\/lupa-web(\.js|_bg\.wasm)$/;

/**
 * A first visit to the app in `context` (no service worker: its precaching starts once the engine
 * is up), with the full engine's files held back until the page says Ready: what it downloaded
 * until then, each file as the server sent it (the file in dist/, raw and gzip -9), and the page.
 * A page that needed the full engine to get ready would never get there.
 */
async function firstVisit(context) {
  const page = await newPage(context);
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  await context.route(FULL_ENGINE, async (route) => {
    await held;
    await route.continue();
  });
  const requested = []; // the page's and its workers' requests, as URLs
  const record = (r) => requested.push(new URL(r.url()));
  context.on('request', record);
  await page.goto(`${lupaBase}/`);
  await page.waitForSelector('body[data-state="ready"], body[data-state="error"]', { timeout: 5 * 60 * 1000 });
  context.off('request', record);
  release();
  assert.equal(await page.getAttribute('body', 'data-state'), 'ready', page.logs.join('\n'));
  const files = new Map();
  for (const url of requested) {
    if (url.origin !== lupaBase || FULL_ENGINE.test(url.pathname)) continue; // held: not downloaded
    const file = decodeURIComponent(url.pathname).slice(1) || 'index.html';
    const bytes = fs.readFileSync(path.join(DIST, file));
    files.set(file, { file, bytes: bytes.length, gzip: gzipSize(bytes) });
  }
  const list = [...files.values()].sort((a, b) => b.gzip - a.gzip);
  const total = list.reduce((t, f) => ({ bytes: t.bytes + f.bytes, gzip: t.gzip + f.gzip }), { bytes: 0, gzip: 0 });
  return { page, files: list, total };
}

test('the release build’s first visit downloads at most 3 MB gzipped before it can upscale; WebGPU takes over after', async () => {
  const report = {};
  for (const [label, args] of [['without WebGPU', []], ['with WebGPU', ['--enable-unsafe-webgpu']]]) {
    const context = await launch({ serviceWorkers: 'block' }, args);
    const { page, files, total } = await firstVisit(context);
    report[label] = { files, total };
    console.log(`first load ${label} (release build), bytes raw / gzip -9:`);
    for (const f of files) console.log(`  ${f.file.padEnd(28)} ${String(f.bytes).padStart(10)} ${String(f.gzip).padStart(10)}`);
    console.log(`  ${'total'.padEnd(28)} ${String(total.bytes).padStart(10)} ${String(total.gzip).padStart(10)}`);
    const names = files.map((f) => f.file);
    assert.ok(names.includes('lupa-web-cpu_bg.wasm'), 'a first visit starts the CPU engine');
    assert.ok(!names.some((f) => f.endsWith('.safetensors')), 'weights are fetched only for a job');
    assert.ok(total.gzip <= FIRST_LOAD_BUDGET_GZIP,
      `first load ${label} is ${total.gzip} bytes gzipped, over the budget of ${FIRST_LOAD_BUDGET_GZIP}`);
    assert.equal(await page.getAttribute('body', 'data-backend'), 'cpu');
    if (args.length) {
      // The full engine loads beside the CPU engine and takes over on WebGPU.
      await page.waitForSelector('body[data-backend="webgpu"]', { timeout: 5 * 60 * 1000 });
      assert.match(await page.textContent('#engine'), /WebGPU .*the CPU engine ran until this engine had loaded/);
      await page.screenshot({ path: path.join(ARTIFACTS, 'app-webgpu-after-cpu.png'), fullPage: true });
    } else {
      assert.match(await page.textContent('#engine'), /CPU .*WebGPU is unavailable/);
    }
    await page.close();
  }
  fs.writeFileSync(path.join(ARTIFACTS, 'first-load.json'), JSON.stringify(report, null, 2));
});

// ---- the widget on another origin's page ----------------------------------------------------

/** The CSP a host page needs for the widget served from `lupa` (README "The widget"). */
const hostCsp = (lupa) => [
  "default-src 'none'",
  // blob: for the modules the engine worker's checked bootstrap runs once it has checked them
  // (a dynamic import in a worker answers to script-src).
  `script-src ${lupa} blob: 'wasm-unsafe-eval'`,
  // blob: for the worker's bootstrap; Lupa's origin for a worker's static imports (they answer to
  // worker-src, not script-src), which only an unchecked start (no SubtleCrypto) makes.
  `worker-src blob: ${lupa}`,
  `connect-src ${lupa}`,
  'img-src blob:',
  "style-src 'self'",
  "form-action 'self'",
].join('; ');

const hostPage = (lupa, { dark = false, attributes = 'required' } = {}) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${hostCsp(lupa)}">
<title>A shop's upload form</title>
<link rel="stylesheet" href="/host.css${dark ? '?dark' : ''}">
<script type="module" src="${lupa}/lupa-upscaler.js"></script>
</head><body${dark ? ' class="dark"' : ''}>
<h1>Add a product photo</h1>
<form method="post" action="/upload" enctype="multipart/form-data">
  <label>Title <input name="title" value="Teapot"></label>
  <lupa-upscaler name="photo" mode="precision" scale="2" format="png" backend="cpu" ${attributes}></lupa-upscaler>
  <button id="send">Send</button>
</form>
</body></html>`;

const HOST_CSS = `body { font: 16px system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; }
body.dark { background: #15171c; color: #e8e8ea; color-scheme: dark; }
lupa-upscaler { margin: 1rem 0; --lupa-accent: #0a7d55; }`;

/** The host's pages: / (a required field), /dark, /optional (not required; the original sent too). */
const PAGES = { '/': {}, '/dark': { dark: true }, '/optional': { attributes: 'original-name="original"' } };

/** The host's server: its page, its style sheet, and /upload, which records what it receives. */
function hostServer(lupa) {
  const log = []; // {method, url, contentType, body}
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url, 'http://host');
      log.push({ method: req.method, url: url.pathname, contentType: req.headers['content-type'] ?? '', body: Buffer.concat(chunks) });
      if (url.pathname === '/host.css') {
        res.writeHead(200, { 'content-type': 'text/css' }).end(HOST_CSS);
      } else if (url.pathname === '/upload' && req.method === 'POST') {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>Received</title><p id="received">Received.</p>');
      } else if (PAGES[url.pathname]) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(hostPage(lupa, PAGES[url.pathname]));
      } else {
        res.writeHead(404).end();
      }
    });
  });
  return { server, log };
}

/** The parts of a multipart/form-data body: {name, filename, type, data}. */
function parseMultipart(body, contentType) {
  const match = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  assert.ok(match, `not multipart: ${contentType}`);
  const boundary = Buffer.from(`--${match[1] ?? match[2]}`);
  const parts = [];
  let start = body.indexOf(boundary);
  while (start >= 0) {
    start += boundary.length;
    const next = body.indexOf(boundary, start);
    if (next < 0) break;
    const part = body.subarray(start + 2, next - 2); // after the CRLF, before the CRLF
    const split = part.indexOf('\r\n\r\n');
    const head = part.subarray(0, split).toString('utf8');
    parts.push({
      name: /name="([^"]*)"/.exec(head)?.[1],
      filename: /filename="([^"]*)"/.exec(head)?.[1] ?? null,
      type: /content-type:\s*([^\r\n]+)/i.exec(head)?.[1] ?? null,
      data: part.subarray(split + 4),
    });
    start = next;
  }
  return parts;
}

/** Resolves with the widget's next 'lupa-done' or 'lupa-error' (start it before the action). */
const nextOutcome = (page) => page.evaluate(() => new Promise((resolve) => {
  const el = document.querySelector('lupa-upscaler');
  const done = (e) => resolve({ type: 'done', name: e.detail.name, size: e.detail.size, mime: e.detail.type });
  const failed = (e) => resolve({ type: 'error', kind: e.detail.kind, message: e.detail.message });
  el.addEventListener('lupa-done', done, { once: true });
  el.addEventListener('lupa-error', failed, { once: true });
}));

test('the widget on another origin’s page: its form uploads the upscaled photo, never the original', async () => {
  const { server, log } = hostServer(lupaBase);
  // localhost and 127.0.0.1 are different origins: the host page is not Lupa's.
  const hostBase = await listen(server, 'localhost');
  const context = await launch();
  const sent = [];
  context.on('request', (r) => sent.push({ url: r.url(), method: r.method(), body: r.postDataBuffer() }));
  const page = await newPage(context);
  const violations = [];
  page.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) violations.push(m.text()); });
  await page.goto(`${hostBase}/`);
  await page.waitForFunction(() => customElements.get('lupa-upscaler') !== undefined);

  // A required field without an image: the form does not submit, as with a required <input>.
  const empty = await page.evaluate(() => {
    const el = document.querySelector('lupa-upscaler');
    return { valid: el.form.checkValidity(), missing: el.validity.valueMissing, message: el.validationMessage };
  });
  assert.deepEqual(empty, { valid: false, missing: true, message: 'Choose an image to upscale.' });

  // Keyboard: Tab from the title field reaches the widget's "Choose an image" button.
  await page.focus('input[name="title"]');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.shadowRoot?.activeElement?.id), 'choose');

  const outcome = nextOutcome(page);
  await page.setInputFiles('lupa-upscaler input[type="file"]', PHOTO);
  // While it runs the form cannot be sent.
  const during = await page.evaluate(() => {
    const el = document.querySelector('lupa-upscaler');
    return { busy: el.busy, valid: el.form.checkValidity(), message: el.validationMessage };
  });
  const result = await outcome;
  assert.equal(result.type, 'done', `${JSON.stringify(result)}\n${page.logs.join('\n')}`);
  if (during.busy) assert.deepEqual(during, { busy: true, valid: false, message: 'The image is still being upscaled.' });
  assert.equal(result.name, 'chelsea_64x48_128x96.png');
  assert.equal(result.mime, 'image/png');
  assert.match(await page.textContent('lupa-upscaler #plan'), /Ready to send: chelsea_64x48_128x96\.png/);
  assert.equal(await page.evaluate(() => document.querySelector('lupa-upscaler').form.checkValidity()), true);
  await page.screenshot({ path: path.join(ARTIFACTS, 'widget-host-page.png'), fullPage: true });

  // Before the submit: no request carried a body, and the host saw only its page and style sheet.
  const original = fs.readFileSync(PHOTO);
  for (const r of sent) {
    assert.equal(r.method, 'GET', `${r.method} ${r.url} before the submit`);
    assert.equal(r.body, null, `a request with a body before the submit: ${r.url}`);
  }
  assert.deepEqual(log.map((r) => `${r.method} ${r.url}`), ['GET /', 'GET /host.css']);
  // The engine came from Lupa's origin: the worker bootstrap, the wasm and the weights.
  assert.ok(sent.some((r) => r.url === `${lupaBase}/lupa-web-cpu_bg.wasm`), 'the engine was not loaded from Lupa’s origin');
  assert.ok(sent.some((r) => r.url.startsWith(`${lupaBase}/models/`) && r.url.endsWith('.safetensors')));

  await Promise.all([page.waitForURL(`${hostBase}/upload`), page.click('#send')]);
  const upload = log.find((r) => r.method === 'POST' && r.url === '/upload');
  assert.ok(upload, 'the form was not submitted');
  const parts = parseMultipart(upload.body, upload.contentType);
  assert.deepEqual(parts.map((p) => p.name), ['title', 'photo']);
  assert.equal(parts[0].data.toString(), 'Teapot');
  const photo = parts[1];
  assert.equal(photo.filename, 'chelsea_64x48_128x96.png');
  assert.equal(photo.type, 'image/png');
  const png = decodePng(photo.data);
  assert.deepEqual([png.width, png.height], [128, 96], 'the uploaded file is the 2x result');
  const db = psnr(png, cliReference(PHOTO, 'span-x2'));
  console.log(`widget upload: ${photo.data.length} bytes, ${png.width}×${png.height}, PSNR vs native CLI ${db.toFixed(2)} dB`);
  assert.ok(db >= 45, `the uploaded result differs from the native CLI: ${db.toFixed(2)} dB`);
  assert.equal(upload.body.indexOf(original), -1, 'the original photo was uploaded');
  assert.deepEqual(violations, [], 'the documented CSP was enough');
  await page.close();
});

test('the widget in a dark page; a file it cannot read is refused with its kind; original-name adds the original', async () => {
  const { server, log } = hostServer(lupaBase);
  const hostBase = await listen(server, 'localhost');
  const context = await launch();
  const page = await newPage(context);
  await page.goto(`${hostBase}/dark`);
  await page.waitForFunction(() => customElements.get('lupa-upscaler') !== undefined);
  // The widget's text takes the host's colour (light on dark).
  const colour = await page.evaluate(() => getComputedStyle(document.querySelector('lupa-upscaler').shadowRoot.getElementById('hint')).color);
  assert.equal(colour, 'rgb(232, 232, 234)');

  // Not one of the accepted types: refused before the engine starts.
  let outcome = nextOutcome(page);
  await page.setInputFiles('lupa-upscaler input[type="file"]', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
  let result = await outcome;
  assert.equal(result.type, 'error');
  assert.equal(result.kind, 'bad-input');
  assert.match(result.message, /notes\.txt is not one of the accepted types/);
  // A PNG that is not one: the engine says so, and the field is invalid with the reason.
  outcome = nextOutcome(page);
  await page.setInputFiles('lupa-upscaler input[type="file"]', { name: 'broken.png', mimeType: 'image/png', buffer: Buffer.from('not a png') });
  result = await outcome;
  assert.equal(result.kind, 'bad-input', JSON.stringify(result));
  const state = await page.evaluate(() => {
    const el = document.querySelector('lupa-upscaler');
    return { valid: el.form.checkValidity(), message: el.validationMessage, kind: el.shadowRoot.getElementById('plan').dataset.errorKind };
  });
  assert.equal(state.valid, false);
  assert.match(state.message, /^The image could not be upscaled: /);
  assert.equal(state.kind, 'bad-input');
  // The same element then upscales a real photo.
  outcome = nextOutcome(page);
  await page.setInputFiles('lupa-upscaler input[type="file"]', PHOTO);
  result = await outcome;
  assert.equal(result.type, 'done', JSON.stringify(result));
  await page.screenshot({ path: path.join(ARTIFACTS, 'widget-dark-host-page.png'), fullPage: true });
  await page.close();

  // original-name: the form carries the original too, under that name (and the field is optional).
  const optional = await newPage(context);
  await optional.goto(`${hostBase}/optional`);
  await optional.waitForFunction(() => customElements.get('lupa-upscaler') !== undefined);
  assert.equal(await optional.evaluate(() => document.querySelector('lupa-upscaler').form.checkValidity()), true);
  outcome = nextOutcome(optional);
  await optional.setInputFiles('lupa-upscaler input[type="file"]', PHOTO);
  assert.equal((await outcome).type, 'done');
  await Promise.all([optional.waitForURL(`${hostBase}/upload`), optional.click('#send')]);
  const upload = log.find((r) => r.method === 'POST');
  const parts = parseMultipart(upload.body, upload.contentType);
  assert.deepEqual(parts.map((p) => [p.name, p.filename]),
    [['title', null], ['photo', 'chelsea_64x48_128x96.png'], ['original', 'chelsea_64x48.png']]);
  assert.ok(parts[2].data.equals(fs.readFileSync(PHOTO)), 'the original, byte for byte');
  await optional.close();
});

// ---- the installable app --------------------------------------------------------------------

test('the app installs, upscales offline after one visit, takes a shared image, and updates to a new version', async () => {
  // A copy of dist/ on an origin of its own, so that a new version can be deployed to it.
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'lupa-pwa-'));
  profiles.push(copy);
  fs.cpSync(DIST, copy, { recursive: true });
  let server = createStaticServer(copy);
  const appBase = await listen(server, '127.0.0.1');
  const port = Number(new URL(appBase).port);
  const context = await launch();
  const page = await newPage(context);
  await page.goto(`${appBase}/?backend=cpu&mode=precision&size=2`);
  await page.waitForSelector('body[data-state="ready"]', { timeout: 5 * 60 * 1000 });

  // Installable: Chromium finds no fault with the manifest, the icons and the service worker.
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 120_000 });
  const cdp = await context.newCDPSession(page);
  const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
  assert.deepEqual(installabilityErrors, [], 'Chromium would not offer to install the app');
  // Installed (DevTools' PWA.install, as the install prompt would) and launched: its window opens
  // on the start URL and the engine starts. (Headless Chromium gives it no standalone window
  // frame: display-mode stays 'browser' there.)
  await cdp.send('PWA.install', { manifestId: `${appBase}/` });
  const [installed] = await Promise.all([context.waitForEvent('page'), cdp.send('PWA.launch', { manifestId: `${appBase}/` })]);
  await installed.waitForSelector('body[data-state="ready"]', { timeout: 5 * 60 * 1000 });
  assert.equal(installed.url(), `${appBase}/`);
  await installed.screenshot({ path: path.join(ARTIFACTS, 'app-installed.png'), fullPage: true });
  await installed.close();
  const manifest = await page.evaluate(async () => (await fetch('manifest.webmanifest')).json());
  assert.equal(manifest.display, 'standalone');
  assert.deepEqual(manifest.icons.map((i) => i.sizes), ['192x192', '512x512', '512x512']);
  assert.equal(manifest.share_target.action, './share');
  assert.deepEqual(Object.keys(manifest.file_handlers[0].accept), ['image/png', 'image/jpeg', 'image/webp']);

  // One upscale online (the weights are cached at first use).
  await runQueue(page, PHOTO);
  const [, online] = await download(page);
  assert.deepEqual([decodePng(online).width, decodePng(online).height], [128, 96]);

  // A shared image: the service worker keeps it and opens the app, which queues it.
  const shared = await page.evaluate(async (bytes) => {
    const form = new FormData();
    form.append('images', new File([new Uint8Array(bytes)], 'shared photo.png', { type: 'image/png' }));
    const response = await fetch('./share', { method: 'POST', body: form, redirect: 'manual' });
    return response.type;
  }, [...fs.readFileSync(PHOTO)]);
  assert.equal(shared, 'opaqueredirect');
  await page.goto(`${appBase}/?shared=1&backend=cpu&mode=precision&size=2`);
  await page.waitForSelector('body[data-state="ready"]', { timeout: 5 * 60 * 1000 });
  await page.waitForSelector('#queue li');
  assert.match(await page.textContent('#queue li'), /shared photo\.png/);

  // Offline: the server is gone and the network is off; a reload still upscales, the same.
  await new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); });
  await context.setOffline(true);
  await page.goto(`${appBase}/?backend=cpu&mode=precision&size=2`);
  await page.waitForSelector('body[data-state="ready"], body[data-state="error"]', { timeout: 5 * 60 * 1000 });
  assert.equal(await page.getAttribute('body', 'data-state'), 'ready', await page.textContent('#status'));
  await runQueue(page, PHOTO);
  const [, offline] = await download(page);
  assert.ok(offline.equals(online), 'offline, the app gives the same result');
  await page.screenshot({ path: path.join(ARTIFACTS, 'app-offline.png'), fullPage: true });
  const oldCaches = await page.evaluate(async () => (await caches.keys()).filter((k) => k.startsWith('lupa-app-')));
  assert.equal(oldCaches.length, 1);

  // A new version is deployed: the page says so, and a reload runs it; the old cache is gone.
  await context.setOffline(false);
  const html = fs.readFileSync(path.join(copy, 'index.html'), 'utf8');
  fs.writeFileSync(path.join(copy, 'index.html'), html.replace('<head>', '<head>\n  <meta name="lupa-test-version" content="2">'));
  execFileSync('node', [path.join(ROOT, 'scripts/precache.mjs'), copy]);
  const version = /"version":"([0-9a-f]+)"/.exec(fs.readFileSync(path.join(copy, 'sw.js'), 'utf8'))[1];
  assert.notEqual(`lupa-app-${version}`, oldCaches[0]);
  server = createStaticServer(copy);
  await listen(server, '127.0.0.1', port);
  await page.goto(`${appBase}/?backend=cpu`);
  await page.waitForSelector('#update:not([hidden])', { timeout: 120_000 });
  assert.equal(await page.$('meta[name="lupa-test-version"]'), null, 'the old version runs until the reload');
  await Promise.all([page.waitForEvent('load'), page.click('#reload')]);
  await page.waitForSelector('body[data-state="ready"]', { timeout: 5 * 60 * 1000 });
  assert.notEqual(await page.$('meta[name="lupa-test-version"]'), null, 'the reload runs the new version');
  const appCaches = await page.evaluate(async () => (await caches.keys()).filter((k) => k.startsWith('lupa-app-')));
  assert.deepEqual(appCaches, [`lupa-app-${version}`]);
  const weights = await page.evaluate(async () => (await (await caches.open('lupa-models-v1')).keys()).length);
  assert.ok(weights >= 1, 'the cached weights the new version still lists are kept');
  await page.close();
});
