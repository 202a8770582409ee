// Small display helpers shared by the views: dates, statuses, JSON.
import { h } from './dom.js';

/** A date from the API (RFC 3339 text or epoch milliseconds) as local text; '' when absent. */
export function when(value) {
  if (value === null || value === undefined || value === '') return '';
  const date = typeof value === 'number' ? new Date(value) : new Date(String(value));
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

/** A `<time>` element for a date, with the exact value as its title. */
export function time(value) {
  if (value === null || value === undefined || value === '') return h('span', { class: 'muted', text: '—' });
  const iso = typeof value === 'number' ? new Date(value).toISOString() : String(value);
  return h('time', { datetime: iso, title: iso, text: when(value) });
}

/** A status badge (`running`, `failed`, ...). */
export function badge(status) {
  const s = String(status || 'unknown').toLowerCase();
  return h('span', { class: `badge s-${s.replace(/[^a-z_]/g, '')}`, text: s.replace(/_/g, ' ') });
}

/** Pretty JSON in a `<pre>`. */
export function json(value) {
  return h('pre', { class: 'json', text: JSON.stringify(value ?? null, null, 2) });
}

/** A link to an instance page. */
export function instanceLink(id) {
  return h('a', { href: `#/instances/${encodeURIComponent(id)}`, class: 'mono', text: shortId(id) , title: id });
}

/** The first 8 characters of a long id (the title keeps the whole). */
export function shortId(id) {
  const s = String(id);
  return s.length > 13 ? `${s.slice(0, 8)}…` : s;
}

/** A page heading with optional actions on the right. */
export function pageHead(title, ...actions) {
  return h('div', { class: 'page-head' }, h('h1', { text: title }), actions.length ? h('div', { class: 'actions' }, actions) : null);
}

/** A notice box: kind is `error`, `info` or `ok`. */
export function notice(kind, ...children) {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, children);
}

/** The message to show for an error thrown by the API wrapper (or anything else). */
export function errorText(err) {
  if (!err) return 'Unknown error';
  if (err.detail && err.title) return `${err.title}: ${err.detail}`;
  return err.detail || err.title || err.message || String(err);
}

/** A shown context value as a person reads it: a string as it is, anything else as JSON. */
export function valueText(value) {
  if (value === null || value === undefined) return '—';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/**
 * A task's shown fields (its step's `show`) as a description list, each labelled with the
 * form's title or the path; null when the step shows none. Values go in as text.
 */
export function shownFields(task, className = 'facts-grid task-fields') {
  const fields = Array.isArray(task.fields) ? task.fields : [];
  if (!fields.length) return null;
  return h('dl', { class: className },
    fields.map((f) => h('div', { dataset: { path: f.path } },
      h('dt', { text: f.title || f.path }),
      h('dd', { class: f.value === null || f.value === undefined ? 'muted' : null, text: valueText(f.value) }))));
}
