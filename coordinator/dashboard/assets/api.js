// The one place that talks to the HTTP API: adds the bearer token, sends and reads JSON, and
// turns RFC 9457 problem documents into `ApiError`s that views can show (with the field at
// fault and a form's `errors` list). A 401 forgets the token and signs the user out.

const BASE = '/api/v1';
const TOKEN_KEY = 'weir.token';

/** An error answer of the API: its problem document's fields, plus the HTTP status. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.type = problem.type || 'about:blank';
    this.title = problem.title || `HTTP ${status}`;
    this.detail = problem.detail || '';
    this.field = problem.field || null;
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
  }

  /** The problem kind: the last segment of its type URI (`form-invalid`, `conflict`, ...). */
  get kind() {
    return this.type.split('/').pop();
  }
}

/** The token kept for this browser tab, or null. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Keeps (or, with null, forgets) the token for this tab. */
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/**
 * Calls the API: `api('/instances?status=failed')`, `api('/instances', { method: 'POST', body })`.
 * Resolves to the parsed JSON (or null for an empty body); rejects with an `ApiError`.
 * `opts.token` overrides the stored token (used to check a token at sign-in). With
 * `opts.withNext`, resolves to `{ data, next }`: `next` is the `Weir-Next-Cursor` header.
 */
export async function api(path, opts = {}) {
  const headers = { Accept: 'application/json' };
  const bearer = opts.token ?? token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let body;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  let response;
  try {
    response = await fetch(BASE + path, { method: opts.method || 'GET', headers, body, signal: opts.signal });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, { title: 'Server unreachable', detail: 'The Weir server did not answer; check that `weir serve` runs.' });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = response.ok ? text : { title: `HTTP ${response.status}`, detail: text.slice(0, 300) };
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data && typeof data === 'object' ? data : {});
    if (response.status === 401 && opts.token === undefined) {
      setToken(null);
      window.dispatchEvent(new CustomEvent('weir:signed-out', { detail: error }));
    }
    throw error;
  }
  return opts.withNext ? { data, next: response.headers.get('weir-next-cursor') } : data;
}

/** Builds a query string from an object, skipping empty values: `?a=1&b=x`. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== '') q.set(key, String(value));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Path segment escaping for ids and names. */
export const seg = encodeURIComponent;
