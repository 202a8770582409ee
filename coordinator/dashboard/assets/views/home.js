// Home: instances per status (from `/stats` for an admin, else counted from `/instances`
// lists, capped), the user's open tasks, and the latest failures. Refreshed live.

import { api, query } from '../api.js';
import { h, replace } from '../dom.js';
import { errorText, instanceLink, notice, pageHead, time } from '../format.js';
import { onEvents } from '../live.js';

const STATUSES = ['pending', 'running', 'waiting', 'completed', 'failed', 'canceled'];
const CAP = 100;

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

async function counts(me) {
  if (me.admin) {
    const stats = await api('/stats');
    const map = stats.instances || {};
    const out = {};
    for (const s of STATUSES) out[s] = { n: Number(map[s] ?? map[s[0].toUpperCase() + s.slice(1)] ?? 0), more: false };
    return { counts: out, stats };
  }
  const out = {};
  await Promise.all(STATUSES.map(async (s) => {
    const page = await api(`/instances${query({ status: s, limit: CAP })}`);
    out[s] = { n: page.items.length, more: Boolean(page.next_cursor) };
  }));
  return { counts: out, stats: null };
}

export default async function home(main, { me }) {
  const body = h('div', {});
  replace(main, pageHead('Overview', h('a', { class: 'button', href: '#/start', text: 'Start an instance' })), body);

  async function load() {
    const [{ counts: c, stats }, failures, tasks] = await Promise.all([
      counts(me),
      api(`/instances${query({ status: 'failed', limit: 10 })}`),
      api('/tasks?mine=true').catch(() => []),
    ]);
    const tiles = h('ul', { class: 'tiles', 'aria-label': 'Instances by status' },
      STATUSES.map((s) => h('li', {}, h('a', { class: `tile s-${s}`, href: `#/instances?status=${s}` },
        h('span', { class: 'tile-n', text: `${c[s].n}${c[s].more ? '+' : ''}` }),
        h('span', { class: 'tile-label', text: s })))));
    const extra = h('ul', { class: 'facts' },
      h('li', {}, h('a', { href: '#/inbox', text: `${plural(tasks.length, 'open task')} for you` })),
      stats ? [
        h('li', { text: `${plural(stats.open_tasks ?? 0, 'open task')} in all` }),
        h('li', {}, h('a', { href: '#/dlq', text: plural(stats.dlq ?? 0, 'dead letter') })),
        h('li', { text: `${plural((stats.workers || []).length, 'worker')}, ${plural((stats.coordinators || []).length, 'coordinator')} alive` }),
      ] : null);
    const items = failures.items || [];
    const failed = items.length
      ? h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Instance', 'Workflow', 'Failed', 'Error'].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, items.map((i) => h('tr', {},
          h('td', {}, instanceLink(i.id)),
          h('td', { text: `${i.workflow} ${i.version}` }),
          h('td', {}, time(i.updated_at)),
          h('td', { class: 'error-text', text: i.error || '' }))))))
      : h('p', { class: 'muted', text: 'No failed instances.' });
    replace(body, tiles, extra, h('h2', { text: 'Recent failures' }), failed);
  }

  const stop = onEvents((e) => /^Workflow|Task/.test(e.type || ''), () => load().catch(() => {}), 800);
  try {
    await load();
  } catch (err) {
    replace(body, notice('error', errorText(err)));
  }
  return stop;
}
