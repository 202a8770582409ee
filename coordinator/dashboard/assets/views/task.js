// One task: its title and description, the context fields its step shows (else the whole
// context, collapsed), the form drawn from its JSON Schema, and submission: "Complete task",
// or one button per outcome (the server merges the outcome's data).
// Errors show next to the fields: the browser's basic checks first, then the server's
// `form-invalid` problem, whose `errors` (JSON pointers) are mapped to the fields.

import { api, seg } from '../api.js';
import { h, replace } from '../dom.js';
import { errorText, json, notice, pageHead, shownFields, time } from '../format.js';
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

  // With outcome buttons, the fields every outcome sets are the buttons' to set: they are
  // not drawn. Each button sends its name; the server merges its data and checks the form.
  const outcomes = Array.isArray(t.outcomes) ? t.outcomes : [];
  const form = schemaForm(withoutFieldsSetByAll(t.form || { type: 'object' }, outcomes));
  let submitting = false;
  const status = h('div', { 'aria-live': 'polite' });
  const buttons = outcomes.length
    ? outcomes.map((o, i) => h('button', { type: 'submit', class: i ? 'secondary outcome' : 'outcome', value: o.name,
      dataset: { outcome: o.name }, text: outcomeLabel(o.name), disabled: t.allowed === false }))
    : [h('button', { type: 'submit', text: 'Complete task', disabled: t.allowed === false })];
  const setBusy = (busy) => buttons.forEach((b) => { b.disabled = busy || t.allowed === false; });
  const el = h('form', { class: 'card task-form', novalidate: true }, form.element, status, h('div', { class: 'form-actions' }, buttons));
  el.addEventListener('submit', async (event) => {
    event.preventDefault();
    status.replaceChildren();
    if (form.validate().length) {
      status.replaceChildren(notice('error', 'Some fields need fixing (see the messages next to them).'));
      return;
    }
    const outcome = event.submitter && event.submitter.dataset.outcome;
    setBusy(true);
    submitting = true;
    try {
      const body = outcome ? { data: form.value(), outcome } : { data: form.value() };
      await api(`${path}/complete`, { method: 'POST', body });
      go(`/instances/${params.instance}`);
    } catch (err) {
      submitting = false;
      setBusy(false);
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

  // Without `show`, the whole context, collapsed: what the task is about is one click away.
  let context = null;
  if (!(t.fields || []).length) {
    try {
      const inst = await api(`/instances/${seg(t.instance_id)}`);
      context = h('details', { class: 'raw task-context' }, h('summary', { text: 'Context' }), json(inst.context ?? null));
    } catch {
      context = null; // the task is still worth showing
    }
  }
  const changed = h('div', { 'aria-live': 'polite' });
  const claimStatus = h('div', { 'aria-live': 'polite' });
  const claimButton = t.claimable || (t.claimed_by && (t.claimed_by === me.user || me.admin))
    ? h('button', { type: 'button', class: 'secondary claim-toggle', text: t.claimed_by ? 'Release' : 'Claim' })
    : null;
  if (claimButton) {
    claimButton.addEventListener('click', async () => {
      claimButton.disabled = true;
      submitting = true;
      try {
        await api(`${path}/${t.claimed_by ? 'release' : 'claim'}`, { method: 'POST' });
        go(`/tasks/${params.instance}/${params.step}?r=${Date.now()}`);
      } catch (err) {
        submitting = false;
        claimButton.disabled = false;
        claimStatus.replaceChildren(notice('error', errorText(err)));
      }
    });
  }
  const who = h('span', { text: t.assignee || '—' });
  const candidatesText = h('span', { text: (t.candidates || []).join(', ') || '—' });
  replace(main,
    pageHead(t.title || t.step),
    changed,
    t.description ? h('p', { class: 'lede', text: t.description }) : null,
    shownFields(t),
    context,
    h('dl', { class: 'facts-grid' },
      fact('Instance', h('a', { href: `#/instances/${seg(t.instance_id)}`, text: t.instance_id })),
      fact('Workflow', t.workflow || '—'),
      fact('Step', t.step),
      fact('Assignee', who),
      fact('Candidates', candidatesText),
      (t.candidate_groups || []).length ? fact('Groups', t.candidate_groups.join(', ')) : null,
      fact('Opened', time(t.created_at)),
      t.due_at ? fact('Due', t.overdue ? [time(t.due_at), ' ', h('span', { class: 'badge s-failed', text: 'Overdue' })] : time(t.due_at)) : null,
      t.reminders ? fact('Reminders', String(t.reminders)) : null,
      fact('Taken by', h('span', { class: 'taken-by', text: t.claimed_by || 'no one' }))),
    h('div', { class: 'claim-bar' }, claimButton, claimStatus),
    t.allowed === false
      ? notice('info', t.claimed_by && t.claimed_by !== me.user ? `Taken by ${t.claimed_by}: only they may complete it until it is released.` : 'You may see this task but not complete it.')
      : null,
    el,
    me.admin || t.allowed ? reassignForm(t, path, (changedTask) => {
      who.textContent = changedTask.assignee || '—';
      candidatesText.textContent = (changedTask.candidates || []).join(', ') || '—';
    }, (busy) => { submitting = busy; }) : null,
    h('details', { class: 'raw' }, h('summary', { text: 'Form schema' }), json(t.form || null)));

  // Someone else completing or reassigning the task, or the instance ending, is said at once.
  return onEvents((e) => e.instance_id === t.instance_id && !submitting
    && (/^(HumanTask|Task)(Completed|Reassigned|Claimed|Released)$/.test(e.type) ? !e.step || e.step === t.step : /^Workflow(Canceled|Failed|Completed)$/.test(e.type)),
  () => {
    if (submitting) return;
    changed.replaceChildren(notice('info', 'This task was just completed, reassigned, claimed, released or ended elsewhere. ',
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

/** The form without the top-level fields that every outcome sets (nothing left to ask). */
function withoutFieldsSetByAll(schema, outcomes) {
  if (!outcomes.length || !schema || typeof schema !== 'object' || !schema.properties) return schema;
  const setByAll = Object.keys(schema.properties).filter((k) => outcomes.every((o) => o.data && k in o.data));
  if (!setByAll.length) return schema;
  const properties = Object.fromEntries(Object.entries(schema.properties).filter(([k]) => !setByAll.includes(k)));
  const required = Array.isArray(schema.required) ? schema.required.filter((k) => !setByAll.includes(k)) : schema.required;
  return { ...schema, properties, required };
}

/** `approve` -> `Approve`, `send_back` -> `Send back`. */
function outcomeLabel(name) {
  const s = String(name).replace(/[_-]+/g, ' ').trim();
  return s ? s[0].toUpperCase() + s.slice(1) : String(name);
}

function fact(term, value) {
  return h('div', {}, h('dt', { text: term }), h('dd', {}, value));
}
