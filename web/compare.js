// The before/after comparison of one result, zoomed and panned with both halves locked together:
// the upscaled image, with the original drawn over its left part, enlarged by the browser so that
// the region the result came from (the crop, or all of it) lies exactly over the result; the split
// line, dragged by mouse or touch (or the slider, from the keyboard), cuts between them.
//
//   const compare = createCompare({ result, compare, after, before, beforeClip, divider, slider,
//                                   download, previewNote });
//   compare.show(item);   // item: {url (the original), result: {url, blob, filename, extension,
//                         //        width, height, ms, crop: [x, y, w, h] | null}}; fits it
//   compare.layout();     // after a change of size (it listens to resize, the slider and loads)
//   compare.hide();
// The zoom buttons (#zoom-out, #zoom-in, #zoom-fit, #zoom-1), the readout (#zoom-level) and the
// region canvas (#region) are found inside `result`.
//
// Coordinates: the view is {s, tx, ty}: a result pixel (x, y) lies at (tx + s·x, ty + s·y) CSS px
// from the viewport's (#compare's) top-left corner: one transform, translate(tx, ty) scale(s),
// moves the result (.stage), the original (the same, times the crop's enlargement, less the crop's
// offset) and the region canvas. "Fit" shows the whole result, centred; "1:1" is one result pixel
// per device pixel (s = 1 / devicePixelRatio, shown as 100 %). Zoom runs from the lesser of fit and
// 1:1 to 16 times the greater; from 1:1 up the result is drawn with square pixels (the original
// stays as a browser enlarges it, smooth). Along each axis the result, when larger than the
// viewport, always covers it; when smaller, it is centred; the translation is in whole device
// pixels. The split (the slider's value, 0 to 100, any step) is a fraction of the viewport's width:
// the line stays where it is on screen while the images move under it.
//
// Input: wheel (about the cursor), two-finger pinch (about the fingers' midpoint, panning with
// it), one-pointer drag (pan), the buttons, and keys on the focused viewport: arrows pan, + and −
// zoom, 0 fits, 1 is 1:1.
//
// Results too large to display (a side over 16384 px or over 2^28 pixels, Chrome's limits, or a
// failed decode): the result is not given to an <img>; #region shows the visible region alone,
// cut out of the file and scaled by createImageBitmap, redrawn shortly after each zoom or pan (the
// last drawing follows the view meanwhile). If that fails too, the original alone is shown, with
// #preview-note saying so; the download is complete either way. For tests, ?previewlimit=N
// lowers the side limit to N pixels.
//
// #result carries data-width, data-height and data-ms of the result shown; #compare carries
// data-zoom (s), data-pan ("tx,ty") and data-mode ("image", "region" or "original"); #region
// carries data-region ("x,y,w,h": the result pixels its drawing shows). The viewport's height
// follows the result's shape, at most 70 % of the window's.

const params = new URLSearchParams(location.search);
const MAX_SIDE = Number(params.get('previewlimit')) || 16384;
const MAX_PIXELS = 2 ** 28;
const STEP = 1.5;      // a button's or key's zoom factor
const PAN_STEP = 40;   // an arrow key's pan, CSS px
const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

/**
 * @param {{ result: HTMLElement, compare: HTMLElement, after: HTMLImageElement,
 *           before: HTMLImageElement, beforeClip: HTMLElement, divider: HTMLElement,
 *           slider: HTMLInputElement, download: HTMLAnchorElement, previewNote: HTMLElement }} ui
 */
