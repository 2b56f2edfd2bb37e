// Model weights: fetched from the app's own origin (`${base}models/FILE`), and kept in Cache Storage
// once the engine has accepted them, so a later visit loads them without downloading.
//
//   await loadWeights(base, spec, { load, signal, onSource })
//
// `load(arrayBuffer)` hands the bytes to the engine (which checks their size and sha256 against the
// registry) and rejects if it refuses them. Cache entries are keyed `models/FILE?sha256=HASH`, so
// new weights under the same name are fetched again; an entry the engine refuses is deleted and
// the file downloaded. Cache Storage exists only in secure contexts (https:, localhost); elsewhere
// the weights are fetched each visit. Download failures reject with a LupaError of kind 'weights'.

import { LupaError, cancelled } from './errors.js';

export const CACHE_NAME = 'lupa-models-v1';

/** The model cache, or null where there is none (insecure context, storage blocked). */
export async function openCache() {
  try {
    return globalThis.caches ? await caches.open(CACHE_NAME) : null;
  } catch {
    return null;
  }
}

/** The cache key of a model's weights: its file, and the hash the registry promises. */
export function cacheKey(base, spec) {
  return new Request(new URL(`models/${spec.weights.file}?sha256=${spec.weights.sha256}`, base));
}

/** Downloads the weights of `spec`; rejects with kind 'weights' (or 'cancelled'). */
export async function fetchWeights(base, spec, { signal } = {}) {
  const file = `models/${spec.weights.file}`;
  try {
    const response = await fetch(new URL(file, base), { cache: 'no-store', signal });
    if (!response.ok) throw new LupaError('weights', `cannot download ${file}: HTTP ${response.status}`);
    return await response.arrayBuffer();
  } catch (e) {
    if (e instanceof LupaError) throw e;
    if (signal?.aborted || e?.name === 'AbortError') throw cancelled();
    throw new LupaError('weights', `cannot download ${file}: ${e.message}`, { cause: e });
  }
}

/**
 * Loads the weights of `spec` into the engine through `load`, from the cache if they are there,
 * else from the network (and then caches them). `onSource('cache' | 'network')` says which, before
 * the bytes are read. Resolves to the source used.
 * @param {URL} base
 * @param {import('./lupa.d.ts').ModelSpec} spec
 * @param {{ load: (weights: ArrayBuffer) => Promise<unknown>, signal?: AbortSignal,
 *           onSource?: (from: 'cache' | 'network') => void }} options
 * @returns {Promise<'cache' | 'network'>}
 */
export async function loadWeights(base, spec, { load, signal, onSource }) {
  const cache = await openCache();
  const key = cacheKey(base, spec);
  const cached = cache && (await cache.match(key).catch(() => undefined));
  if (cached) {
    onSource?.('cache');
    const bytes = await cached.arrayBuffer().catch(() => null);
    if (bytes) {
      try {
        await load(bytes);
        return 'cache';
      } catch (e) {
        // Refused weights (kind `weights`) mean a damaged entry: drop it and download. Anything
        // else (a cancel, a restarted engine) says nothing about the entry.
        if (e?.kind !== 'weights') throw e;
      }
    }
    await cache.delete(key).catch(() => false);
  }
  if (signal?.aborted) throw cancelled();
  onSource?.('network');
  const bytes = await fetchWeights(base, spec, { signal });
  const copy = cache ? bytes.slice(0) : null; // `load` transfers `bytes` to the worker
  await load(bytes);
  // Only weights the engine accepted are cached. A full quota is no reason to fail the job.
  if (cache) {
    const response = new Response(copy, { headers: { 'content-type': 'application/octet-stream' } });
    await cache.put(key, response).catch(() => {});
  }
  return 'network';
}
