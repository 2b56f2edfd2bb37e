// <lupa-upscaler>: Lupa as a form field. A host page loads this one module and puts the element in
// its own <form>; the visitor chooses (or drops) an image, it is upscaled on the visitor's device,
// and the form's ordinary submit uploads the upscaled file under the element's `name`: never the
// original, unless `original-name` asks for it too.
//
//   <script type="module" src="https://cdn.example/lupa/lupa-upscaler.js"></script>
//   <form method="post" action="/upload" enctype="multipart/form-data">
//     <lupa-upscaler name="photo" mode="precision" scale="2" format="jpeg" required></lupa-upscaler>
//     <button>Send</button>
//   </form>
//
// Attributes: name; mode, scale or fit ("1920x1080"), denoise, format, quality, model (the CLI's
// options, lupa.d.ts JobRequest); accept (the file types offered, image types by default); base
// (where Lupa's files are served, default: this module's folder); backend ('auto', 'webgpu',
// 'cpu'); original-name (also submit the original under this name); required; disabled; preload
// (start the engine when the element appears rather than at the first image).
// Events (bubbling): 'lupa-progress' (detail: lupa.js ProgressEvent), 'lupa-done' (detail: the
// upscaled File), 'lupa-error' (detail: the LupaError; kind 'cancelled' after Cancel).
// Style: CSS custom properties --lupa-accent, --lupa-radius, --lupa-border, --lupa-gap, and the
// parts drop, choose, plan, progress, preview, before, after, cancel, clear. Colours follow the host
// (currentColor), so it fits light and dark pages.
// The form cannot be submitted while an upscale runs (the field reports "still upscaling"), and a
// `required` element without a result reports a missing value, as a required <input> would.
// Every element on a page shares one engine per base and backend.

import { LupaError, Upscaler, toLupaError } from './lupa.js';

/** The file types offered when `accept` is not given: what the engine reads. */
export const DEFAULT_ACCEPT = 'image/png,image/jpeg,image/webp,image/bmp,image/gif,image/tiff';

const engines = new Map(); // `${base} ${backend}` → Promise<Upscaler>

/** The page's engine for `base` and `backend`, started at the first call. A failed start is not
 * kept: the next call tries again. */
function sharedUpscaler(base, backend) {
  const key = `${base} ${backend}`;
  let engine = engines.get(key);
  if (!engine) {
    engine = Upscaler.create({ base, backend });
    engines.set(key, engine);
    engine.catch(() => engines.delete(key));
  }
  return engine;
}

const STYLE = `
:host { display: block; color-scheme: light dark; --lupa-accent: #2563c9; --lupa-radius: 0.5rem;
  --lupa-border: color-mix(in srgb, currentColor 35%, transparent); --lupa-gap: 0.75rem; }
:host([hidden]) { display: none; }
.drop { display: flex; flex-wrap: wrap; align-items: center; gap: var(--lupa-gap); padding: var(--lupa-gap);
  border: 2px dashed var(--lupa-border); border-radius: var(--lupa-radius); }
.drop.over { border-color: var(--lupa-accent); background: color-mix(in srgb, var(--lupa-accent) 12%, transparent); }
button { font: inherit; color: inherit; padding: 0.4em 0.9em; border-radius: var(--lupa-radius);
  border: 1px solid var(--lupa-border); background: color-mix(in srgb, currentColor 6%, transparent); cursor: pointer; }
button.primary { background: var(--lupa-accent); border-color: var(--lupa-accent); color: #fff; }
button:focus-visible { outline: 3px solid var(--lupa-accent); outline-offset: 2px; }
button:disabled { opacity: 0.5; cursor: default; }
.plan { margin: var(--lupa-gap) 0 0; min-height: 1.4em; }
.plan[data-error-kind] { color: #d33; font-weight: 600; }
progress { width: 100%; margin-top: var(--lupa-gap); accent-color: var(--lupa-accent); }
.preview { display: flex; flex-wrap: wrap; gap: var(--lupa-gap); margin: var(--lupa-gap) 0 0; }
figure { margin: 0; flex: 1 1 10rem; max-width: 20rem; }
img { display: block; width: 100%; height: auto; border-radius: var(--lupa-radius); border: 1px solid var(--lupa-border);
  background: repeating-conic-gradient(#8884 0 25%, transparent 0 50%) 0 0 / 16px 16px; }
figcaption { font-size: 0.9em; opacity: 0.8; }
.actions { display: flex; gap: var(--lupa-gap); margin-top: var(--lupa-gap); }
[hidden] { display: none !important; }
`;

