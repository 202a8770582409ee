// A form drawn from a task's JSON Schema, with errors shown next to the fields.
//
// Supported: objects (nested ones as fieldsets), string (text, textarea for long text, date
// and email inputs by `format`), number, integer, boolean (a checkbox; a required one is two
// radio choices with none selected), `enum` (a select), arrays of simple
// values (a list of inputs; of an enum, checkboxes); `required`, `title`, `description`,
// `default`. Anything else is edited as JSON text. The browser checks the basics before
// sending (required, types, minimum/maximum, lengths, pattern, enum, item counts); the server
// checks the whole schema (formats, multipleOf, combinators, ...) and its `errors` list,
// JSON pointers into the data, is mapped back to the fields by `showErrors`.

import { h, uid } from './dom.js';

/** Types the form draws itself (an array of them too). */
const SIMPLE = new Set(['string', 'number', 'integer', 'boolean']);

function typeOf(schema) {
  if (!schema || typeof schema !== 'object') return null;
  if (Array.isArray(schema.enum)) return 'enum';
  let t = schema.type;
  if (Array.isArray(t)) t = t.find((x) => x !== 'null') || null;
  if (!t && schema.properties) t = 'object';
  return t || null;
}

/** A JSON pointer segment (`~` and `/` escaped, RFC 6901). */
function escapePointer(name) {
  return String(name).replace(/~/g, '~0').replace(/\//g, '~1');
}

function prettyName(name) {
  const s = String(name).replace(/[_-]+/g, ' ').trim();
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

/**
 * Builds the form's fields. Returns `{ element, value(), validate(), showErrors(errors),
 * clearErrors() }`: `value()` reads the data; `validate()` checks it in the browser and shows
 * the errors found (returning them); `showErrors` shows a list `[{ field: '/pointer', message }]`
 * (a server's) and returns the ones it could not place next to a field.
 */
export function schemaForm(schema, initial = {}) {
  const fields = new Map(); // pointer -> { errorEl, control, wrap }
  const summary = h('div', { class: 'form-errors', role: 'alert', hidden: true });
  const root = build(schema || { type: 'object' }, '', '', false, initial, fields, true);
  const element = h('div', { class: 'schema-form' }, summary, root.el);

  function clearErrors() {
    summary.hidden = true;
    summary.replaceChildren();
    for (const f of fields.values()) {
      f.errorEl.textContent = '';
      f.errorEl.hidden = true;
      f.wrap.classList.remove('invalid');
      if (f.control) f.control.removeAttribute('aria-invalid');
    }
  }

  function place(pointer, message) {
    let target = pointer;
    // A missing required property is reported on its parent: `"amount" is a required property`.
    const missing = /^"((?:[^"\\]|\\.)*)" is a required property/.exec(message) || /^'([^']*)' is a required property/.exec(message);
    if (missing && fields.has(`${pointer}/${escapePointer(missing[1])}`)) target = `${pointer}/${escapePointer(missing[1])}`;
    // An error inside an array item, or deeper than we draw: the nearest field above it.
    while (target && !fields.has(target)) target = target.slice(0, target.lastIndexOf('/'));
    const f = fields.get(target);
    if (!f || (target === '' && !f.control)) return false;
    f.errorEl.hidden = false;
    f.errorEl.textContent = f.errorEl.textContent ? `${f.errorEl.textContent} ${message}` : message;
    f.wrap.classList.add('invalid');
    if (f.control) f.control.setAttribute('aria-invalid', 'true');
    return true;
  }

  function showErrors(errors) {
    const unplaced = [];
    for (const e of errors) {
      const pointer = typeof e.field === 'string' ? e.field : '';
      if (!place(pointer, String(e.message || 'invalid'))) unplaced.push(e);
    }
    if (unplaced.length) {
      summary.hidden = false;
      summary.replaceChildren(h('p', { text: 'The data does not fit the form:' }),
        h('ul', {}, unplaced.map((e) => h('li', { text: e.field ? `${e.field}: ${e.message}` : e.message }))));
    }
    focusFirstError();
    return unplaced;
  }

  function focusFirstError() {
    const first = element.querySelector('[aria-invalid="true"]');
    if (first) first.focus();
    else if (!summary.hidden) summary.scrollIntoView({ block: 'nearest' });
  }

  function validate() {
    clearErrors();
    const errors = [];
    root.check(errors);
    for (const e of errors) place(e.field, e.message);
    focusFirstError();
    return errors;
  }

  return { element, value: () => root.get(), validate, showErrors, clearErrors };
}

