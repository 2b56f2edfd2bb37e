// Subresource Integrity (scripts/integrity.mjs, run by scripts/build-web.sh) on the development
// build in dist-dev/, in Debian's Chromium, headless, on the CPU engine:
// - every script the page runs is pinned by the page's import map (and app.js by its own
//   integrity), the import map is allowed by its hash in the CSP, and every file the engine
//   worker runs (worker.js, the glue, the .wasm) is one the checked bootstrap knows;
// - the same build served with one byte changed in a module the page imports, in worker.js, or in
//   the engine's .wasm: the browser refuses the module (the page never starts), or the engine
//   fails to start and the page says which file failed its check.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createStaticServer } from '../../scripts/static-server.mjs';
import { ROOT, launchChromium } from './support.mjs';

const DIST = path.resolve(process.env.LUPA_DIST ?? path.join(ROOT, 'dist-dev'));
const profiles = [];
const servers = [];
let context;

before(async () => {
  assert.ok(fs.existsSync(path.join(DIST, 'integrity.json')),
    `no build with integrity in ${DIST} (run scripts/build-web.sh --dev)`);
  context = await launchChromium(profiles, [], { serviceWorkers: 'block' });
});

after(async () => {
  await context?.close();
  for (const s of servers) s.close();
  for (const p of profiles) fs.rmSync(p, { recursive: true, force: true });
});

/** Serves DIST, with the bytes of `tampered` (a file name) changed in one place if given; resolves
 * to its origin. */
async function serve(tampered = null) {
  const files = createStaticServer(DIST).listeners('request')[0];
  const server = http.createServer((req, res) => {
    const name = new URL(req.url, 'http://x').pathname.slice(1);
    if (name !== tampered) return files(req, res);
    const bytes = fs.readFileSync(path.join(DIST, name));
    // A byte in the middle: inside a comment or string of a script, inside a function body of the
    // .wasm; what matters is only that the bytes differ.
    bytes[bytes.length >> 1] ^= 0x01;
    const type = name.endsWith('.wasm') ? 'application/wasm' : 'text/javascript; charset=utf-8';
    res.writeHead(200, { 'content-type': type }).end(bytes);
  });
  servers.push(server);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${server.address().port}`;
}

/** Opens the app on the CPU engine at `origin`; the page, with its console and the URLs of every
 * request made by it and its workers. */
async function open(origin) {
  const page = await context.newPage();
  page.logs = [];
  page.requested = [];
  page.on('console', (m) => page.logs.push(m.text()));
  page.on('pageerror', (e) => page.logs.push(e.message));
  context.on('request', (r) => page.requested.push(r.url()));
  await page.goto(`${origin}/?backend=cpu&workers=1`);
  return page;
}

const state = (page) => page.waitForSelector('body[data-state="ready"], body[data-state="error"]', { timeout: 120_000 })
  .then(() => page.getAttribute('body', 'data-state'));

test('every script the page and its engine run is pinned by its sha384', async () => {
  const table = JSON.parse(fs.readFileSync(path.join(DIST, 'integrity.json'), 'utf8'));
  const html = fs.readFileSync(path.join(DIST, 'index.html'), 'utf8');
  const map = html.match(/<script type="importmap">([^<]*)<\/script>/)[1];
  assert.deepEqual(JSON.parse(map).integrity, table.modules, 'the import map is integrity.json\'s table');
  const page = await open(await serve());
  assert.equal(await state(page), 'ready', `${await page.textContent('#status')}\n${page.logs.join('\n')}`);
  assert.deepEqual(page.logs.filter((l) => /Content Security Policy|integrity/i.test(l)), [],
    'no CSP violation, no integrity failure');
  const scripts = page.requested.filter((u) => /\.(js|wasm)$/.test(new URL(u).pathname) && !u.startsWith('blob:'));
  const pinned = new Set([...Object.keys(table.modules).map((k) => k.slice(2)), ...Object.keys(table.engine)]);
  const names = scripts.map((u) => new URL(u).pathname.slice(1));
  assert.ok(names.includes('lupa-web-cpu_bg.wasm') && names.includes('worker.js'), `requested: ${names}`);
  assert.deepEqual(names.filter((n) => !pinned.has(n)), [], 'every script fetched is pinned');
  // The engine really runs from the checked bootstrap: its files are fetched, then run from blob: URLs.
  assert.ok(page.requested.some((u) => u.startsWith('blob:')), 'the engine worker starts from a blob: bootstrap');
  await page.close();
});

test('a module of the page with one byte changed is refused by the browser', async () => {
  const page = await open(await serve('errors.js'));
  const deadline = Date.now() + 60_000;
  while (!page.logs.some((l) => /integrity/i.test(l)) && Date.now() < deadline) await page.waitForTimeout(200);
  assert.ok(page.logs.some((l) => /errors\.js/.test(l) && /integrity/i.test(l)),
    `no integrity error for errors.js in the console: ${page.logs.join('\n')}`);
  // app.js imports errors.js: refused, the page's script never ran.
  assert.equal(await page.getAttribute('body', 'data-state'), null, 'the page did not start');
  await page.close();
});

for (const file of ['worker.js', 'lupa-web-cpu_bg.wasm']) {
  test(`${file} with one byte changed: the engine does not start, and the page says why`, async () => {
    const page = await open(await serve(file));
    assert.equal(await state(page), 'error');
    const status = await page.textContent('#status');
    assert.match(`${status}\n${page.logs.join('\n')}`, new RegExp(`${file.replace('.', '\\.')} failed its integrity check`));
    await page.close();
  });
}
