// Lupa's errors: every failure the engine, the bridge (lupa.js) or the weights (weights.js) report
// is a LupaError with a one-sentence `message` and a stable `kind`, for programs to match on (never
// the message). `name` is 'AbortError' for 'cancelled', as the DOM names a cancelled call.

/** @typedef {import('./lupa.d.ts').ErrorKind} ErrorKind */

/** @type {readonly ErrorKind[]} */
export const ERROR_KINDS = Object.freeze(['bad-input', 'unknown-model', 'weights', 'registry', 'limit', 'backend',
  'encode', 'cancelled']);

/** Every error the API rejects with: a one-sentence `message` and a stable `kind`. */
export class LupaError extends Error {
  /**
   * @param {ErrorKind} kind
   * @param {string} message
   * @param {ErrorOptions} [options]
   */
  constructor(kind, message, options) {
    super(message, options);
    /** @type {ErrorKind} */
    this.kind = ERROR_KINDS.includes(kind) ? kind : 'backend';
    this.name = this.kind === 'cancelled' ? 'AbortError' : 'LupaError';
  }
}

/** The error of a cancelled call. */
export const cancelled = () => new LupaError('cancelled', 'cancelled');

/**
 * `e` as a LupaError: kept if it is one, an abort becomes 'cancelled', anything else `kind`.
 * @param {unknown} e
 * @param {ErrorKind} kind
 * @returns {LupaError}
 */
export function toLupaError(e, kind = 'backend') {
  if (e instanceof LupaError) return e;
  if (e instanceof Error && e.name === 'AbortError') return cancelled();
  const message = e instanceof Error ? e.message : String(e);
  return new LupaError(/** @type {any} */ (e)?.kind ?? kind, message, { cause: e });
}
