// Types of Lupa's JavaScript API (lupa.js, errors.js): the engine bridge that upscales images
// with the wasm engine in a Web Worker, and the data it exchanges with the engine.

/** What went wrong, for programs to match on (the message is for people). */
export type ErrorKind =
  | 'bad-input'     // not a readable image, or an option the engine cannot work with
  | 'unknown-model' // a model id the registry does not have
  | 'weights'       // weights that failed to download or do not match the registry
  | 'registry'      // models/index.json unreadable or invalid
  | 'limit'         // a result or intermediate image too large for the engine
  | 'backend'       // the compute backend failed, or the engine crashed or was restarted
  | 'encode'        // the result could not be encoded
  | 'cancelled';    // the caller's AbortSignal fired

export const ERROR_KINDS: readonly ErrorKind[];

/** How long a run may go on after a cancel before its worker is terminated (ms). */
export const CANCEL_GRACE_MS: number;

/** Every rejection of the API. `name` is 'AbortError' for kind 'cancelled', else 'LupaError'. */
export class LupaError extends Error {
  constructor(kind: ErrorKind, message: string, options?: ErrorOptions);
  readonly kind: ErrorKind;
  name: 'LupaError' | 'AbortError';
}

/** A LupaError of kind 'cancelled'. */
export function cancelled(): LupaError;

/** `e` as a LupaError: kept if it is one, an AbortError becomes 'cancelled', else `kind`. */
export function toLupaError(e: unknown, kind?: ErrorKind): LupaError;

/** An image file's bytes (PNG, JPEG, WebP, BMP, GIF, TIFF). Never transferred away from the caller. */
export type Input = Blob | ArrayBuffer | Uint8Array;

/** Which backend runs, on what, and why. */
export interface BackendInfo {
  backend: 'webgpu' | 'cpu';
  /** The GPU adapter's description, or the CPU backend's. */
  adapter: string;
  /** Why this backend was chosen, one sentence for the user. */
  reason: string;
  /** The device's largest buffer in bytes (WebGPU only). */
  maxBuffer: number | null;
  /** Engines (Web Workers) that share each job's tiles: 1 on WebGPU; on the CPU one per core
   * within a memory budget, or as `workers` asked (see pool.js). Automatic tiles cut an image
   * that would be fewer tiles than this finer, at most one tile per engine (`tile` left 0). */
  engines: number;
}

export type ModeId = 'smart' | 'precision' | 'creative' | 'maximum-detail' | 'illustration';
/** 'webp' is lossless (the engine's encoder); 'webp-lossy' is the browser's own encoder
 * (OffscreenCanvas.convertToBlob; sRGB, no metadata; offered where the browser has it). */
export type FormatId = 'png' | 'jpeg' | 'webp' | 'webp-lossy' | 'avif' | 'bmp';

/** The modes, sizes, clean-up levels and formats the engine offers: the page is built from it. */
export interface Catalogue {
  modes: {
    id: ModeId;
    label: string;
    description: string;
    /** The models the mode may use (empty for Smart, which picks a mode). */
    models: string[];
    /** Whether "maximum fidelity" (the self-ensemble) is offered in this mode. */
    ensemble: boolean;
  }[];
  defaultMode: ModeId;
  scales: number[];
  defaultScale: number;
  denoise: { level: number; label: string }[];
  /** `quality`: the default quality, null for a lossless format. */
  formats: { id: FormatId; label: string; quality: number | null }[];
  ensemble: { label: string; description: string };
}

/** One model of models/index.json (the fields the page uses; the file has more). */
export interface ModelSpec {
  id: string;
  name: string;
  description: string;
  kind: string;
  scale: number;
  weights: { file: string; bytes: number; sha256: string; precision?: string };
  licence: { spdx: string; upstream: string; copyright?: string };
  [field: string]: unknown;
}

/** models/index.json. */
export interface ModelIndex {
  format_version: number;
  models: ModelSpec[];
}

/** One job. Whatever is left out the engine decides (Smart mode, the default size, ...). */
export interface JobRequest {
  mode?: ModeId;
  /** A model id that overrides the mode's choice. */
  model?: string;
  /** The factor; or `fit`, a box the result fits in. */
  scale?: number;
  fit?: [number, number];
  /** Clean-up, 0 (none) to 3 (strong). */
  denoise?: number;
  /** A rectangle of the input: x, y, width, height. */
  crop?: [number, number, number, number];
  format?: FormatId;
  /** 1 to 100, for JPEG and AVIF. */
  quality?: number;
  /** "Maximum fidelity": the model averaged over 8 flips and rotations (modes that offer it). */
  ensemble?: boolean;
}

