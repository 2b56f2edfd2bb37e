// The queue of files on the page: one <li> per file with its name (and size, once known), a
// progress bar, a status line (with the time left while it runs), its buttons (Crop, Retry once it
// failed or was cancelled, Remove) and, when done, its own download link; a click on a finished
// row selects it. Files can be added at any time, also while a batch runs.
//
//   const queue = createQueue(list, { onSelect(item) {}, onCrop(item) {}, onRetry(item) {}, onRemove(item) {} });
//   const item = await queue.add(file);       // {name, bytes, url, status, result, size, crop}
//   queue.setState(item, 'busy' | 'done' | 'error' | 'cancelled' | 'queued', text, errorKind?);
//   queue.setStatus(item, text); queue.setProgress(item, value, max); queue.setCrop(item);
//   queue.setResult(item, result);            // result: {url, filename, ...}: shows the link
//   queue.remove(item); queue.select(item); queue.clear(); queue.items; queue.selected
//
// Each row carries data-state, and data-error-kind when it failed (or was cancelled); its buttons
// are .item-crop, .item-retry and .item-remove (none while it runs).

/**
 * @typedef {object} QueueItem
 * @property {string} name
 * @property {ArrayBuffer} bytes the file
 * @property {string} url a blob: URL of the file
 * @property {'queued' | 'busy' | 'done' | 'error' | 'cancelled'} status
 * @property {{ url: string, filename: string, [key: string]: any } | null} result
 * @property {[number, number] | undefined} size the image's size, once the browser has read it
 * @property {[number, number, number, number] | null} crop the region to upscale (x, y, width,
 *   height in the image's pixels), or null for all of it
 * @property {HTMLLIElement} row
 */

/**
 * @param {HTMLOListElement} list
 * @param {{ onSelect?: (item: QueueItem) => void, onCrop?: (item: QueueItem) => void,
 *           onRetry?: (item: QueueItem) => void, onRemove?: (item: QueueItem) => void }} [options]
 */
export function createQueue(list, { onSelect, onCrop, onRetry, onRemove } = {}) {
  /** @type {QueueItem[]} */
  const items = [];
  let selected = null;

  const part = (item, selector) => item.row.querySelector(selector);

  function label(item) {
    const size = item.size ? ` (${item.size[0]}×${item.size[1]})` : '';
    const crop = item.crop ? `, crop ${item.crop[2]}×${item.crop[3]} at ${item.crop[0]},${item.crop[1]}` : '';
    part(item, '.item-name').textContent = `${item.name}${size}${crop}`;
  }

  function button(className, text, name, action) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = `${className} secondary small`;
    b.textContent = text;
    b.setAttribute('aria-label', `${text} ${name}`);
    b.addEventListener('click', (e) => {
      e.stopPropagation();
      action();
    });
    return b;
  }

  function makeRow(item) {
    const row = document.createElement('li');
    row.dataset.state = 'queued';
    row.innerHTML = '<span class="item-name"></span><progress max="1" value="0"></progress>'
      + '<span class="item-actions"><a class="item-download" hidden>Download</a></span>'
      + '<span class="item-status">Queued</span>';
    part({ row }, 'progress').setAttribute('aria-label', `Progress of ${item.name}`);
    part({ row }, '.item-actions').append(
      button('item-crop', 'Crop', item.name, () => onCrop?.(item)),
      button('item-retry', 'Retry', item.name, () => onRetry?.(item)),
      button('item-remove', 'Remove', item.name, () => onRemove?.(item)),
    );
    row.addEventListener('click', (e) => {
      if (item.result && !e.target.closest('a, button')) onSelect?.(item);
    });
    return row;
  }

  /** Revokes the blob: URLs of the file and its result. */
  function freeUrls(item) {
    URL.revokeObjectURL(item.url);
    if (item.result) URL.revokeObjectURL(item.result.url);
  }

  /** Shows the buttons that fit the row's state: none while it runs, Retry after a failure. */
  function showButtons(item) {
    const busy = item.status === 'busy';
    part(item, '.item-crop').hidden = busy;
    part(item, '.item-remove').hidden = busy;
    part(item, '.item-retry').hidden = !['error', 'cancelled'].includes(item.status);
  }

  return {
    /** The queued files, in order. */
    get items() { return items; },
    /** The item last selected, or null. */
    get selected() { return selected; },

    /** Reads `file` and adds its row. */
    async add(file) {
      const name = file.name || 'pasted-image.png';
      const bytes = await file.arrayBuffer();
      const item = { name, bytes, url: URL.createObjectURL(file), status: 'queued', result: null, size: undefined,
        crop: null };
      item.row = makeRow(item);
      label(item);
      showButtons(item);
      items.push(item);
      list.append(item.row);
      const probe = new Image();
      probe.onload = () => {
        item.size = [probe.naturalWidth, probe.naturalHeight];
        label(item);
      };
      probe.src = item.url;
      return item;
    },

    /** Sets the row's state and status line; `errorKind` marks a failed row. */
    setState(item, status, text, errorKind) {
      item.status = status;
      item.row.dataset.state = status;
      if (errorKind) item.row.dataset.errorKind = errorKind;
      else delete item.row.dataset.errorKind;
      part(item, '.item-status').textContent = text;
      showButtons(item);
    },

    /** The row's name line, after a change of `item.crop`. */
    setCrop(item) {
      label(item);
    },

    /** The status line alone. */
    setStatus(item, text) {
      part(item, '.item-status').textContent = text;
    },

    setProgress(item, value, max) {
      const bar = part(item, 'progress');
      bar.max = Math.max(max, 1);
      bar.value = value;
    },

    /** Keeps the result (replacing an earlier one) and shows its download link. */
    setResult(item, result) {
      if (item.result) URL.revokeObjectURL(item.result.url);
      item.result = result;
      const link = part(item, '.item-download');
      link.href = result.url;
      link.download = result.filename;
      link.hidden = false;
      const bar = part(item, 'progress');
      bar.value = bar.max;
    },

    /** Highlights `item`'s row. */
    select(item) {
      selected = item;
      for (const i of items) i.row.classList.toggle('selected', i === item);
    },

    /** Removes `item`'s row and frees its URLs. */
    remove(item) {
      const at = items.indexOf(item);
      if (at < 0) return;
      items.splice(at, 1);
      item.row.remove();
      freeUrls(item);
      if (selected === item) selected = null;
    },

    /** Removes every row and frees their URLs. */
    clear() {
      items.forEach(freeUrls);
      items.length = 0;
      selected = null;
      list.replaceChildren();
    },
  };
}