export function createCompare(ui) {
  const find = (id) => ui.result.querySelector(`#${id}`);
  const stage = ui.compare.querySelector('.stage');
  const region = /** @type {HTMLCanvasElement} */ (find('region'));
  const buttons = { out: find('zoom-out'), in: find('zoom-in'), fit: find('zoom-fit'), one: find('zoom-1') };
  const readout = find('zoom-level');
  let shown = null;   // the item shown
  let mode = 'image'; // 'image', 'region' (the visible region drawn) or 'original' (it failed too)
  let view = { s: 1, tx: 0, ty: 0 };
  let fitted = true;  // the view follows the viewport's size
  let drawn = null;   // the region canvas's drawing: {x, y, s} (its first result pixel, its scale)
  let drawTimer = 0;
  let requested = ''; // the view whose region is drawn, or waits to be
  let drawSeq = 0;

  const size = () => [shown.result.width, shown.result.height];
  const box = () => [ui.compare.clientWidth, ui.compare.clientHeight];
  const one = () => 1 / devicePixelRatio;
  const fitScale = () => {
    const [w, h] = size();
    const [vw, vh] = box();
    return Math.min(vw / w, vh / h);
  };
  const limits = () => [Math.min(fitScale(), one()), 16 * Math.max(fitScale(), one())];

  /** The view held to the rules: zoom within the limits; per axis covering or centred. */
  function held({ s, tx, ty }) {
    const [lo, hi] = limits();
    s = clamp(s, lo, hi);
    const axis = (t, extent, port) => {
      const t1 = extent * s <= port ? (port - extent * s) / 2 : clamp(t, port - extent * s, 0);
      return Math.round(t1 * devicePixelRatio) / devicePixelRatio; // whole device pixels: sharp at 1:1
    };
    const [w, h] = size();
    const [vw, vh] = box();
    return { s, tx: axis(tx, w, vw), ty: axis(ty, h, vh) };
  }

  function apply() {
    const { s, tx, ty } = view;
    const [w, h] = size();
    const [vw] = box();
    stage.style.transform = `translate(${tx}px, ${ty}px) scale(${s})`;
    ui.after.style.width = `${w}px`;
    ui.after.style.height = `${h}px`;
    // The original: its crop region (in its own pixels) onto the result's whole extent.
    const ow = ui.before.naturalWidth;
    const oh = ui.before.naturalHeight;
    ui.before.hidden = !ow;
    if (ow) {
      const [cx, cy, cw, ch] = shown.result.crop ?? [0, 0, ow, oh];
      const kx = (w / cw) * s;
      const ky = (h / ch) * s;
      Object.assign(ui.before.style, {
        width: `${ow}px`, height: `${oh}px`,
        transform: `translate(${tx - cx * kx}px, ${ty - cy * ky}px) scale(${kx}, ${ky})`,
        clipPath: `inset(${cy}px ${ow - cx - cw}px ${oh - cy - ch}px ${cx}px)`,
      });
    }
    const split = mode === 'original' ? vw : (Number(ui.slider.value) / 100) * vw;
    ui.beforeClip.style.width = `${split}px`;
    ui.divider.style.left = `${split}px`;
    if (drawn) {
      region.style.transform = `translate(${tx + drawn.x * s}px, ${ty + drawn.y * s}px) scale(${s / drawn.s})`;
    }
    ui.compare.classList.toggle('pixelated', s * devicePixelRatio >= 1);
    ui.compare.dataset.zoom = String(s);
    ui.compare.dataset.pan = `${tx},${ty}`;
    const [lo, hi] = limits();
    // aria-disabled, not disabled: a button pressed to the limit keeps the keyboard's focus.
    buttons.out.setAttribute('aria-disabled', String(s <= lo * 1.0001));
    buttons.in.setAttribute('aria-disabled', String(s >= hi / 1.0001));
    const percent = `${Math.round(s * devicePixelRatio * 100)} %`;
    readout.value = fitted ? `Fit (${percent})` : percent;
    const key = `${s},${tx},${ty},${box()}`;
    if (mode === 'region' && key !== requested) { // a new view: its region drawn once it rests
      requested = key;
      clearTimeout(drawTimer);
      drawTimer = setTimeout(drawRegion, drawn ? 120 : 0);
    }
  }

  /** Sizes the viewport to the result's shape (at most 70 % of the window) and lays it out. */
  function layout() {
    if (!shown || ui.result.hidden) return;
    const [w, h] = size();
    const vw = ui.compare.clientWidth;
    ui.compare.style.height = `${Math.round(Math.min(innerHeight * 0.7, Math.max(240, (vw * h) / w)))}px`;
    view = fitted ? held({ s: fitScale(), tx: 0, ty: 0 }) : held(view);
    apply();
  }

  /** Zooms to scale `s` about the viewport point (px, py); the default: its centre. */
  function zoomTo(s, px = box()[0] / 2, py = box()[1] / 2) {
    const [lo, hi] = limits();
    const s1 = clamp(s, lo, hi);
    const r = s1 / view.s;
    fitted = false;
    view = held({ s: s1, tx: px - (px - view.tx) * r, ty: py - (py - view.ty) * r });
    apply();
  }

  function fit() {
    fitted = true;
    layout();
  }

  function panBy(dx, dy) {
    fitted = false;
    view = held({ ...view, tx: view.tx + dx, ty: view.ty + dy });
    apply();
  }

  /** The visible region of the result, cut out of its file at the screen's resolution. */
  async function drawRegion() {
    const seq = ++drawSeq;
    const { s, tx, ty } = view;
    const [w, h] = size();
    const [vw, vh] = box();
    const x = clamp(Math.floor(-tx / s), 0, w - 1);
    const y = clamp(Math.floor(-ty / s), 0, h - 1);
    const cw = clamp(Math.ceil((vw - tx) / s), x + 1, w) - x;
    const ch = clamp(Math.ceil((vh - ty) / s), y + 1, h) - y;
    const dpr = devicePixelRatio;
    const resizeWidth = Math.max(1, Math.round(cw * s * dpr));
    const resizeHeight = Math.max(1, Math.round(ch * s * dpr));
    try {
      const bitmap = await createImageBitmap(shown.result.blob, x, y, cw, ch,
        { resizeWidth, resizeHeight, resizeQuality: s * dpr >= 1 ? 'pixelated' : 'high' });
      if (seq !== drawSeq || mode !== 'region') return bitmap.close();
      region.width = resizeWidth;
      region.height = resizeHeight;
      region.style.width = `${resizeWidth / dpr}px`;
      region.style.height = `${resizeHeight / dpr}px`;
      region.getContext('2d').drawImage(bitmap, 0, 0);
      bitmap.close();
      region.dataset.region = `${x},${y},${cw},${ch}`;
      region.hidden = false;
      drawn = { x, y, s: resizeWidth / dpr / cw };
      apply();
    } catch {
      if (seq !== drawSeq || mode !== 'region') return;
      setMode('original'); // the browser cannot cut it out either
    }
  }

  const notes = {
    region: 'This result is larger than the browser can display whole (Chrome stops at 16384 pixels '
      + 'a side, iOS Safari far sooner): you see the part in view, drawn from the file. The download is complete.',
    original: 'This result is larger than the browser can display (Chrome stops at 16384 pixels a '
      + 'side, iOS Safari far sooner): the original is shown, enlarged. The download is complete.',
  };

  function setMode(next) {
    mode = next;
    ui.compare.dataset.mode = mode;
    ui.previewNote.hidden = mode === 'image';
    if (mode !== 'image') ui.previewNote.textContent = notes[mode];
    ui.after.hidden = mode !== 'image';
    if (mode !== 'image') ui.after.removeAttribute('src');
    requested = '';
    clearTimeout(drawTimer);
    drawn = null;
    region.hidden = true;
    ui.slider.hidden = ui.divider.hidden = mode === 'original';
    if (shown) layout();
  }

  function show(item) {
    shown = item;
    const { result } = item;
    ui.download.href = result.url;
    ui.download.download = result.filename;
    ui.download.textContent = `Download ${result.extension.toUpperCase()}`;
    ui.result.hidden = false;
    ui.result.dataset.width = result.width;
    ui.result.dataset.height = result.height;
    ui.result.dataset.ms = Math.round(result.ms);
    ui.before.src = item.url;
    fitted = true;
    drawSeq += 1;
    const tooLarge = Math.max(result.width, result.height) > MAX_SIDE || result.width * result.height > MAX_PIXELS;
    setMode(!tooLarge ? 'image' : result.blob ? 'region' : 'original');
    if (mode === 'image') ui.after.src = result.url;
  }

  function hide() {
    shown = null;
    ui.result.hidden = true;
    clearTimeout(drawTimer);
  }

  // One pointer pans; two pinch (zoom about their midpoint, which the image follows). Each gesture
  // runs from the view and the points when the number of pointers last changed.
  const pointers = new Map();
  let start = null;
  const local = (e) => {
    const r = ui.compare.getBoundingClientRect();
    return { x: e.clientX - r.left - ui.compare.clientLeft, y: e.clientY - r.top - ui.compare.clientTop };
  };
  const restart = () => {
    start = { view: { ...view }, points: [...pointers.values()] };
    ui.compare.classList.toggle('panning', pointers.size > 0);
  };
  ui.compare.addEventListener('pointerdown', (e) => {
    if (!shown || ui.divider.contains(e.target) || (e.pointerType === 'mouse' && e.button !== 0)) return;
    ui.compare.setPointerCapture(e.pointerId);
    pointers.set(e.pointerId, local(e));
    restart();
  });
  ui.compare.addEventListener('pointermove', (e) => {
    if (!pointers.has(e.pointerId)) return;
    pointers.set(e.pointerId, local(e));
    const [a, b] = pointers.values();
    const [a0, b0] = start.points;
    fitted = false;
    if (!b) {
      view = held({ ...start.view, tx: start.view.tx + a.x - a0.x, ty: start.view.ty + a.y - a0.y });
    } else {
      const [lo, hi] = limits();
      const s = clamp(start.view.s * (Math.hypot(b.x - a.x, b.y - a.y) / Math.hypot(b0.x - a0.x, b0.y - a0.y) || 1), lo, hi);
      const r = s / start.view.s;
      const [mx, my, mx0, my0] = [(a.x + b.x) / 2, (a.y + b.y) / 2, (a0.x + b0.x) / 2, (a0.y + b0.y) / 2];
      view = held({ s, tx: mx - (mx0 - start.view.tx) * r, ty: my - (my0 - start.view.ty) * r });
    }
    apply();
  });
  for (const type of ['pointerup', 'pointercancel']) {
    ui.compare.addEventListener(type, (e) => {
      if (pointers.delete(e.pointerId)) restart();
    });
  }
  ui.compare.addEventListener('dragstart', (e) => e.preventDefault());
  ui.compare.addEventListener('wheel', (e) => {
    if (!shown) return;
    e.preventDefault();
    const dy = e.deltaY * (e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? box()[1] : 1);
    const { x, y } = local(e);
    zoomTo(view.s * Math.exp(-dy * (e.ctrlKey ? 0.01 : 0.0015)), x, y); // ctrlKey: a touchpad pinch
  }, { passive: false });
  const zoomIn = () => zoomTo(view.s * STEP);
  const zoomOut = () => zoomTo(view.s / STEP);
  const oneToOne = () => zoomTo(one());
  ui.compare.addEventListener('keydown', (e) => {
    if (!shown || e.altKey || e.metaKey || e.ctrlKey) return;
    const keys = {
      ArrowLeft: () => panBy(PAN_STEP, 0), ArrowRight: () => panBy(-PAN_STEP, 0),
      ArrowUp: () => panBy(0, PAN_STEP), ArrowDown: () => panBy(0, -PAN_STEP),
      '+': zoomIn, '=': zoomIn, '-': zoomOut, '−': zoomOut, '_': zoomOut, 0: fit, 1: oneToOne,
    };
    if (!keys[e.key]) return;
    e.preventDefault();
    keys[e.key]();
  });
  buttons.in.addEventListener('click', zoomIn);
  buttons.out.addEventListener('click', zoomOut);
  buttons.fit.addEventListener('click', fit);
  buttons.one.addEventListener('click', oneToOne);

  // The split line, dragged: the slider follows (and says so with an input event).
  ui.divider.addEventListener('pointerdown', (e) => {
    if (e.pointerType === 'mouse' && e.button !== 0) return;
    ui.divider.setPointerCapture(e.pointerId);
  });
  ui.divider.addEventListener('pointermove', (e) => {
    if (!ui.divider.hasPointerCapture(e.pointerId)) return;
    ui.slider.value = String(clamp((local(e).x / box()[0]) * 100, 0, 100));
    ui.slider.dispatchEvent(new Event('input', { bubbles: true }));
  });

  ui.slider.addEventListener('input', layout);
  ui.after.addEventListener('load', layout);
  ui.before.addEventListener('load', layout);
  ui.after.addEventListener('error', () => {
    if (shown && mode === 'image' && ui.after.getAttribute('src') === shown.result.url) {
      setMode(shown.result.blob ? 'region' : 'original');
    }
  });
  window.addEventListener('resize', layout);
  let width = 0; // a scroll bar that comes or goes changes the width alone
  new ResizeObserver(() => {
    if (ui.compare.clientWidth !== width) requestAnimationFrame(layout);
    width = ui.compare.clientWidth;
  }).observe(ui.compare);

  return { show, layout, hide };
}