/** What a job will do, before it runs. */
export interface JobPlan {
  /** The models it needs, in the order they run. */
  models: string[];
  /** One line for the user, Smart mode's choice included. */
  explanation: string;
  input: [number, number];
  output: [number, number];
  /** The mode that runs (Smart resolved). */
  mode: ModeId;
  /** What Smart recognised ('photo', 'illustration', 'text'), or null. */
  content: string | null;
  /** Whether the self-ensemble ("maximum fidelity") runs. */
  ensemble: boolean;
  extension: string;
  mime: string;
}

/** A finished upscale. */
export interface UpscaleResult {
  blob: Blob;
  bytes: ArrayBuffer;
  mime: string;
  extension: string;
  width: number;
  height: number;
  tiles: number;
  explanation: string;
  /** How long the engine worked on it (ms), weights and planning excluded. */
  ms: number;
  /** Engines that ran its tiles: the coordinating worker and the helpers that were ready. */
  engines: number;
  /**
   * The GPU failed during the job (its device lost, or out of memory) and the tiles from then on
   * were computed on the CPU (the explanation says how many); the next call starts a new engine.
   * Or the GPU engine crashed (e.g. out of GPU memory) and the job ran again on the CPU, where
   * the engine stays.
   * Tiles the GPU got wrong (NaN, infinite, black) are computed again on the CPU either way.
   */
  engineFailed: boolean;
  /** Bytes of the job's engine's WebAssembly memory after it (it grows as jobs need, never shrinks). */
  engineMemory: number;
  plan: JobPlan;
}

/** What `onProgress` hears during an upscale (or, 'weights' only, a warmup). */
export type ProgressEvent =
  | { phase: 'planned'; plan: JobPlan }
  | { phase: 'weights'; model: ModelSpec; from: 'cache' | 'network' }
  | { phase: 'tiles'; done: number; total: number; pass: number; passes: number };

export type Backend = 'auto' | 'webgpu' | 'cpu';

/**
 * The engine bridge. On 'auto' a first visit starts the CPU engine (1.2 MB gzipped) and, where
 * there is a WebGPU adapter, the full engine beside it, which takes over between calls once it is
 * up: a 'backendchange' event, with `backend` updated.
 */
export class Upscaler extends EventTarget {
  /** Use Upscaler.create. */
  private constructor();

  /**
   * Fetches `${base}models/index.json` and starts the engine worker `${base}worker.js`.
   * `base` defaults to the folder of lupa.js. `convolution: 'burn'` (for benchmarks) runs Burn's
   * own convolution instead of Lupa's fused kernels; the results agree.
   */
  static create(options?: {
    base?: string | URL;
    backend?: Backend;
    workers?: 'auto' | number;
    convolution?: 'lupa' | 'burn';
  }): Promise<Upscaler>;

  /** Which backend runs (updated whenever the engine is started again). */
  readonly backend: BackendInfo;
  readonly catalogue: Catalogue;
  readonly index: ModelIndex;

  plan(input: Input, request: JobRequest, options?: { signal?: AbortSignal }): Promise<JobPlan>;
  upscale(
    input: Input,
    request: JobRequest,
    options?: {
      signal?: AbortSignal;
      onProgress?: (event: ProgressEvent) => void;
      /** Tile side in input pixels (0: from the device's limits). */
      tile?: number;
      /** A test hook: destroys the WebGPU device once this many tiles are done. */
      loseDeviceAfterTile?: number;
      /** A test hook: makes the WebGPU device report an error (as out of memory) then. */
      failDeviceAfterTile?: number;
    },
  ): Promise<UpscaleResult>;
  /** Fetches (or takes from the cache) and loads one model's weights. */
  warmup(modelId: string, options?: { signal?: AbortSignal; onProgress?: (event: ProgressEvent) => void }): Promise<void>;
  /** A stored (uncompressed) zip of `files`. */
  zip(files: { name: string; bytes: Input }[], options?: { signal?: AbortSignal }): Promise<Blob>;
  /** Replaces the worker (pending calls reject with kind 'backend') and starts the engine again. */
  restart(backend?: Backend): Promise<void>;
  /** Stops the worker; pending and later calls reject. */
  dispose(): void;
}
