// A few DOM helpers. Text always goes in as textContent, never as HTML: job names, paths and
// error messages come from the API and are shown as they are.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// Sets text only when it changed, so screen readers and layout see no needless updates.
export function setText(el, text) {
  const s = String(text);
  if (el.textContent !== s) el.textContent = s;
}

let idCounter = 0;
export function uid(prefix) {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

// A labelled form field: <div class="field"><label for>…</label><input id …></div>.
export function field(label, control, hint) {
  if (!control.id) control.id = uid('f');
  const parts = [h('label', { for: control.id, text: label }), control];
  if (hint) {
    const hintEl = h('small', { class: 'hint', id: uid('hint'), text: hint });
    control.setAttribute('aria-describedby', hintEl.id);
    parts.push(hintEl);
  }
  return h('div', { class: control.type === 'checkbox' ? 'field check' : 'field' }, parts);
}

export function select(name, options, selected) {
  return h('select', { name }, options.map((o) => h('option', { value: o, selected: o === selected, text: o })));
}

// A message line under a form: role=status for news, role=alert for errors.
export function showMessage(el, text, kind = 'info', link) {
  clear(el);
  el.className = `message ${kind}`;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  append(el, [text, link ? [' ', h('a', { href: link.href, text: link.text })] : null]);
  el.hidden = false;
}

// A table whose header cells also label the cells of a stacked (narrow screen) layout.
export function table(caption, columns, className = '') {
  const tbl = h('table', { class: `data ${className}` },
    h('caption', { class: 'visually-hidden', text: caption }),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class || null, text: c.label })))));
  return tbl;
}

// A cell of a data table; several parts go in one wrapper, the value column of a stacked card.
export function cell(label, content, className) {
  const body = Array.isArray(content) ? h('div', { class: 'cell-body' }, content) : content;
  return h('td', { 'data-label': label, class: className || null }, body);
}