/** One field (or group): `{ el, get(), check(errors) }`. */
function build(schema, pointer, name, required, initial, fields, isRoot = false) {
  const type = typeOf(schema);
  if (type === 'object') return objectField(schema, pointer, name, required, initial, fields, isRoot);
  if (type === 'array' && SIMPLE.has(typeOf(schema.items)) ) return arrayField(schema, pointer, name, required, initial, fields);
  if (type === 'array' && typeOf(schema.items) === 'enum') return multiChoice(schema, pointer, name, required, initial, fields);
  if (type === 'enum') return enumField(schema, pointer, name, required, initial, fields);
  if (SIMPLE.has(type)) return simpleField(schema, type, pointer, name, required, initial, fields);
  return jsonField(schema, pointer, name, required, initial, fields);
}

function label(schema, name) {
  return schema.title || prettyName(name) || 'Value';
}

/** The label, control, description and error slot of one field, wired for screen readers. */
function wrapField(schema, pointer, name, required, control, fields, { inline = false } = {}) {
  const id = control.id || uid('field');
  control.id = id;
  const errorEl = h('p', { class: 'field-error', id: `${id}-error`, hidden: true, 'aria-live': 'polite' });
  const describedBy = [`${id}-error`];
  let desc = null;
  if (schema.description) {
    desc = h('p', { class: 'field-help', id: `${id}-help`, text: schema.description });
    describedBy.unshift(`${id}-help`);
  }
  control.setAttribute('aria-describedby', describedBy.join(' '));
  if (required) control.setAttribute('aria-required', 'true');
  control.name = pointer || name;
  const lab = h('label', { for: id }, label(schema, name), required ? h('span', { class: 'req', title: 'required', text: ' *' }) : null);
  const wrap = inline
    ? h('div', { class: 'field field-inline', dataset: { field: pointer } }, h('div', { class: 'inline-row' }, control, lab), desc, errorEl)
    : h('div', { class: 'field', dataset: { field: pointer } }, lab, desc, control, errorEl);
  fields.set(pointer, { errorEl, control, wrap });
  return wrap;
}

function objectField(schema, pointer, name, required, initial, fields, isRoot) {
  const props = schema.properties || {};
  const requiredSet = new Set(Array.isArray(schema.required) ? schema.required : []);
  const start = initial && typeof initial === 'object' && !Array.isArray(initial) ? initial : {};
  const children = Object.entries(props).map(([key, sub]) => [key, build(sub || {}, `${pointer}/${escapePointer(key)}`, key, requiredSet.has(key), start[key] ?? sub?.default, fields)]);
  const errorEl = h('p', { class: 'field-error', hidden: true });
  const body = children.map(([, c]) => c.el);
  let el;
  if (isRoot) {
    el = h('div', { class: 'form-root' }, schema.description && !isRoot ? h('p', { class: 'field-help', text: schema.description }) : null, body, errorEl);
  } else {
    el = h('fieldset', { class: 'group', dataset: { field: pointer } },
      h('legend', {}, label(schema, name), required ? h('span', { class: 'req', text: ' *' }) : null),
      schema.description ? h('p', { class: 'field-help', text: schema.description }) : null,
      body, errorEl);
  }
  fields.set(pointer, { errorEl, control: null, wrap: el });
  return {
    el,
    get() {
      const out = {};
      for (const [key, c] of children) {
        const v = c.get();
        if (v !== undefined) out[key] = v;
      }
      // an optional group left empty is left out, rather than sent as {}
      return isRoot || required || Object.keys(out).length ? out : undefined;
    },
    check(errors) {
      for (const [, c] of children) c.check(errors);
    },
  };
}

