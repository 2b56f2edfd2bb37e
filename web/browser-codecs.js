// What the browser's own codecs add to the engine's.
//
// Lossy WebP out, by the browser's own encoder: the engine encodes the result as PNG (lossless,
// 8-bit, alpha), the browser decodes it into an OffscreenCanvas and `convertToBlob({ type:
// 'image/webp', quality })` encodes it. The wasm engines write lossless WebP only (libwebp, which
// the native build uses for lossy WebP, is C and would add its size to the module for one format).
//
// Caveats (stated in the result's explanation): the canvas is sRGB and drops metadata (EXIF, ICC);
// transparent pixels lose their colour (premultiplied alpha); the canvas has a size limit
// (Chrome: 32767 pixels a side, 268 megapixels), beyond it the result is an error naming it.
//
//   import { LOSSY_WEBP, engineRequest, encodeLossyWebp } from './browser-codecs.js';
//   catalogue.formats.push(LOSSY_WEBP)     // where the browser has OffscreenCanvas
//   engineRequest(request)                 // the request the engine runs: PNG instead
//   await encodeLossyWebp(result, quality) // the engine's PNG result as lossy WebP
//
// Formats in that `image` does not decode (AVIF, HEIC where the browser has it): the engine's
// "unknown format" refusal makes `browserDecoded` decode the file with createImageBitmap and hand
// the engine a PNG instead; the plan and the result say so (BROWSER_DECODED).

import { LupaError, toLupaError } from './errors.js';

/** The format's catalogue entry (lupa.d.ts FormatId 'webp-lossy'); quality 1–100, default 80. */
export const LOSSY_WEBP = { id: 'webp-lossy', label: 'WebP (lossy)', quality: 80 };

/** Whether this browser has the codecs both directions use: createImageBitmap and OffscreenCanvas
 * (lossy WebP is offered only then). */
export const hasCanvasCodecs = () => typeof OffscreenCanvas === 'function' && typeof createImageBitmap === 'function';

/** `bitmap` drawn on a canvas of its size and encoded by the browser as `type` (`quality` 0–1
 * where the type has one); the bitmap is closed. */
async function encodeBitmap(bitmap, type, quality) {
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  canvas.getContext('2d').drawImage(bitmap, 0, 0);
  bitmap.close();
  return canvas.convertToBlob({ type, quality });
}

/** The request the engine is given: a lossy WebP job is a PNG job, without a quality. */
export function engineRequest(request) {
  if (request?.format !== LOSSY_WEBP.id) return request;
  const { quality, ...rest } = request;
  return { ...rest, format: 'png' };
}

/** The quality of a lossy WebP request, checked as the engine checks JPEG's (1–100). */
export function lossyQuality(request) {
  const quality = request.quality ?? LOSSY_WEBP.quality;
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new LupaError('bad-input', `quality must be a whole number from 1 to 100, not ${quality}`);
  }
  return quality;
}

/**
 * Re-encodes the engine's PNG result as lossy WebP at `quality` (1–100).
 * @param {{ bytes: ArrayBuffer, width: number, height: number, explanation: string }} result
 * @param {number} quality
 */
export async function encodeLossyWebp(result, quality) {
  const { width, height } = result;
  let blob;
  try {
    const bitmap = await createImageBitmap(new Blob([result.bytes], { type: 'image/png' }),
      { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    blob = await encodeBitmap(bitmap, 'image/webp', quality / 100);
  } catch (e) {
    throw new LupaError('limit', `the browser cannot encode a ${width}×${height} image as lossy WebP `
      + `(${e.message}); choose lossless WebP or PNG, or a smaller size`);
  }
  if (blob.type !== 'image/webp') {
    throw new LupaError('encode', 'this browser has no WebP encoder; choose lossless WebP or PNG');
  }
  const bytes = await blob.arrayBuffer();
  return {
    ...result,
    bytes,
    blob,
    mime: 'image/webp',
    extension: 'webp',
    explanation: `${result.explanation} Lossy WebP by the browser's encoder at quality ${quality} `
      + '(sRGB; metadata not kept).',
  };
}

// ---- formats in that the engine does not read (AVIF, HEIC where the browser has it) ----------

/** Said in the plan and the result of a file the browser decoded. */
export const BROWSER_DECODED = 'Decoded by the browser (a format Lupa does not read itself): colours as the browser '
  + 'renders them in sRGB, metadata not kept.';

/**
 * The file as PNG, decoded by the browser (`createImageBitmap`), where the engine refused it as a
 * format it does not read; otherwise `engineError` is thrown again (also when the browser cannot
 * decode it either).
 * @param {ArrayBuffer} bytes
 * @param {unknown} engineError
 * @returns {Promise<ArrayBuffer>}
 */
export async function browserDecoded(bytes, engineError) {
  const error = toLupaError(engineError);
  const unknownFormat = error.kind === 'bad-input' && /unknown format|not supported/i.test(error.message);
  if (!unknownFormat || !hasCanvasCodecs()) throw error;
  let bitmap;
  try {
    bitmap = await createImageBitmap(new Blob([bytes]));
  } catch {
    throw new LupaError('bad-input', `${error.message}, and the browser cannot decode it either`);
  }
  return (await encodeBitmap(bitmap, 'image/png')).arrayBuffer();
}
