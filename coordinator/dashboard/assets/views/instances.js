// Instances: filters (status, workflow, tenant, creator, created between), a table with
// cursor pagination ("Show more"), and live status: on engine events the rows shown are
// re-read. The filters live in the URL, so a filtered list can be bookmarked.

import { api, query } from '../api.js';
import { h, replace } from '../dom.js';
import { badge, errorText, instanceLink, notice, pageHead, time } from '../format.js';
import { onEvents } from '../live.js';
import { go } from '../router.js';

const STATUSES = ['pending', 'running', 'waiting', 'completed', 'failed', 'canceled'];
const PAGE = 50;

/** `datetime-local` text (local time) to RFC 3339, or ''. */
function toRfc3339(local) {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

/** RFC 3339 to `datetime-local` text, or ''. */
function toLocal(rfc) {
  if (!rfc) return '';
  const d = new Date(rfc);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export default async function instances(main, { query: q, me }) {
  const filters = {
    status: q.get('status') || '',
    workflow: q.get('workflow') || '',
    tenant: q.get('tenant') || '',
    created_by: q.get('created_by') || '',
    since: q.get('since') || '',
    until: q.get('until') || '',
  };
  const defs = await api('/definitions').catch(() => []);

  const control = (id, text, el) => {
    el.id = id;
    return h('div', { class: 'field' }, h('label', { for: id, text }), el);
  };
  const status = h('select', {}, h('option', { value: '', text: 'any' }), STATUSES.map((s) => h('option', { value: s, selected: s === filters.status, text: s })));
  const workflow = h('select', {}, h('option', { value: '', text: 'any' }), defs.map((d) => h('option', { value: d.name, selected: d.name === filters.workflow, text: d.name })));
  const tenant = h('input', { type: 'text', value: filters.tenant, autocomplete: 'off' });
  const createdBy = h('input', { type: 'text', value: filters.created_by, autocomplete: 'off' });
  const since = h('input', { type: 'datetime-local', value: toLocal(filters.since) });
  const until = h('input', { type: 'datetime-local', value: toLocal(filters.until) });
  const form = h('form', { class: 'filters', 'aria-label': 'Filters' },
    control('f-status', 'Status', status),
    control('f-workflow', 'Workflow', workflow),
    me.tenant ? null : control('f-tenant', 'Tenant', tenant),
    control('f-created-by', 'Created by', createdBy),
    control('f-since', 'Created after', since),
    control('f-until', 'Created before', until),
    h('div', { class: 'filter-actions' },
      h('button', { type: 'submit', text: 'Apply' }),
      h('a', { class: 'button secondary', href: '#/instances', text: 'Clear' })));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    go('/instances', {
      status: status.value,
      workflow: workflow.value,
      tenant: me.tenant ? '' : tenant.value.trim(),
      created_by: createdBy.value.trim(),
      since: toRfc3339(since.value),
      until: toRfc3339(until.value),
    });
  });

  const tbody = h('tbody', {});
  const table = h('div', { class: 'table-wrap' }, h('table', { class: 'instances' },
    h('thead', {}, h('tr', {}, ['Instance', 'Workflow', 'Status', 'Current steps', 'Tenant', 'Created by', 'Created', 'Updated'].map((t) => h('th', { scope: 'col', text: t })))),
    tbody));
  const more = h('button', { type: 'button', class: 'secondary', hidden: true, text: 'Show more' });
  const message = h('div', { 'aria-live': 'polite' });
  let items = [];
  let cursor = null;

  // `data-label` names each cell, for the phone layout where rows become cards
  const row = (i) => h('tr', { dataset: { id: i.id, status: i.status } },
    h('td', { dataset: { label: 'Instance' } }, instanceLink(i.id)),
    h('td', { dataset: { label: 'Workflow' }, text: `${i.workflow} ${i.version}` }),
    h('td', { dataset: { label: 'Status' } }, badge(i.status)),
    h('td', { dataset: { label: 'Current steps' }, text: (i.current_steps || []).join(', ') }),
    h('td', { dataset: { label: 'Tenant' }, text: i.tenant || '' }),
    h('td', { dataset: { label: 'Created by' }, text: i.created_by || '' }),
    h('td', { dataset: { label: 'Created' } }, time(i.created_at)),
    h('td', { dataset: { label: 'Updated' } }, time(i.updated_at)));

  const draw = () => {
    tbody.replaceChildren(...items.map(row));
    more.hidden = !cursor;
    message.replaceChildren(items.length ? '' : h('p', { class: 'muted', text: 'No instances match.' }));
  };
  const load = async (limit) => {
    const page = await api(`/instances${query({ ...filters, limit })}`);
    items = page.items || [];
    cursor = page.next_cursor || null;
    draw();
  };
  more.addEventListener('click', async () => {
    more.disabled = true;
    try {
      const page = await api(`/instances${query({ ...filters, limit: PAGE, cursor })}`);
      items = items.concat(page.items || []);
      cursor = page.next_cursor || null;
      draw();
    } catch (err) {
      message.replaceChildren(notice('error', errorText(err)));
    } finally {
      more.disabled = false;
    }
  });

  replace(main, pageHead('Instances', h('a', { class: 'button', href: '#/start', text: 'Start an instance' })), form, message, table, more);
  const stop = onEvents((e) => /^(Workflow|Step|HumanTask|Task)/.test(e.type || ''),
    () => load(Math.min(500, Math.max(PAGE, items.length))).catch(() => {}), 600);
  try {
    await load(PAGE);
  } catch (err) {
    message.replaceChildren(notice('error', errorText(err)));
  }
  return stop;
}