function simpleField(schema, type, pointer, name, required, initial, fields) {
  if (type === 'boolean' && required) return booleanChoice(schema, pointer, name, fields);
  let control;
  if (type === 'boolean') {
    control = h('input', { type: 'checkbox', checked: initial === true });
  } else if (type === 'number' || type === 'integer') {
    control = h('input', { type: 'number', inputmode: type === 'integer' ? 'numeric' : 'decimal', step: type === 'integer' ? '1' : 'any', value: initial ?? '' });
    if (typeof schema.minimum === 'number') control.min = schema.minimum;
    if (typeof schema.maximum === 'number') control.max = schema.maximum;
  } else if (schema.format === 'textarea' || (schema.maxLength || 0) > 200 || schema['x-multiline']) {
    control = h('textarea', { rows: 4, value: initial ?? '' });
  } else {
    const inputType = { email: 'email', date: 'date', uri: 'url' }[schema.format] || 'text';
    control = h('input', { type: inputType, value: initial ?? '' });
    if (schema.maxLength) control.maxLength = schema.maxLength;
  }
  const el = wrapField(schema, pointer, name, required, control, fields, { inline: type === 'boolean' });
  const get = () => readSimple(control, type);
  return {
    el,
    get,
    check(errors) {
      checkSimple(schema, type, get(), control.value, required, pointer, errors);
    },
  };
}

function readSimple(control, type) {
  if (type === 'boolean') return control.checked;
  const raw = control.value.trim();
  if (type === 'number' || type === 'integer') {
    if (raw === '') return control.validity && control.validity.badInput ? NaN : undefined;
    return Number(raw);
  }
  return control.value === '' ? undefined : control.value;
}

/** The browser's basic checks of one simple value; pushes `{ field, message }`s. */
function checkSimple(schema, type, value, raw, required, pointer, errors) {
  const fail = (message) => errors.push({ field: pointer, message });
  if (value === undefined) {
    if (required) fail('This field is required.');
    return;
  }
  if (type === 'number' || type === 'integer') {
    if (!Number.isFinite(value)) return fail('Enter a number.');
    if (type === 'integer' && !Number.isInteger(value)) return fail('Enter a whole number.');
    if (typeof schema.minimum === 'number' && value < schema.minimum) return fail(`Must be at least ${schema.minimum}.`);
    if (typeof schema.maximum === 'number' && value > schema.maximum) return fail(`Must be at most ${schema.maximum}.`);
    if (typeof schema.exclusiveMinimum === 'number' && value <= schema.exclusiveMinimum) return fail(`Must be more than ${schema.exclusiveMinimum}.`);
    if (typeof schema.exclusiveMaximum === 'number' && value >= schema.exclusiveMaximum) return fail(`Must be less than ${schema.exclusiveMaximum}.`);
  }
  if (type === 'string') {
    const length = [...value].length;
    if (typeof schema.minLength === 'number' && length < schema.minLength) return fail(`Must be at least ${schema.minLength} characters.`);
    if (typeof schema.maxLength === 'number' && length > schema.maxLength) return fail(`Must be at most ${schema.maxLength} characters.`);
    if (typeof schema.pattern === 'string') {
      let re = null;
      try {
        re = new RegExp(schema.pattern, 'u');
      } catch {
        re = null; // a pattern JavaScript cannot read: the server checks it
      }
      if (re && !re.test(value)) return fail(`Must match the pattern ${schema.pattern}.`);
    }
  }
  return undefined;
}

/**
 * A required boolean: two radio choices, none selected (never pre-filled, even by a
 * `default`), so a person cannot send `false` by not touching it. The labels are Yes / No, or
 * the `title`s of a `oneOf` of `{ const: true }` / `{ const: false }` when the schema has them.
 */