let sheet = null;
/** The elements' one style sheet: a constructed one, which a host's CSP without
 * style-src 'unsafe-inline' allows (a <style> element it would block). */
function styleSheet() {
  if (!sheet) {
    sheet = new CSSStyleSheet();
    sheet.replaceSync(STYLE);
  }
  return sheet;
}

const MARKUP = `
<div class="drop" id="drop" part="drop" role="group" aria-labelledby="choose hint">
  <button type="button" class="primary" id="choose" part="choose">Choose an image</button>
  <span id="hint">or drop one here. It is upscaled on this device; only the result is sent.</span>
  <input type="file" id="file" hidden>
</div>
<p class="plan" id="plan" part="plan" role="status" aria-live="polite"></p>
<progress id="progress" part="progress" aria-label="Upscaling progress" hidden></progress>
<div class="preview" id="preview" part="preview" hidden>
  <figure><img id="before" part="before" alt="The original image"><figcaption id="before-caption">Before</figcaption></figure>
  <figure><img id="after" part="after" alt="The upscaled image" hidden><figcaption id="after-caption">After</figcaption></figure>
</div>
<div class="actions">
  <button type="button" id="cancel" part="cancel" hidden>Cancel</button>
  <button type="button" id="clear" part="clear" hidden>Remove</button>
</div>
`;

/** `text` ending in a full stop. */
const sentence = (text) => (/[.!?…]$/.test(text) ? text : `${text}.`);

/** `${stem}_${width}x${height}.${extension}`, the CLI's and the app's naming. */
function resultName(original, width, height, extension) {
  const stem = (original || 'image').replace(/\.[^.]+$/, '');
  return `${stem}_${width}x${height}.${extension}`;
}

/** Whether `file` is one of the types `accept` lists (MIME types, `type/*`, or `.ext`). A file
 * the browser gives no type is let through: the engine tells what it is. */
function accepted(file, accept) {
  const rules = accept.split(',').map((r) => r.trim().toLowerCase()).filter(Boolean);
  const type = (file.type || '').toLowerCase();
  if (rules.length === 0 || !type) return true;
  const name = (file.name || '').toLowerCase();
  return rules.some((rule) => (rule.startsWith('.') ? name.endsWith(rule)
    : rule.endsWith('/*') ? type.startsWith(rule.slice(0, -1)) : type === rule));
}

export class LupaUpscalerElement extends HTMLElement {
  static formAssociated = true;
  static observedAttributes = ['accept'];

  #internals;
  #ui = {};
  #job = null;       // the running upscale's AbortController
  #result = null;    // the upscaled File, or null
  #original = null;  // the File chosen
  #urls = [];        // blob: URLs of the previews, revoked when replaced
  #message = '';     // why the field is invalid, beyond a missing value

