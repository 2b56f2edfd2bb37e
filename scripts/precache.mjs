// Writes the service worker's precache list into DIR/sw.js (the line `const PRECACHE = ...`): every
// file of the build but the model weights (cached at first use) and sw.js itself, and a version
// that is the sha256 of them all, so that any change to any file is a new version of the app.
//
//   node scripts/precache.mjs [DIR]     (default: dist)

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const dir = path.resolve(process.argv[2] ?? 'dist');
const files = [];
(function walk(sub) {
  for (const entry of fs.readdirSync(path.join(dir, sub), { withFileTypes: true })) {
    const rel = sub ? `${sub}/${entry.name}` : entry.name;
    if (entry.isDirectory()) walk(rel);
    else if (rel !== 'sw.js' && !rel.endsWith('.safetensors')) files.push(rel);
  }
})('');
files.sort();

const hash = crypto.createHash('sha256');
for (const file of files) hash.update(file).update('\0').update(fs.readFileSync(path.join(dir, file)));
const version = hash.digest('hex').slice(0, 16);
// The page is cached as ./ (what a visit asks for), index.html under its own name too.
const list = ['./', ...files];

const sw = path.join(dir, 'sw.js');
const source = fs.readFileSync(sw, 'utf8');
const line = /^const PRECACHE = .*;$/m;
if (!line.test(source)) throw new Error(`${sw} has no \`const PRECACHE = ...;\` line to fill in`);
fs.writeFileSync(sw, source.replace(line, `const PRECACHE = ${JSON.stringify({ version, files: list })};`));
console.log(`precache: ${list.length} files, version ${version}`);