function booleanChoice(schema, pointer, name, fields) {
  const titled = (value) => (Array.isArray(schema.oneOf) ? schema.oneOf : [])
    .find((c) => c && c.const === value && typeof c.title === 'string')?.title;
  const group = uid('choice');
  const errorEl = h('p', { class: 'field-error', id: `${group}-error`, hidden: true, 'aria-live': 'polite' });
  const help = schema.description ? h('p', { class: 'field-help', id: `${group}-help`, text: schema.description }) : null;
  const radios = [true, false].map((value) => {
    const radio = h('input', { type: 'radio', name: `${group}`, id: uid('choice'), value: String(value),
      'aria-describedby': [help ? `${group}-help` : null, `${group}-error`].filter(Boolean).join(' ') });
    return { value, radio, label: h('label', { for: radio.id, text: titled(value) || (value ? 'Yes' : 'No') }) };
  });
  const el = h('fieldset', { class: 'group choices boolean-choice', role: 'radiogroup', 'aria-required': 'true', dataset: { field: pointer } },
    h('legend', {}, label(schema, name), h('span', { class: 'req', title: 'required', text: ' *' })),
    help,
    radios.map((r) => h('div', { class: 'inline-row' }, r.radio, r.label)),
    errorEl);
  fields.set(pointer, { errorEl, control: radios[0].radio, wrap: el });
  const get = () => radios.find((r) => r.radio.checked)?.value;
  return {
    el,
    get,
    check(errors) {
      if (get() === undefined) errors.push({ field: pointer, message: 'Choose one.' });
    },
  };
}

function enumField(schema, pointer, name, required, initial, fields) {
  const options = schema.enum;
  const control = h('select', {},
    h('option', { value: '', text: required ? 'Choose…' : '(none)' }),
    options.map((opt, i) => h('option', { value: String(i), selected: initial !== undefined && JSON.stringify(initial) === JSON.stringify(opt), text: typeof opt === 'string' ? opt : JSON.stringify(opt) })),
  );
  const el = wrapField(schema, pointer, name, required, control, fields);
  const get = () => (control.value === '' ? undefined : options[Number(control.value)]);
  return {
    el,
    get,
    check(errors) {
      if (get() === undefined && required) errors.push({ field: pointer, message: 'Choose one.' });
    },
  };
}

function multiChoice(schema, pointer, name, required, initial, fields) {
  const options = schema.items.enum;
  const chosen = Array.isArray(initial) ? initial.map((v) => JSON.stringify(v)) : [];
  const boxes = options.map((opt) => h('input', { type: 'checkbox', checked: chosen.includes(JSON.stringify(opt)) }));
  const errorEl = h('p', { class: 'field-error', hidden: true, 'aria-live': 'polite' });
  const el = h('fieldset', { class: 'group choices', dataset: { field: pointer } },
    h('legend', {}, label(schema, name), required ? h('span', { class: 'req', text: ' *' }) : null),
    schema.description ? h('p', { class: 'field-help', text: schema.description }) : null,
    options.map((opt, i) => {
      boxes[i].id = uid('choice');
      return h('div', { class: 'inline-row' }, boxes[i], h('label', { for: boxes[i].id, text: typeof opt === 'string' ? opt : JSON.stringify(opt) }));
    }),
    errorEl);
  fields.set(pointer, { errorEl, control: boxes[0] || null, wrap: el });
  const get = () => options.filter((_, i) => boxes[i].checked);
  return {
    el,
    get,
    check(errors) {
      checkItems(schema, get(), required, pointer, errors);
    },
  };
}

function checkItems(schema, items, required, pointer, errors) {
  if (required && items.length === 0 && (schema.minItems ?? 1) > 0) errors.push({ field: pointer, message: 'Add at least one.' });
  else if (typeof schema.minItems === 'number' && items.length < schema.minItems) errors.push({ field: pointer, message: `Needs at least ${schema.minItems}.` });
  else if (typeof schema.maxItems === 'number' && items.length > schema.maxItems) errors.push({ field: pointer, message: `At most ${schema.maxItems}.` });
}

