// The crop editor of one queued file: its image with the crop rectangle on it, and the crop's
// numbers. Each file in the queue has its own crop (item.crop), which its job upscales alone.
//
//   const cropper = createCropper(box, { onChange(item) {} });
//   cropper.edit(item);   // opens the editor on a queue item ({name, url, crop}) in `box`
//   cropper.close();      // hides it (the crop stays on the item)
//   cropper.item;         // the item being edited, or null
//
// item.crop is [x, y, width, height] in the image's pixels (integers, inside the image, at least
// 1×1), or null for the whole image; onChange(item) follows every change, while dragging too.
//
// Pointer (mouse, pen, touch; Pointer Events): a drag inside the rectangle moves it, a drag on one
// of its 8 handles resizes it, a drag elsewhere on the image draws a new one. An aspect preset
// (Free, 1:1, 4:3, 16:9) holds every change to that ratio. Keyboard: the rectangle is focusable;
// the arrow keys move it by 1 pixel (10 with Shift), Alt+arrows resize it (right and down grow
// it). The numbers (#crop-x, #crop-y, #crop-w, #crop-h) apply on Enter or when they change, clamped
// to the image. "Whole image" (#crop-clear) removes the crop, "Done" (#crop-done) or Escape closes.

const ASPECTS = [['free', 'Free', null], ['1:1', '1:1', 1], ['4:3', '4:3', 4 / 3], ['16:9', '16:9', 16 / 9]];
const HANDLES = ['nw', 'n', 'ne', 'e', 'se', 's', 'sw', 'w'];
const FIELDS = [['x', 'X'], ['y', 'Y'], ['w', 'Width'], ['h', 'Height']];

const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

/**
 * @param {HTMLElement} box where the editor is built (hidden while nothing is edited)
 * @param {{ onChange?: (item: import('./queue.js').QueueItem) => void }} [options]
 */
