// Types of the <lupa-upscaler> widget (lupa-upscaler.js): a form-associated custom element that
// upscales the chosen image on the visitor's device and submits the result with its form.

import type { JobRequest, LupaError, ProgressEvent } from './lupa.js';

/** The file types offered when `accept` is not given. */
export const DEFAULT_ACCEPT: string;

export class LupaUpscalerElement extends HTMLElement {
  static readonly formAssociated: true;
  /** The form it belongs to, as an <input>'s `form`. */
  readonly form: HTMLFormElement | null;
  /** The `name` attribute: the form field the upscaled file is submitted under. */
  readonly name: string;
  readonly type: 'lupa-upscaler';
  readonly validity: ValidityState;
  readonly validationMessage: string;
  readonly willValidate: boolean;
  checkValidity(): boolean;
  reportValidity(): boolean;
  /** The `accept` attribute, or DEFAULT_ACCEPT. */
  readonly accept: string;
  /** The upscaled File the form submits, or null. */
  readonly value: File | null;
  /** The File chosen, or null (submitted only under the `original-name` attribute's name). */
  readonly original: File | null;
  /** Whether an upscale is running (the field is invalid meanwhile). */
  readonly busy: boolean;
  /** The job the attributes describe: mode, scale or fit, denoise, format, quality, model. */
  readonly request: JobRequest;
  /** Upscales `file`; resolves to the result, or null if it failed or was cancelled. */
  upscale(file: File | Blob): Promise<File | null>;
  /** Cancels the running upscale. */
  cancel(): void;
}

export interface LupaUpscalerEventMap {
  'lupa-progress': CustomEvent<ProgressEvent>;
  'lupa-done': CustomEvent<File>;
  'lupa-error': CustomEvent<LupaError>;
}

declare global {
  interface HTMLElementTagNameMap {
    'lupa-upscaler': LupaUpscalerElement;
  }
  interface HTMLElementEventMap extends LupaUpscalerEventMap {}
}
