// The before/after comparison of one result: the upscaled image with the original drawn under it,
// enlarged by the browser so that the region the result came from (the crop, or all of it) lies
// exactly beneath, cut at the slider's position. "1:1 pixels" shows the result unscaled (and the
// original with square pixels). A result too large for the browser to display (the file is encoded
// in wasm, so it still downloads) replaces the comparison with a note.
//
//   const compare = createCompare({ result, compare, after, before, beforeClip, divider, slider,
//                                   zoom, download, previewNote });
//   compare.show(item);   // item: {url (the original), result: {url, filename, extension, width,
//                         //        height, ms, crop: [x, y, w, h] | null}}
//   compare.layout();     // after a change of size (it listens to resize, the slider and zoom)
//   compare.hide();
//
// #result carries data-width, data-height and data-ms of the result shown.

/**
 * @param {{ result: HTMLElement, compare: HTMLElement, after: HTMLImageElement,
 *           before: HTMLImageElement, beforeClip: HTMLElement, divider: HTMLElement,
 *           slider: HTMLInputElement, zoom: HTMLInputElement, download: HTMLAnchorElement,
 *           previewNote: HTMLElement }} ui
 */
export function createCompare(ui) {
  let shown = null; // the item shown

  function layout() {
    const fit = !ui.zoom.checked;
    ui.compare.classList.toggle('fit', fit);
    const width = fit ? ui.after.clientWidth : ui.after.naturalWidth;
    ui.after.style.width = fit ? '' : `${ui.after.naturalWidth}px`;
    const [x, y, w] = shown?.result?.crop ?? [0, 0, ui.before.naturalWidth];
    const scale = width / Math.max(w, 1);
    ui.before.style.width = `${ui.before.naturalWidth * scale}px`;
    ui.before.style.marginLeft = `${-x * scale}px`;
    ui.before.style.marginTop = `${-y * scale}px`;
    const at = Number(ui.slider.value) / 100;
    ui.beforeClip.style.width = `${at * width}px`;
    ui.slider.style.width = `${Math.min(width, ui.compare.clientWidth)}px`;
    ui.divider.style.left = `${at * width}px`;
  }

  function show(item) {
    shown = item;
    const { result } = item;
    ui.download.href = result.url;
    ui.download.download = result.filename;
    ui.download.textContent = `Download ${result.extension.toUpperCase()}`;
    ui.previewNote.hidden = true;
    ui.compare.hidden = false;
    ui.after.src = result.url;
    ui.before.src = item.url;
    ui.result.hidden = false;
    ui.result.dataset.width = result.width;
    ui.result.dataset.height = result.height;
    ui.result.dataset.ms = Math.round(result.ms);
  }

  function hide() {
    shown = null;
    ui.result.hidden = true;
  }

  ui.slider.addEventListener('input', layout);
  ui.zoom.addEventListener('change', layout);
  ui.after.addEventListener('load', layout);
  ui.before.addEventListener('load', layout);
  ui.after.addEventListener('error', () => {
    if (!ui.after.src) return;
    ui.compare.hidden = true;
    ui.previewNote.hidden = false;
  });
  window.addEventListener('resize', layout);

  return { show, layout, hide };
}