function arrayField(schema, pointer, name, required, initial, fields) {
  const itemSchema = schema.items;
  const itemType = typeOf(itemSchema);
  const list = h('ol', { class: 'array-items' });
  const rows = [];
  const errorEl = h('p', { class: 'field-error', hidden: true, 'aria-live': 'polite' });
  const addButton = h('button', { type: 'button', class: 'secondary small add-item', text: `Add ${String(label(itemSchema, '') === 'Value' ? 'an item' : label(itemSchema, '')).toLowerCase()}` });
  const el = h('fieldset', { class: 'group array', dataset: { field: pointer } },
    h('legend', {}, label(schema, name), required ? h('span', { class: 'req', text: ' *' }) : null),
    schema.description ? h('p', { class: 'field-help', text: schema.description }) : null,
    list, addButton, errorEl);
  fields.set(pointer, { errorEl, control: null, wrap: el });

  const renumber = () => rows.forEach((r, i) => {
    r.label.textContent = `Item ${i + 1}`;
    r.remove.setAttribute('aria-label', `Remove item ${i + 1}`);
    if (r.pointer !== null) fields.delete(r.pointer);
    r.pointer = `${pointer}/${i}`;
    fields.set(r.pointer, r.field);
  });
  const addRow = (value) => {
    const control = itemType === 'boolean'
      ? h('input', { type: 'checkbox', checked: value === true })
      : h('input', { type: itemType === 'string' ? 'text' : 'number', step: itemType === 'integer' ? '1' : 'any', value: value ?? '' });
    control.id = uid('item');
    const rowError = h('p', { class: 'field-error', hidden: true });
    const rowLabel = h('label', { for: control.id, class: 'visually-hidden' });
    const row = { control, label: rowLabel, pointer: null, field: null };
    const remove = h('button', { type: 'button', class: 'link small', text: 'Remove', onclick: () => {
      rows.splice(rows.indexOf(row), 1);
      fields.delete(row.pointer);
      li.remove();
      renumber();
    } });
    const li = h('li', {}, rowLabel, h('div', { class: 'inline-row' }, control, remove), rowError);
    control.setAttribute('aria-describedby', rowError.id = uid('item-error'));
    row.field = { errorEl: rowError, control, wrap: li };
    row.remove = remove;
    rows.push(row);
    list.append(li);
    renumber();
    return control;
  };
  addButton.addEventListener('click', () => addRow(undefined).focus());
  for (const v of Array.isArray(initial) ? initial : []) addRow(v);

  const values = () => rows.map((r) => readSimple(r.control, itemType));
  return {
    el,
    get() {
      const vs = values().filter((v) => v !== undefined);
      return vs.length || required ? vs : undefined;
    },
    check(errors) {
      rows.forEach((r) => checkSimple(itemSchema, itemType, readSimple(r.control, itemType), r.control.value, false, r.pointer, errors));
      checkItems(schema, values().filter((v) => v !== undefined), required, pointer, errors);
    },
  };
}

function jsonField(schema, pointer, name, required, initial, fields) {
  const control = h('textarea', { rows: 4, class: 'mono', spellcheck: 'false', value: initial === undefined ? '' : JSON.stringify(initial, null, 2) });
  const el = wrapField({ ...schema, description: [schema.description, '(JSON)'].filter(Boolean).join(' ') }, pointer, name, required, control, fields);
  const get = () => {
    if (control.value.trim() === '') return undefined;
    try {
      return JSON.parse(control.value);
    } catch {
      return control.value;
    }
  };
  return {
    el,
    get,
    check(errors) {
      if (control.value.trim() === '') {
        if (required) errors.push({ field: pointer, message: 'This field is required.' });
        return;
      }
      try {
        JSON.parse(control.value);
      } catch (err) {
        errors.push({ field: pointer, message: `Not valid JSON: ${err.message}` });
      }
    },
  };
}
