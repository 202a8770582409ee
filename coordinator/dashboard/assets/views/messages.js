// Messages: send a message by name and correlation key (what a payment provider's webhook
// would send), and see the messages kept for instances that do not wait yet. The form may
// come pre-filled from an instance page (`#/messages?name=payment_received&key=A-17`).
// A problem naming a field (`name`, `key`, `ttl`, ...) is shown next to that field.

import { api, query as qs } from '../api.js';
import { h, replace } from '../dom.js';
import { errorText, instanceLink, notice, pageHead, time } from '../format.js';

function field(id, labelText, control, help) {
  control.id = id;
  const error = h('p', { class: 'field-error', id: `${id}-error`, hidden: true, 'aria-live': 'polite' });
  const helpEl = help ? h('p', { class: 'field-help', id: `${id}-help`, text: help }) : null;
  control.setAttribute('aria-describedby', [helpEl && `${id}-help`, `${id}-error`].filter(Boolean).join(' '));
  const wrap = h('div', { class: 'field' }, h('label', { for: id, text: labelText }), helpEl, control, error);
  return { wrap, control, error };
}

/** What became of a sent message, for a person. */
function outcomeNotice(sent) {
  if (sent.outcome === 'delivered') {
    return notice('ok', `Message ${sent.id} delivered to instance `, instanceLink(sent.instance_id), '.');
  }
  if (sent.outcome === 'kept') {
    return notice('info', `Message ${sent.id} kept: no instance waits on this name and key yet. The first to reach its event step receives it.`);
  }
  return notice('info', `Message ${sent.id} was sent already (same id, within its time to live): nothing was done.`);
}

function keptTable(kept) {
  if (!kept.length) return h('p', { class: 'empty', text: 'No message is kept: every message sent found its instance, or expired.' });
  return h('div', { class: 'table-wrap' }, h('table', { class: 'kept-messages' },
    h('thead', {}, h('tr', {}, ['Id', 'Name', 'Key', 'Tenant', 'Sent', 'Expires', 'Data'].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, kept.map((m) => h('tr', { dataset: { message: m.id } },
      h('td', { class: 'mono', text: m.id }),
      h('td', { text: m.name }),
      h('td', { class: 'mono', text: m.key }),
      h('td', { text: m.tenant || '—' }),
      h('td', {}, time(m.sent_at)),
      h('td', {}, time(m.expires_at)),
      h('td', { class: 'mono', text: JSON.stringify(m.data) }))))));
}

export default async function messages(main, { query, me }) {
  const name = field('message-name', 'Message name', h('input', { type: 'text', autocomplete: 'off', required: true, value: query.get('name') || '' }),
    'The name an event step waits on, e.g. payment_received.');
  const key = field('message-key', 'Correlation key', h('input', { type: 'text', autocomplete: 'off', required: true, value: query.get('key') || '' }),
    'The key the instance waits on, e.g. its order id.');
  const data = field('message-data', 'Data (JSON)', h('textarea', { rows: 5, class: 'mono', spellcheck: 'false', value: '{}' }),
    'Stored under the event step\'s output.');
  const id = field('message-id', 'Message id (optional)', h('input', { type: 'text', autocomplete: 'off' }),
    'The same id twice is delivered once. Leave empty for a new one.');
  const ttl = field('message-ttl', 'Keep for (optional)', h('input', { type: 'text', autocomplete: 'off', placeholder: '1h' }),
    'How long it is kept when no instance waits yet, e.g. 10m (default 1h).');
  const tenant = me.tenant ? null : field('message-tenant', 'Tenant (optional)', h('input', { type: 'text', autocomplete: 'off' }),
    'Whose instances may receive it; empty for instances without a tenant.');
  const fields = { name, key, data, id, ttl, tenant };
  const status = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', text: 'Send message' });
  const list = h('div', {});

  const clear = () => {
    status.replaceChildren();
    for (const f of Object.values(fields)) {
      if (!f) continue;
      f.error.hidden = true;
      f.error.textContent = '';
      f.control.removeAttribute('aria-invalid');
    }
  };
  const fail = (f, message) => {
    f.error.hidden = false;
    f.error.textContent = message;
    f.control.setAttribute('aria-invalid', 'true');
    f.control.focus();
  };

  async function load() {
    try {
      replace(list, keptTable(await api(`/messages${qs({ limit: 200 })}`)));
    } catch (err) {
      replace(list, notice('error', errorText(err)));
    }
  }

  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'send-heading' },
    h('h2', { id: 'send-heading', text: 'Send a message' }),
    name.wrap, key.wrap, data.wrap, id.wrap, ttl.wrap, tenant && tenant.wrap, status,
    h('div', { class: 'form-actions' }, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clear();
    if (!name.control.value.trim()) return fail(name, 'Give the message name.');
    if (!key.control.value.trim()) return fail(key, 'Give the correlation key.');
    let parsed;
    try {
      parsed = JSON.parse(data.control.value.trim() || '{}');
    } catch (err) {
      return fail(data, `Not valid JSON: ${err.message}`);
    }
    const body = { name: name.control.value.trim(), key: key.control.value.trim(), data: parsed };
    if (id.control.value.trim()) body.id = id.control.value.trim();
    if (ttl.control.value.trim()) body.ttl = ttl.control.value.trim();
    if (tenant && tenant.control.value.trim()) body.tenant = tenant.control.value.trim();
    submit.disabled = true;
    try {
      const sent = await api('/messages', { method: 'POST', body });
      status.replaceChildren(outcomeNotice(sent));
      await load();
    } catch (err) {
      const f = err.field ? fields[String(err.field)] : null;
      if (f) fail(f, err.detail || err.title);
      else status.replaceChildren(notice('error', errorText(err)));
    } finally {
      submit.disabled = false;
    }
    return undefined;
  });

  const refresh = h('button', { type: 'button', class: 'secondary', text: 'Refresh' });
  refresh.addEventListener('click', () => load());
  replace(main, pageHead('Messages'),
    h('p', { class: 'muted' }, 'A message goes to the instance that has waited longest on its name and key; when none waits it is kept until its time to live runs out. Also ',
      h('code', { text: 'weir message send' }), ' and ', h('code', { text: 'POST /api/v1/messages' }), '.'),
    form,
    h('div', { class: 'page-head' }, h('h2', { text: 'Kept messages' }), h('div', { class: 'actions' }, refresh)),
    list);
  await load();
  if (query.get('name') && query.get('key')) data.control.focus();
}
