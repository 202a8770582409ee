// One instance: status, its diagram coloured by step state, open tasks, the context, the
// history, and cancel / retry. Re-read live on this instance's events.

import { api, query, seg } from '../api.js';
import { h, replace } from '../dom.js';
import { badge, errorText, json, notice, pageHead, time } from '../format.js';
import { diagram } from '../graph.js';
import { onEvents } from '../live.js';

const FINISHED = new Set(['completed', 'failed', 'canceled']);

export default async function instance(main, { params }) {
  const id = params.id;
  const head = h('div', {});
  const actions = h('div', { class: 'card actions-card', hidden: true });
  const message = h('div', { 'aria-live': 'polite' });
  const summary = h('div', {});
  const tasks = h('div', {});
  const graphBox = h('div', {});
  const context = h('div', {});
  const history = h('div', {});
  replace(main, head, message, summary, tasks, h('h2', { text: 'Diagram' }), graphBox, actions,
    h('h2', { text: 'Context' }), context, h('h2', { text: 'History' }), history);

  let detail = null;
  let drawnFor = null;

  async function load() {
    const [d, g] = await Promise.all([
      api(`/instances/${seg(id)}`),
      api(`/instances/${seg(id)}/graph`),
    ]);
    detail = d;
    const status = String(d.status).toLowerCase();
    replace(head, pageHead(`Instance ${d.id}`), h('p', { class: 'status-line', dataset: { instanceStatus: status } },
      badge(status), ' ', h('a', { href: `#/definitions/${seg(d.workflow)}?version=${seg(d.version)}`, text: `${d.workflow} ${d.version}` })));
    replace(summary, h('dl', { class: 'facts-grid' },
      fact('Current steps', (d.current_steps || []).join(', ') || '—'),
      fact('Tenant', d.tenant || '—'),
      fact('Created by', d.created_by || '—'),
      fact('Created', time(d.created_at)),
      fact('Updated', time(d.updated_at)),
      d.start_at ? fact('Starts at', time(d.start_at)) : null,
      status === 'pending' ? fact('Pending', d.start_at
        ? 'A delayed start: stored now, created at its start time. It can be canceled until then.'
        : 'Stored; no coordinator has created it yet. It runs once one does, and can be canceled until then.') : null,
      (d.waiting_for || []).length ? fact('Waiting for', h('ul', { class: 'waiting-for' }, d.waiting_for.map(waitingItem)), 'wide') : null,
      d.failed_step ? fact('Failed step', d.failed_step) : null,
      d.error ? fact(status === 'canceled' ? 'Reason' : 'Error', h('span', { class: status === 'canceled' ? '' : 'error-text', text: d.error })) : null));
    const open = d.tasks || [];
    replace(tasks, open.length ? [h('h2', { text: 'Open tasks' }), h('ul', { class: 'task-links' }, open.map((t) => h('li', {},
      h('a', { href: `#/tasks/${seg(d.id)}/${seg(t.step)}`, text: t.title || t.step }),
      t.assignee ? h('span', { class: 'muted', text: ` · for ${t.assignee}` }) : null)))] : []);
    replace(graphBox, diagram(g, { title: `Diagram of instance ${d.id}, coloured by step state` }));
    replace(context, json(d.context));
    replace(history, historyTable(d.history || []));
    // redrawn only when the status changes, so a live update never wipes a reason being typed
    if (status !== drawnFor) drawActions(status);
    drawnFor = status;
  }

  function drawActions(status) {
    actions.hidden = false;
    const canCancel = !FINISHED.has(status);
    const canRetry = status === 'failed';
    const reason = h('input', { id: 'cancel-reason', type: 'text', autocomplete: 'off', placeholder: 'Why (optional)' });
    const stepsSeen = [...new Set((detail.history || []).map((r) => r.step))];
    const fromStep = h('select', { id: 'retry-from' }, h('option', { value: '', text: `the failed step${detail.failed_step ? ` (${detail.failed_step})` : ''}` }),
      stepsSeen.map((s) => h('option', { value: s, text: s })));
    const act = async (button, path, body) => {
      button.disabled = true;
      message.replaceChildren();
      try {
        await api(`/instances/${seg(id)}/${path}`, { method: 'POST', body });
        message.replaceChildren(notice('ok', path === 'cancel' ? 'Canceled.' : 'Retry requested.'));
        drawnFor = null; // the status may be the same as before (failed again): redraw anyway
        await load();
      } catch (err) {
        message.replaceChildren(notice('error', errorText(err)));
        button.disabled = false;
      }
    };
    const cancelButton = h('button', { type: 'button', class: 'danger', text: 'Cancel instance' });
    cancelButton.addEventListener('click', () => act(cancelButton, 'cancel', reason.value.trim() ? { reason: reason.value.trim() } : {}));
    const retryButton = h('button', { type: 'button', text: 'Retry' });
    retryButton.addEventListener('click', () => act(retryButton, 'retry', fromStep.value ? { from_step: fromStep.value } : {}));
    replace(actions,
      canCancel ? h('div', { class: 'action-row' }, h('div', { class: 'field' }, h('label', { for: 'cancel-reason', text: 'Cancel reason' }), reason), cancelButton) : null,
      canRetry ? h('div', { class: 'action-row' }, h('div', { class: 'field' }, h('label', { for: 'retry-from', text: 'Retry from' }), fromStep), retryButton) : null,
      !canCancel && !canRetry ? h('p', { class: 'muted', text: `This instance is ${status}; nothing to do.` }) : null);
  }

  const stop = onEvents((e) => e.instance_id === id, () => load().catch((err) => message.replaceChildren(notice('error', errorText(err)))), 250);
  try {
    await load();
  } catch (err) {
    stop();
    if (err.status === 404) {
      replace(main, pageHead('Instance not found'), notice('error', `No instance ${id} (or not in your tenant).`));
      return undefined;
    }
    throw err;
  }
  // A safety net besides the live stream: an unfinished instance is re-read every 15 s.
  const poll = setInterval(() => {
    if (detail && !FINISHED.has(String(detail.status).toLowerCase())) load().catch(() => {});
  }, 15000);
  return () => {
    stop();
    clearInterval(poll);
  };
}

/** One message an event step waits for: `payment_received (key A-17) at wait_payment`, with
 * a link to send it from the Messages page (pre-filled) when it has a key. */
function waitingItem(w) {
  const what = w.key != null ? `${w.event} (key ${w.key})` : `${w.event} (a signal)`;
  return h('li', { dataset: { waitingStep: w.step } },
    h('span', { class: 'waiting-text', text: `${what} at ${w.step}` }),
    w.key != null ? [' · ', h('a', { href: `#/messages${query({ name: w.event, key: w.key })}`, text: 'Send it' })] : null);
}

function fact(term, value, className) {
  return h('div', { class: className }, h('dt', { text: term }), h('dd', {}, value));
}

function historyTable(records) {
  if (!records.length) return h('p', { class: 'muted', text: 'No step has finished yet.' });
  return h('div', { class: 'table-wrap' }, h('table', { class: 'history' },
    h('thead', {}, h('tr', {}, ['Step', 'Attempt', 'Outcome', 'Started', 'Finished', 'By', 'Error / note'].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, records.map((r) => h('tr', {},
      h('td', { text: r.step }),
      h('td', { class: 'num', text: r.attempt ?? '' }),
      h('td', {}, badge(r.status)),
      h('td', {}, time(r.started_at)),
      h('td', {}, time(r.finished_at)),
      h('td', { text: r.worker || '' }),
      h('td', { class: r.error ? 'error-text' : 'muted', text: r.error || r.note || '' }))))));
}
