// Subresource Integrity (SRI, sha384) for the build in DIR; scripts/build-web.sh runs it after
// Trunk (and wasm-opt), before precache.mjs.
//
// 1. The engine's files, which only the engine worker loads (worker.js, and each engine's
//    wasm-bindgen glue and .wasm): their hashes are written into DIR/pool.js, on its line
//    `const ENGINE_INTEGRITY = null;`. pool.js starts every engine worker from a bootstrap that
//    fetches these files, checks them and only then runs them (import maps do not reach workers).
// 2. Every ES module of the page (pool.js with those hashes in it): an import map with their
//    hashes (HTML's import map "integrity") is put into DIR/index.html before the page's module
//    script, which gets its own `integrity`; the import map is an inline script, so its sha256
//    joins the page's Content-Security-Policy (`script-src`), and `blob:` joins `worker-src` and
//    `script-src`: the checked bootstrap is a blob: worker, and the modules it has checked run
//    from blob: URLs (a worker's imports answer to `script-src`). Only the page's own scripts
//    can make a blob: URL, so this lets in nothing they did not make.
// 3. DIR/integrity.json: the same table of every module and engine file, for a site that embeds
//    the widget from Lupa's origin and pins Lupa's modules in its own import map (README).
//
// The browser refuses a module whose bytes do not match; the bootstrap refuses an engine file
// that does not (the engine then fails to start, saying which file).
//
//   node scripts/integrity.mjs [DIR]     (default: dist)

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const dir = path.resolve(process.argv[2] ?? 'dist');
const read = (name) => fs.readFileSync(path.join(dir, name));
const sri = (bytes) => `sha384-${crypto.createHash('sha384').update(bytes).digest('base64')}`;

// 1. The engine worker's files, into pool.js.
const engineFiles = ['worker.js', 'lupa-web.js', 'lupa-web_bg.wasm', 'lupa-web-cpu.js', 'lupa-web-cpu_bg.wasm'];
const engine = Object.fromEntries(engineFiles.map((name) => [name, sri(read(name))]));
const poolPath = path.join(dir, 'pool.js');
const pool = fs.readFileSync(poolPath, 'utf8');
const placeholder = /^const ENGINE_INTEGRITY = null;$/m;
if (!placeholder.test(pool)) throw new Error(`${poolPath} has no \`const ENGINE_INTEGRITY = null;\` line to fill in`);
fs.writeFileSync(poolPath, pool.replace(placeholder, `const ENGINE_INTEGRITY = ${JSON.stringify(engine)};`));

// 2. The page's modules: every .js at the top of the build but the engine worker's and sw.js (a
// service worker, which no integrity can pin: it is the page's own origin's, like index.html).
const modules = fs.readdirSync(dir)
  .filter((name) => name.endsWith('.js') && name !== 'sw.js' && !engineFiles.includes(name))
  .sort();
const integrity = Object.fromEntries(modules.map((name) => [`./${name}`, sri(read(name))]));
const importMap = JSON.stringify({ integrity });
const mapHash = `'sha256-${crypto.createHash('sha256').update(importMap).digest('base64')}'`;

const htmlPath = path.join(dir, 'index.html');
let html = fs.readFileSync(htmlPath, 'utf8');
const entry = '<script type="module" src="app.js"></script>';
if (!html.includes(entry)) throw new Error(`${htmlPath} has no ${entry}`);
html = html.replace(entry,
  `<script type="importmap">${importMap}</script>\n  ` +
  `<script type="module" src="app.js" integrity="${integrity['./app.js']}"></script>`);
const csp = /(http-equiv="Content-Security-Policy"\s+content="[^"]*?)script-src 'self'([^"]*?)worker-src 'self'/;
if (!csp.test(html)) throw new Error(`${htmlPath}: no CSP with script-src 'self' … worker-src 'self' to extend`);
html = html.replace(csp, `$1script-src 'self' blob: ${mapHash}$2worker-src 'self' blob:`);
fs.writeFileSync(htmlPath, html);

// 3. The table for embedders.
fs.writeFileSync(path.join(dir, 'integrity.json'), `${JSON.stringify({ modules: integrity, engine }, null, 2)}\n`);
console.log(`integrity: ${modules.length} page modules, ${engineFiles.length} engine files`);
