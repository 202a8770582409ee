// Start an instance: workflow, version, JSON data (and for an admin, a tenant and an id).
// A problem naming a field (`data`, `version`, ...) is shown next to that field.

import { api, seg } from '../api.js';
import { h, replace } from '../dom.js';
import { errorText, notice, pageHead } from '../format.js';
import { go } from '../router.js';

function field(id, labelText, control, help) {
  control.id = id;
  const error = h('p', { class: 'field-error', id: `${id}-error`, hidden: true, 'aria-live': 'polite' });
  const helpEl = help ? h('p', { class: 'field-help', id: `${id}-help`, text: help }) : null;
  control.setAttribute('aria-describedby', [helpEl && `${id}-help`, `${id}-error`].filter(Boolean).join(' '));
  const wrap = h('div', { class: 'field' }, h('label', { for: id, text: labelText }), helpEl, control, error);
  return { wrap, control, error };
}

export default async function start(main, { query, me }) {
  const defs = await api('/definitions');
  const wanted = query.get('workflow') || (defs[0] && defs[0].name) || '';
  const workflow = field('start-workflow', 'Workflow', h('select', {},
    defs.map((d) => h('option', { value: d.name, selected: d.name === wanted, text: d.name }))));
  const version = field('start-version', 'Version', h('select', {}));
  const data = field('start-data', 'Data (JSON object)', h('textarea', { rows: 8, class: 'mono', spellcheck: 'false', value: '{}' }),
    'The instance\'s starting context.');
  const id = field('start-id', 'Instance id (optional)', h('input', { type: 'text', autocomplete: 'off' }), 'Leave empty for a generated id; starting twice with one id starts once.');
  const tenant = me.admin ? field('start-tenant', 'Tenant (optional)', h('input', { type: 'text', autocomplete: 'off' })) : null;
  const fields = { workflow, version, data, id, tenant };
  const status = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', text: 'Start' });

  const fillVersions = () => {
    const d = defs.find((x) => x.name === workflow.control.value);
    const wantedVersion = query.get('version');
    version.control.replaceChildren(
      h('option', { value: '', text: d ? `latest (${d.latest_version})` : 'latest' }),
      (d ? [...d.versions].reverse() : []).map((v) => h('option', { value: v, selected: v === wantedVersion, text: v })));
  };
  workflow.control.addEventListener('change', fillVersions);
  fillVersions();

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

  const form = h('form', { class: 'card', novalidate: true }, workflow.wrap, version.wrap, data.wrap, id.wrap, tenant && tenant.wrap, status,
    h('div', { class: 'form-actions' }, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clear();
    if (!workflow.control.value) return fail(workflow, 'Choose a workflow.');
    let parsed;
    try {
      parsed = JSON.parse(data.control.value.trim() || '{}');
    } catch (err) {
      return fail(data, `Not valid JSON: ${err.message}`);
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return fail(data, 'The data must be a JSON object, like {"amount": 120}.');
    const body = { workflow: workflow.control.value, data: parsed };
    if (version.control.value) body.version = version.control.value;
    if (id.control.value.trim()) body.id = id.control.value.trim();
    if (tenant && tenant.control.value.trim()) body.tenant = tenant.control.value.trim();
    submit.disabled = true;
    try {
      const created = await api('/instances', { method: 'POST', body });
      go(`/instances/${created.id}`);
    } catch (err) {
      submit.disabled = false;
      const key = err.field ? String(err.field).split('.')[0] : null;
      if (key && fields[key]) fail(fields[key], err.detail || err.title);
      else status.replaceChildren(notice('error', errorText(err)));
    }
    return undefined;
  });

  replace(main, pageHead('Start an instance'),
    defs.length ? form : h('p', { class: 'muted', text: 'No definitions are registered yet.' }),
    wanted ? h('p', {}, h('a', { href: `#/definitions/${seg(wanted)}`, text: `See the diagram of ${wanted}` })) : null);
}