export function createCropper(box, { onChange } = {}) {
  box.innerHTML = `
    <h2 class="crop-title"></h2>
    <div class="crop-stage">
      <div class="crop-frame">
        <img class="crop-image" draggable="false" alt="">
        <div class="crop-rect" tabindex="0" role="group" aria-describedby="crop-size"
             aria-label="Crop rectangle: arrow keys move it, Alt and arrow keys resize it">
          ${HANDLES.map((h) => `<div class="crop-handle" data-handle="${h}" aria-hidden="true"></div>`).join('')}
        </div>
      </div>
    </div>
    <div class="crop-fields">
      <label>Aspect<select id="crop-aspect">
        ${ASPECTS.map(([id, label]) => `<option value="${id}">${label}</option>`).join('')}
      </select></label>
      ${FIELDS.map(([id, label]) => `<label>${label}<input id="crop-${id}" type="number" min="0" step="1"></label>`).join('')}
      <button id="crop-clear" type="button" class="secondary">Whole image</button>
      <button id="crop-done" type="button">Done</button>
    </div>
    <p id="crop-size" class="muted" aria-live="polite"></p>`;
  const $ = (selector) => box.querySelector(selector);
  const title = $('.crop-title');
  const stage = $('.crop-stage');
  const image = $('.crop-image');
  const rect = $('.crop-rect');
  const aspectSelect = $('#crop-aspect');
  const size = $('#crop-size');
  const fields = Object.fromEntries(FIELDS.map(([id]) => [id, $(`#crop-${id}`)]));

  let item = null;
  let W = 0; // the image's size in pixels, once loaded
  let H = 0;
  let drag = null; // the pointer drag under way

  const ratio = () => ASPECTS.find(([id]) => id === aspectSelect.value)[2];
  /** The crop as [x, y, w, h], the whole image when there is none. */
  const current = () => item?.crop ?? [0, 0, W, H];

  /** Sets the crop from a rectangle in image pixels (fractions rounded, clamped to the image); the
   * whole image means no crop. */
  function setCrop([x, y, w, h]) {
    if (!W || !item) return;
    w = clamp(Math.round(w), 1, W);
    h = clamp(Math.round(h), 1, H);
    x = clamp(Math.round(x), 0, W - w);
    y = clamp(Math.round(y), 0, H - h);
    const crop = x === 0 && y === 0 && w === W && h === H ? null : [x, y, w, h];
    const changed = String(crop) !== String(item.crop);
    item.crop = crop;
    render();
    if (changed) onChange?.(item);
  }

  function render() {
    if (!W) return;
    const [x, y, w, h] = current();
    Object.assign(rect.style, {
      left: `${(x / W) * 100}%`, top: `${(y / H) * 100}%`, width: `${(w / W) * 100}%`, height: `${(h / H) * 100}%`,
    });
    for (const [id, v] of Object.entries({ x, y, w, h })) fields[id].value = String(v);
    fields.x.max = String(W - 1);
    fields.y.max = String(H - 1);
    fields.w.max = String(W);
    fields.h.max = String(H);
    size.textContent = item.crop
      ? `Crop ${w}×${h} at ${x},${y} of ${W}×${H}.`
      : `The whole image, ${W}×${H}: drag on it to crop.`;
  }

  // ---- the geometry: a rectangle from a fixed corner (or edge) and the pointer ----------------

  /** The rectangle from the fixed corner (ax, ay) to the point (px, py), held to the aspect ratio
   * and inside the image; the larger side of the drag wins. */
  function fromCorner(ax, ay, px, py) {
    px = clamp(px, 0, W);
    py = clamp(py, 0, H);
    const sx = px >= ax ? 1 : -1;
    const sy = py >= ay ? 1 : -1;
    let w = Math.abs(px - ax);
    let h = Math.abs(py - ay);
    const a = ratio();
    if (a) {
      w = Math.max(w, h * a);
      h = w / a;
      const room = Math.min((sx > 0 ? W - ax : ax) / w, (sy > 0 ? H - ay : ay) / h, 1);
      w *= room;
      h *= room;
    }
    return [sx > 0 ? ax : ax - w, sy > 0 ? ay : ay - h, w, h];
  }

  /** The rectangle with one edge moved to `to` (x for e/w, y for n/s), the opposite edge fixed;
   * with an aspect ratio the other side follows, from the rectangle's top (or left) edge. */
  function fromEdge([x, y, w, h], edge, to) {
    const a = ratio();
    const horizontal = edge === 'e' || edge === 'w';
    const fixed = { e: x, w: x + w, s: y, n: y + h }[edge];
    const moved = clamp(to, 0, horizontal ? W : H);
    const start = Math.min(fixed, moved);
    let length = Math.max(Math.abs(moved - fixed), 1);
    if (horizontal) {
      if (!a) return [start, y, length, h];
      length = Math.min(length, (H - y) * a);
      return [moved >= fixed ? fixed : fixed - length, y, length, length / a];
    }
    if (!a) return [x, start, w, length];
    length = Math.min(length, (W - x) / a);
    return [x, moved >= fixed ? fixed : fixed - length, length * a, length];
  }

  /** The current crop held to a newly chosen aspect ratio: as wide as it fits, about its centre. */
  function toAspect() {
    const a = ratio();
    if (!a) return;
    const [x, y, w, h] = current();
    const nw = Math.min(w, h * a, W, H * a);
    const nh = nw / a;
    setCrop([x + (w - nw) / 2, y + (h - nh) / 2, nw, nh]);
  }

  // ---- the pointer ------------------------------------------------------------------------

  /** A pointer event's position in image pixels. */
  function at(e) {
    const r = image.getBoundingClientRect();
    return [((e.clientX - r.left) / r.width) * W, ((e.clientY - r.top) / r.height) * H];
  }

  stage.addEventListener('pointerdown', (e) => {
    if (!W || e.button !== 0) return;
    e.preventDefault();
    stage.setPointerCapture(e.pointerId);
    const [px, py] = at(e);
    const start = current();
    const handle = e.target.closest('.crop-handle')?.dataset.handle;
    const inside = e.target.closest('.crop-rect') && item.crop;
    drag = { id: e.pointerId, px, py, start, kind: handle ? 'resize' : inside ? 'move' : 'draw', handle };
    rect.focus({ preventScroll: true });
  });

  stage.addEventListener('pointermove', (e) => {
    if (!drag || e.pointerId !== drag.id) return;
    const [px, py] = at(e);
    const [x, y, w, h] = drag.start;
    if (drag.kind === 'move') {
      setCrop([clamp(x + px - drag.px, 0, W - w), clamp(y + py - drag.py, 0, H - h), w, h]);
    } else if (drag.kind === 'draw') {
      if (Math.abs(px - drag.px) < 1 && Math.abs(py - drag.py) < 1) return; // a click, not a drag
      setCrop(fromCorner(drag.px, drag.py, px, py));
    } else if (drag.handle.length === 2) {
      // A corner: the opposite corner stays.
      const ax = drag.handle.includes('w') ? x + w : x;
      const ay = drag.handle.includes('n') ? y + h : y;
      setCrop(fromCorner(ax, ay, px, py));
    } else {
      const edge = drag.handle;
      setCrop(fromEdge(drag.start, edge, edge === 'e' || edge === 'w' ? px : py));
    }
  });

  const endDrag = (e) => {
    if (!drag || e.pointerId !== drag.id) return;
    drag = null;
    render();
  };
  stage.addEventListener('pointerup', endDrag);
  stage.addEventListener('pointercancel', endDrag);

  // ---- the keyboard -------------------------------------------------------------------------

  const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  rect.addEventListener('keydown', (e) => {
    const arrow = ARROWS[e.key];
    if (!arrow || !W) return;
    e.preventDefault();
    const step = e.shiftKey ? 10 : 1;
    const [dx, dy] = [arrow[0] * step, arrow[1] * step];
    const [x, y, w, h] = current();
    if (!e.altKey) setCrop([x + dx, y + dy, w, h]);
    else if (dx) setCrop(fromEdge([x, y, w, h], 'e', x + w + dx));
    else setCrop(fromEdge([x, y, w, h], 's', y + h + dy));
  });

  // ---- the numbers and buttons --------------------------------------------------------------

  /** The typed numbers, clamped: the position first, then the size in the room left; with an
   * aspect ratio the side not typed follows the one typed. */
  function applyFields(changed) {
    const n = (id, fallback) => (Number.isFinite(fields[id].valueAsNumber) ? fields[id].valueAsNumber : fallback);
    const [cx, cy, cw, ch] = current();
    const x = clamp(Math.round(n('x', cx)), 0, W - 1);
    const y = clamp(Math.round(n('y', cy)), 0, H - 1);
    let w = clamp(n('w', cw), 1, W - x);
    let h = clamp(n('h', ch), 1, H - y);
    const a = ratio();
    if (a && changed === 'h') w = h * a;
    else if (a) h = w / a;
    if (a) {
      const room = Math.min((W - x) / w, (H - y) / h, 1);
      w *= room;
      h *= room;
    }
    setCrop([x, y, w, h]);
  }

  for (const [id] of FIELDS) {
    fields[id].addEventListener('change', () => applyFields(id));
    fields[id].addEventListener('keydown', (e) => {
      if (e.key === 'Enter') applyFields(id);
    });
  }
  aspectSelect.addEventListener('change', toAspect);
  $('#crop-clear').addEventListener('click', () => setCrop([0, 0, W, H]));
  $('#crop-done').addEventListener('click', close);
  box.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') close();
  });

  /** Shows the image as large as fits (small images enlarged, so that their handles can be
   * reached): at most 40rem wide, and 60 % of the window tall. */
  function fitImage() {
    if (!W || box.hidden) return;
    const rem = parseFloat(getComputedStyle(document.documentElement).fontSize);
    const room = Math.min(box.clientWidth - 2 * rem, 40 * rem);
    const scale = Math.min(room / W, (0.6 * window.innerHeight) / H);
    image.style.width = `${Math.max(W * scale, 1)}px`;
    image.style.height = `${Math.max(H * scale, 1)}px`;
  }

  image.addEventListener('load', () => {
    W = image.naturalWidth;
    H = image.naturalHeight;
    fitImage();
    if (item) render();
  });
  window.addEventListener('resize', fitImage);

  function edit(next) {
    item = next;
    title.textContent = `Crop ${next.name}`;
    image.alt = `${next.name}, to crop`;
    size.textContent = '';
    if (image.getAttribute('src') !== next.url) {
      W = 0;
      H = 0;
      image.src = next.url;
    } else {
      render();
    }
    box.hidden = false;
    fitImage();
    box.scrollIntoView({ block: 'nearest' });
  }

  function close() {
    drag = null;
    item = null;
    box.hidden = true;
  }

  return {
    edit,
    close,
    /** The item being edited, or null. */
    get item() { return item; },
  };
}
