// The queue of files on the page: one <li> per file with its name (and size, once known), a
// progress bar, a status line and, when done, its own download link; a click on a finished row
// selects it.
//
//   const queue = createQueue(list, { onSelect(item) {} });
//   const item = await queue.add(file);       // {name, bytes, url, status, result, size}
//   queue.setState(item, 'busy' | 'done' | 'error' | 'cancelled' | 'queued', text, errorKind?);
//   queue.setStatus(item, text); queue.setProgress(item, value, max);
//   queue.setResult(item, result);            // result: {url, filename, ...}: shows the link
//   queue.select(item); queue.clear(); queue.items; queue.selected
//
// Each row carries data-state, and data-error-kind when it failed (or was cancelled).

/**
 * @typedef {object} QueueItem
 * @property {string} name
 * @property {ArrayBuffer} bytes the file
 * @property {string} url a blob: URL of the file
 * @property {'queued' | 'busy' | 'done' | 'error' | 'cancelled'} status
 * @property {{ url: string, filename: string, [key: string]: any } | null} result
 * @property {[number, number] | undefined} size the image's size, once the browser has read it
 * @property {HTMLLIElement} row
 */

/**
 * @param {HTMLOListElement} list
 * @param {{ onSelect?: (item: QueueItem) => void }} [options]
 */
export function createQueue(list, { onSelect } = {}) {
  /** @type {QueueItem[]} */
  const items = [];
  let selected = null;

  const part = (item, selector) => item.row.querySelector(selector);

  function makeRow(item) {
    const row = document.createElement('li');
    row.dataset.state = 'queued';
    row.innerHTML = '<span class="item-name"></span><progress max="1" value="0"></progress>'
      + '<a class="item-download" hidden>Download</a><span class="item-status">Queued</span>';
    row.querySelector('.item-name').textContent = item.name;
    row.addEventListener('click', (e) => {
      if (item.result && !e.target.closest('a')) onSelect?.(item);
    });
    return row;
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
      const item = { name, bytes, url: URL.createObjectURL(file), status: 'queued', result: null, size: undefined };
      item.row = makeRow(item);
      items.push(item);
      list.append(item.row);
      const probe = new Image();
      probe.onload = () => {
        item.size = [probe.naturalWidth, probe.naturalHeight];
        part(item, '.item-name').textContent = `${name} (${item.size[0]}×${item.size[1]})`;
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

    /** Removes every row and frees their URLs. */
    clear() {
      for (const item of items) {
        URL.revokeObjectURL(item.url);
        if (item.result) URL.revokeObjectURL(item.result.url);
      }
      items.length = 0;
      selected = null;
      list.replaceChildren();
    },
  };
}
