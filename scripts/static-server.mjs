// A plain static file server for dist/, standing in for any server a user would deploy Lupa on.
// No special headers: the app must work without them. `--cors` adds the one header a host needs
// to serve Lupa's files to pages of other origins (the widget embedded from a CDN):
// `Access-Control-Allow-Origin: *`.
//
//   node scripts/static-server.mjs [DIR] [PORT] [--cors]   (defaults: dist, 8080; PORT 0: any free one)
//
// Also imported by the browser tests (tests/browser/app.test.mjs).

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.md': 'text/plain; charset=utf-8',
};

/** An http.Server serving the files under `root` (index.html for folders); with `cors`, to
 * every origin. */
export function createStaticServer(root, { cors = false } = {}) {
  root = path.resolve(root);
  return http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    let file = path.join(root, decodeURIComponent(url.pathname));
    if (file !== root && !file.startsWith(root + path.sep)) {
      res.writeHead(403).end();
      return;
    }
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
    fs.readFile(file, (err, body) => {
      if (err) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      const headers = { 'content-type': MIME[path.extname(file)] ?? 'application/octet-stream' };
      if (cors) headers['access-control-allow-origin'] = '*';
      res.writeHead(200, headers);
      res.end(body);
    });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const cors = args.includes('--cors');
  const [dir = 'dist', port = '8080'] = args.filter((a) => a !== '--cors');
  const server = createStaticServer(dir, { cors });
  server.listen(Number(port), '127.0.0.1', () => {
    console.log(`Lupa is served from ${path.resolve(dir)}`);
    console.log(`Open http://127.0.0.1:${server.address().port}/ (Ctrl+C stops the server)`);
  });
}
