// The installable app's glue (the app's page only: the widget and the API never register a
// service worker). Registers sw.js, tells the page when a new version is ready, and hands it the
// files the system opened with Lupa (manifest file_handlers) or shared to it (share_target).
//
//   registerServiceWorker({ onUpdate: (reload) => showBanner(reload) });
//   addFiles(await takeSharedFiles(params));
//   onLaunchedFiles(addFiles);

/**
 * Registers ./sw.js where service workers exist (secure contexts). When a new version has been
 * installed beside the one running, `onUpdate(reload)` is called once; `reload()` makes the new
 * version take over and reloads the page. Resolves to the registration, or null.
 * @param {{ onUpdate: (reload: () => void) => void }} options
 * @returns {Promise<ServiceWorkerRegistration | null>}
 */
export async function registerServiceWorker({ onUpdate }) {
  const container = navigator.serviceWorker;
  if (!container || !globalThis.isSecureContext) return null;
  let registration;
  try {
    registration = await container.register('./sw.js', { scope: './' });
  } catch (e) {
    console.warn(`Lupa works online only here: the service worker did not register (${e.message})`);
    return null;
  }
  if (!registration) return null; // registration blocked (as Playwright's serviceWorkers: 'block' does)
  let wanted = false; // the page asked for the new version: its taking over reloads the page
  container.addEventListener('controllerchange', () => {
    if (wanted) location.reload();
  });
  let offered = false;
  const offer = (worker) => {
    if (offered || !container.controller) return; // the first install: nothing to replace
    offered = true;
    onUpdate(() => {
      wanted = true;
      worker.postMessage({ type: 'skip-waiting' });
    });
  };
  const watch = (worker) => worker?.addEventListener('statechange', () => {
    if (worker.state === 'installed') offer(worker);
  });
  if (registration.waiting) offer(registration.waiting);
  watch(registration.installing);
  registration.addEventListener('updatefound', () => watch(registration.installing));
  return registration;
}

/**
 * The images a share sent (sw.js holds them in the cache `lupa-shared` and opens the app with
 * ?shared=N), taken out of the cache; [] when the page was not opened by a share.
 * @param {URLSearchParams} params
 * @returns {Promise<File[]>}
 */
export async function takeSharedFiles(params) {
  if (!params.has('shared') || !globalThis.caches) return [];
  const cache = await caches.open('lupa-shared');
  const files = [];
  for (const request of await cache.keys()) {
    const response = await cache.match(request);
    await cache.delete(request);
    if (!response) continue;
    const name = decodeURIComponent(response.headers.get('x-file-name') ?? '') || 'shared image';
    files.push(new File([await response.blob()], name, { type: response.headers.get('content-type') ?? '' }));
  }
  return files;
}

/**
 * Calls `handler(files)` with the files the system opens with the installed app (where the
 * browser has the File Handling API).
 * @param {(files: File[]) => void} handler
 */
export function onLaunchedFiles(handler) {
  if (!('launchQueue' in globalThis)) return;
  globalThis.launchQueue.setConsumer(async ({ files }) => {
    if (files?.length) handler(await Promise.all(files.map((handle) => handle.getFile())));
  });
}
