// Building DOM nodes without ever parsing data as HTML: every string becomes a text node or
// an attribute value (textContent / setAttribute), so data from the API cannot inject markup.

/**
 * Creates an element. `attrs`: `class`, `text`, `on<event>` (a function), `hidden`/`disabled`/
 * `checked`/... (booleans), `dataset` (an object), anything else is set as an attribute.
 * Children: nodes, strings (as text), numbers, arrays of those; null/false are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element, with the same conventions as `h`. */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const BOOLEAN = new Set(['hidden', 'disabled', 'checked', 'required', 'selected', 'readonly', 'multiple', 'open']);

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (BOOLEAN.has(key)) { if (value) el.setAttribute(key, ''); }
    else if (key === 'value' && 'value' in el) el.value = String(value);
    else el.setAttribute(key, String(value));
  }
}

/** Appends children (nodes, strings, numbers, nested arrays) to `el`. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces every child of `el` with `children`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A unique id for label/input pairs. */
let counter = 0;
export function uid(prefix = 'f') {
  counter += 1;
  return `${prefix}-${counter}`;
}
