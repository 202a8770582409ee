// One task: its title and description, the form drawn from its JSON Schema, and submission.
// Errors show next to the fields: the browser's basic checks first, then the server's
// `form-invalid` problem, whose `errors` (JSON pointers) are mapped to the fields.

import { api, seg } from '../api.js';
import { h, replace } from '../dom.js';
import { errorText, json, notice, pageHead, time } from '../format.js';
import { schemaForm } from '../form.js';
import { go } from '../router.js';
import { onEvents } from '../live.js';

export default async function task(main, { params, me }) {
  const path = `/tasks/${seg(params.instance)}/${seg(params.step)}`;
  let t;
  try {
    t = await api(path);
  } catch (err) {
    if (err.status !== 404) throw err;
    replace(main, pageHead('Task not open'),
      notice('info', 'This task is not open any more (it was completed, canceled, or never existed).'),
      h('p', {}, h('a', { href: `#/instances/${seg(params.instance)}`, text: 'See the instance' }), ' · ', h('a', { href: '#/inbox', text: 'Back to the inbox' })));
    return;
  }

  const form = schemaForm(t.form || { type: 'object' });
  let submitting = false;
  const status = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', text: 'Complete task', disabled: t.allowed === false });
  const el = h('form', { class: 'card task-form', novalidate: true }, form.element, status, h('div', { class: 'form-actions' }, submit));
  el.addEventListener('submit', async (event) => {
    event.preventDefault();
    status.replaceChildren();
    if (form.validate().length) {
      status.replaceChildren(notice('error', 'Some fields need fixing (see the messages next to them).'));
      return;
    }
    submit.disabled = true;
    submitting = true;
    try {
      await api(`${path}/complete`, { method: 'POST', body: { data: form.value() } });
      go(`/instances/${params.instance}`);
    } catch (err) {
      submitting = false;
      submit.disabled = false;
      if (err.kind === 'form-invalid' && err.errors.length) {
        form.showErrors(err.errors);
        status.replaceChildren(notice('error', 'The server refused the data (see the messages next to the fields).'));
      } else if (err.status === 409 || err.status === 404) {
        status.replaceChildren(notice('error', `${errorText(err)} `, h('a', { href: '#/inbox', text: 'Back to the inbox' })));
      } else {
        status.replaceChildren(notice('error', errorText(err)));
      }
    }
  });

  const changed = h('div', { 'aria-live': 'polite' });
  const who = h('span', { text: t.assignee || '—' });
  const candidatesText = h('span', { text: (t.candidates || []).join(', ') || '—' });
  replace(main,
    pageHead(t.title || t.step),
    changed,
    t.description ? h('p', { class: 'lede', text: t.description }) : null,
    h('dl', { class: 'facts-grid' },
      fact('Instance', h('a', { href: `#/instances/${seg(t.instance_id)}`, text: t.instance_id })),
      fact('Workflow', t.workflow || '—'),
      fact('Step', t.step),
      fact('Assignee', who),
      fact('Candidates', candidatesText),
      fact('Opened', time(t.created_at)),
      t.due_at ? fact('Due', time(t.due_at)) : null),
    t.allowed === false ? notice('info', 'You may see this task but not complete it.') : null,
    el,
    me.admin || t.allowed ? reassignForm(t, path, (changedTask) => {
      who.textContent = changedTask.assignee || '—';
      candidatesText.textContent = (changedTask.candidates || []).join(', ') || '—';
    }, (busy) => { submitting = busy; }) : null,
    h('details', { class: 'raw' }, h('summary', { text: 'Form schema' }), json(t.form || null)));

  // Someone else completing or reassigning the task, or the instance ending, is said at once.
  return onEvents((e) => e.instance_id === t.instance_id && !submitting
    && (/^(HumanTask|Task)(Completed|Reassigned)$/.test(e.type) ? !e.step || e.step === t.step : /^Workflow(Canceled|Failed|Completed)$/.test(e.type)),
  () => {
    if (submitting) return;
    changed.replaceChildren(notice('info', 'This task was just completed, reassigned or ended elsewhere. ',
      h('a', { href: `#/tasks/${seg(t.instance_id)}/${seg(t.step)}?r=${Date.now()}`, text: 'Reload it' })));
  }, 200);
}

/**
 * Hands the task to other people (an admin, or a user who may complete it). `done(task)` gets
 * the task as it now is; `busy(flag)` mutes the "changed elsewhere" notice meanwhile.
 */
function reassignForm(t, path, done, busy) {
  const assignee = h('input', { id: 'reassign-assignee', type: 'text', autocomplete: 'off', value: t.assignee || '' });
  const candidates = h('input', { id: 'reassign-candidates', type: 'text', autocomplete: 'off', value: (t.candidates || []).join(', '),
    'aria-describedby': 'reassign-candidates-help' });
  const status = h('div', { 'aria-live': 'polite' });
  const button = h('button', { type: 'submit', class: 'secondary', text: 'Reassign' });
  const form = h('form', { class: 'reassign', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'reassign-assignee', text: 'Assignee' }), assignee),
    h('div', { class: 'field' }, h('label', { for: 'reassign-candidates', text: 'Candidates' }),
      h('p', { class: 'field-help', id: 'reassign-candidates-help', text: 'Comma-separated users who may also complete it.' }), candidates),
    status, h('div', { class: 'form-actions' }, button));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = {
      assignee: assignee.value.trim() || null,
      candidates: candidates.value.split(',').map((c) => c.trim()).filter(Boolean),
    };
    if (!body.assignee && !body.candidates.length) {
      status.replaceChildren(notice('error', 'Name an assignee or at least one candidate.'));
      assignee.focus();
      return;
    }
    button.disabled = true;
    busy(true);
    try {
      const changedTask = await api(`${path}/reassign`, { method: 'POST', body });
      status.replaceChildren(notice('ok', 'Reassigned.'));
      if (changedTask && typeof changedTask === 'object') done(changedTask);
    } catch (err) {
      status.replaceChildren(notice('error', errorText(err)));
    } finally {
      button.disabled = false;
      // the event of our own change may still be on its way
      setTimeout(() => busy(false), 1500);
    }
  });
  return h('details', { class: 'card reassign-card' }, h('summary', { text: 'Reassign this task' }), form);
}

function fact(term, value) {
  return h('div', {}, h('dt', { text: term }), h('dd', {}, value));
}
