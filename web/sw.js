// Lupa's service worker: the app works offline once visited, and updates cleanly.
//
// - Install: precaches the app shell and the engine (PRECACHE, written into this file by
//   scripts/precache.mjs at build time with a version that changes whenever a file does) in the
//   cache `lupa-app-VERSION`. A new version waits until the page asks it to take over (the page
//   shows "a new version is ready": a reload), so a running page never mixes two versions.
// - Activate: deletes the caches of older versions, and the cached model weights (weights.js's
//   `lupa-models-v1`, keyed models/FILE?sha256=HASH) that the new models/index.json no longer lists.
// - Fetch: the precached files from the cache (the app's page whatever its query); the worker does
//   not touch any other request. Model weights are not precached: weights.js keeps each in its
//   cache at first use, checked against its sha256, and reads it from there, offline too.
// - The share target (manifest.webmanifest): a POST to ./share holds the shared images in the
//   cache `lupa-shared` and opens the app with ?shared=N, which queues them (app.js).

/* The build replaces this line (scripts/precache.mjs): the version and the files to precache. */
const PRECACHE = { version: 'dev', files: [] };

const APP_CACHE = `lupa-app-${PRECACHE.version}`;
const PRECACHED = new Set(PRECACHE.files.map((file) => new URL(file, self.location).href));
const MODEL_CACHE = 'lupa-models-v1';
const SHARE_CACHE = 'lupa-shared';

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(APP_CACHE);
    // `reload`: the files of this version, never an older copy from the HTTP cache.
    await cache.addAll(PRECACHE.files.map((file) => new Request(file, { cache: 'reload' })));
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('lupa-app-') && name !== APP_CACHE) await caches.delete(name);
    }
    await pruneModels();
    await self.clients.claim();
  })());
});

self.addEventListener('message', (event) => {
  if (event.data?.type === 'skip-waiting') self.skipWaiting();
});

/** Drops cached weights whose file and hash the precached models/index.json does not list. */
async function pruneModels() {
  const index = await (await caches.open(APP_CACHE)).match(new URL('models/index.json', self.registration.scope));
  if (!index) return;
  let listed;
  try {
    const { models } = await index.json();
    listed = new Set(models.map((m) => `models/${m.weights.file}?sha256=${m.weights.sha256}`));
  } catch {
    return; // an unreadable index says nothing about the weights
  }
  const cache = await caches.open(MODEL_CACHE);
  for (const request of await cache.keys()) {
    const url = new URL(request.url);
    const key = `${url.pathname.replace(new URL(self.registration.scope).pathname, '')}${url.search}`;
    if (!listed.has(key)) await cache.delete(request);
  }
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  const scope = new URL(self.registration.scope);
  if (request.method === 'POST' && url.pathname === `${scope.pathname}share`) {
    event.respondWith(receiveShare(request, scope));
    return;
  }
  if (request.method !== 'GET') return;
  // The app's page, whatever its query (?backend=cpu, ?shared=1): cached as ./ .
  const isPage = request.mode === 'navigate' && [scope.pathname, `${scope.pathname}index.html`].includes(url.pathname);
  if (!isPage && !PRECACHED.has(url.href)) return; // not the app's: the browser fetches it as usual
  event.respondWith((async () => {
    const app = await caches.open(APP_CACHE);
    const hit = await app.match(isPage ? new URL('./', scope) : request, { ignoreSearch: isPage });
    return hit ?? fetch(request);
  })());
});

/** Keeps the images a share sent (form field `images`) and opens the app on them. */
async function receiveShare(request, scope) {
  let files = [];
  try {
    files = (await request.formData()).getAll('images').filter((f) => f instanceof File);
  } catch {
    // not multipart: nothing to keep
  }
  const cache = await caches.open(SHARE_CACHE);
  await Promise.all(files.map((file, i) => cache.put(new URL(`shared/${i}`, scope),
    new Response(file, { headers: { 'content-type': file.type, 'x-file-name': encodeURIComponent(file.name) } }))));
  return Response.redirect(new URL(`./?shared=${files.length}`, scope).href, 303);
}
