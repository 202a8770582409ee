// Hash routing: `#/instances/ID?x=1` -> the view registered for `/instances/:id`, with the
// path parameters and the query. Hash routes need no server support: `/` serves one page.

const routes = [];

/** Registers `pattern` (e.g. `/tasks/:instance/:step`) for `view`. */
export function route(pattern, view) {
  const names = [];
  const source = pattern
    .split('/')
    .map((part) => {
      if (part.startsWith(':')) {
        names.push(part.slice(1));
        return '([^/]+)';
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  routes.push({ pattern, regex: new RegExp(`^${source}/?$`), names, view });
}

/** The current location: `{ path, query }` from the hash. */
export function current() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, search = ''] = raw.split('?');
  return { path: path || '/', query: new URLSearchParams(search) };
}

/** Finds the view for a path: `{ view, params, pattern }` or null. */
export function match(path) {
  for (const r of routes) {
    const m = r.regex.exec(path);
    if (m) {
      const params = {};
      r.names.forEach((name, i) => {
        params[name] = decodeURIComponent(m[i + 1]);
      });
      return { view: r.view, params, pattern: r.pattern };
    }
  }
  return null;
}

/** Goes to `path` (with an optional query object). */
export function go(path, params) {
  const q = params ? new URLSearchParams(Object.entries(params).filter(([, v]) => v !== '' && v != null)).toString() : '';
  location.hash = q ? `#${path}?${q}` : `#${path}`;
}