  constructor() {
    super();
    this.#internals = this.attachInternals();
    const root = this.attachShadow({ mode: 'open', delegatesFocus: true });
    root.adoptedStyleSheets = [styleSheet()];
    const template = document.createElement('template');
    template.innerHTML = MARKUP;
    root.append(template.content);
    for (const el of root.querySelectorAll('[id]')) this.#ui[el.id] = el;
    const ui = this.#ui;
    ui.choose.addEventListener('click', () => ui.file.click());
    ui.file.addEventListener('change', () => {
      const [file] = ui.file.files;
      ui.file.value = '';
      if (file) this.upscale(file);
    });
    ui.cancel.addEventListener('click', () => this.cancel());
    ui.clear.addEventListener('click', () => {
      this.#reset();
      ui.choose.focus();
    });
    ui.drop.addEventListener('dragover', (e) => {
      if (this.#disabled) return;
      e.preventDefault();
      ui.drop.classList.add('over');
    });
    ui.drop.addEventListener('dragleave', () => ui.drop.classList.remove('over'));
    ui.drop.addEventListener('drop', (e) => {
      e.preventDefault();
      ui.drop.classList.remove('over');
      const file = e.dataTransfer?.files?.[0];
      if (file && !this.#disabled) this.upscale(file);
    });
  }

  connectedCallback() {
    this.#ui.file.accept = this.accept;
    this.#validate();
    if (this.hasAttribute('preload')) this.#engine().catch(() => {}); // reported at the first image
  }

  attributeChangedCallback() {
    this.#ui.file.accept = this.accept;
  }

  disconnectedCallback() {
    this.#job?.abort();
  }

  formResetCallback() {
    this.#reset();
  }

  formDisabledCallback(disabled) {
    this.#ui.choose.disabled = disabled;
    if (disabled) this.#job?.abort();
  }

  // ---- the form field's interface, as an <input> has it ---------------------------------------

  get form() { return this.#internals.form; }
  get name() { return this.getAttribute('name') ?? ''; }
  get type() { return this.localName; }
  get validity() { return this.#internals.validity; }
  get validationMessage() { return this.#internals.validationMessage; }
  get willValidate() { return this.#internals.willValidate; }
  checkValidity() { return this.#internals.checkValidity(); }
  reportValidity() { return this.#internals.reportValidity(); }
  get accept() { return this.getAttribute('accept') || DEFAULT_ACCEPT; }
  /** The upscaled File the form submits, or null. */
  get value() { return this.#result; }
  /** The File chosen, or null (submitted only under `original-name`). */
  get original() { return this.#original; }
  /** Whether an upscale is running. */
  get busy() { return this.#job !== null; }

  /** The job the attributes describe (lupa.d.ts JobRequest). */
  get request() {
    const request = {};
    for (const key of ['mode', 'format', 'model']) {
      const value = this.getAttribute(key);
      if (value) request[key] = value;
    }
    for (const key of ['scale', 'denoise', 'quality']) {
      const value = this.getAttribute(key);
      if (value) request[key] = Number(value);
    }
    const fit = this.getAttribute('fit');
    if (fit) {
      const box = fit.split(/[x×, ]+/i).map(Number);
      if (box.length !== 2 || box.some((n) => !Number.isInteger(n) || n <= 0)) {
        throw new LupaError('bad-input', `fit="${fit}" is not a box such as 1920x1080`);
      }
      request.fit = box;
    }
    return request;
  }

  /** Cancels the running upscale; the field keeps no value. */
  cancel() {
    this.#job?.abort();
  }

  /**
   * Upscales `file` as the attributes say and makes the result the field's value. Resolves to the
   * upscaled File, or null if it failed or was cancelled (a 'lupa-error' event says why).
   * @param {File | Blob} file
   * @returns {Promise<File | null>}
   */
  async upscale(file) {
    this.#reset();
    const job = new AbortController();
    this.#job = job;
    const ui = this.#ui;
    this.#original = file instanceof File ? file : new File([file], 'image', { type: file.type });
    this.#setValue(null, 'The image is still being upscaled.');
    ui.before.src = this.#url(file);
    ui.preview.hidden = false;
    ui.cancel.hidden = false;
    ui.progress.hidden = false;
    ui.progress.removeAttribute('value');
    this.#say('Starting the engine…');
    try {
      if (!accepted(this.#original, this.accept)) {
        throw new LupaError('bad-input', `${this.#original.name} is not one of the accepted types (${this.accept})`);
      }
      const request = this.request;
      const upscaler = await this.#engine();
      const signal = job.signal;
      const result = await upscaler.upscale(file, request, {
        signal,
        onProgress: (event) => {
          if (this.#job !== job) return;
          if (event.phase === 'planned') this.#say(`${sentence(event.plan.explanation)} Upscaling to ${event.plan.output.join('×')}…`);
          if (event.phase === 'weights') this.#say(`Loading ${event.model.name}…`);
          if (event.phase === 'tiles') {
            ui.progress.max = event.total;
            ui.progress.value = event.done;
          }
          this.#emit('lupa-progress', event);
        },
      });
      if (this.#job !== job) return null;
      const name = resultName(this.#original.name, result.width, result.height, result.extension);
      const upscaled = new File([result.blob], name, { type: result.mime });
      ui.after.src = this.#url(upscaled);
      ui.after.hidden = false;
      ui['before-caption'].textContent = `Before: ${result.plan.input.join('×')}`;
      ui['after-caption'].textContent = `After: ${result.width}×${result.height}`;
      this.#say(`${sentence(result.explanation)} Ready to send: ${name}.`);
      this.#setValue(upscaled, '');
      this.#finish();
      this.#emit('lupa-done', upscaled);
      return upscaled;
    } catch (e) {
      if (this.#job !== job) return null;
      const error = toLupaError(e);
      const text = error.kind === 'cancelled' ? 'Cancelled.' : `Error: ${error.message}`;
      this.#say(text, error.kind);
      ui.preview.hidden = error.kind === 'cancelled';
      this.#setValue(null, error.kind === 'cancelled' ? '' : `The image could not be upscaled: ${error.message}`);
      this.#finish();
      this.#emit('lupa-error', error);
      return null;
    }
  }

  // ---- internals ------------------------------------------------------------------------------

  get #disabled() {
    return this.matches(':disabled');
  }

  #engine() {
    const base = this.getAttribute('base') || new URL('./', import.meta.url).href;
    return sharedUpscaler(new URL(base, document.baseURI).href, this.getAttribute('backend') || 'auto');
  }

  #finish() {
    this.#job = null;
    this.#ui.cancel.hidden = true;
    this.#ui.progress.hidden = true;
    this.#ui.clear.hidden = false;
  }

  /** Back to empty: no file, no result, no preview. Cancels a running upscale. */
  #reset() {
    const job = this.#job;
    this.#job = null;
    job?.abort();
    this.#original = null;
    this.#setValue(null, '');
    for (const url of this.#urls) URL.revokeObjectURL(url);
    this.#urls = [];
    const ui = this.#ui;
    ui.before.removeAttribute('src');
    ui.after.removeAttribute('src');
    ui.after.hidden = true;
    ui['before-caption'].textContent = 'Before';
    ui['after-caption'].textContent = 'After';
    ui.preview.hidden = true;
    ui.cancel.hidden = true;
    ui.clear.hidden = true;
    ui.progress.hidden = true;
    this.#say('');
  }

  /** The field's value (what the form submits) and why it is invalid, if it is. */
  #setValue(file, message) {
    this.#result = file;
    this.#message = message;
    const originalName = this.getAttribute('original-name');
    if (file && originalName && this.#original) {
      const data = new FormData();
      if (this.name) data.append(this.name, file);
      data.append(originalName, this.#original);
      this.#internals.setFormValue(data);
    } else {
      this.#internals.setFormValue(file);
    }
    this.#validate();
  }

  #validate() {
    const anchor = this.#ui.choose;
    if (this.#message) this.#internals.setValidity({ customError: true }, this.#message, anchor);
    else if (this.hasAttribute('required') && !this.#result) {
      this.#internals.setValidity({ valueMissing: true }, 'Choose an image to upscale.', anchor);
    } else this.#internals.setValidity({});
  }

  #say(text, errorKind) {
    const plan = this.#ui.plan;
    plan.textContent = text;
    if (errorKind && errorKind !== 'cancelled') plan.dataset.errorKind = errorKind;
    else delete plan.dataset.errorKind;
  }

  #url(blob) {
    const url = URL.createObjectURL(blob);
    this.#urls.push(url);
    return url;
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }
}

if (!customElements.get('lupa-upscaler')) customElements.define('lupa-upscaler', LupaUpscalerElement);
