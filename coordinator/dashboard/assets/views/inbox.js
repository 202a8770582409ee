// The task inbox: open tasks as cards that stack on a phone, filtered by "mine / my groups /
// all I may do" and by workflow, sorted oldest first or by due date, a page at a time ("Show
// more" follows the server's cursor). A card says who took a claimed task, flags an overdue
// one and counts its reminders; "Claim" takes a task. Refreshed live when tasks change.

import { api, query, seg } from '../api.js';
import { h, replace } from '../dom.js';
import { errorText, notice, pageHead, shortId, shownFields, time } from '../format.js';
import { onEvents } from '../live.js';

const PAGE = 25;

export default async function inbox(main, { me } = {}) {
  const list = h('div', {});
  const status = h('div', { 'aria-live': 'polite' });
  const view = h('select', { id: 'inbox-view' },
    h('option', { value: 'all', text: 'All I may do' }),
    h('option', { value: 'mine', text: 'Mine' }),
    h('option', { value: 'groups', text: 'My groups' }));
  const sort = h('select', { id: 'inbox-sort' },
    h('option', { value: 'oldest', text: 'Oldest first' }),
    h('option', { value: 'due', text: 'Due soonest' }));
  const workflow = h('input', { id: 'inbox-workflow', type: 'text', autocomplete: 'off' });
  const more = h('button', { type: 'button', class: 'secondary', text: 'Show more', hidden: true });
  const filters = h('form', { class: 'filters inbox-filters', role: 'search' },
    h('div', { class: 'field' }, h('label', { for: 'inbox-view', text: 'Show' }), view),
    h('div', { class: 'field' }, h('label', { for: 'inbox-workflow', text: 'Workflow' }), workflow),
    h('div', { class: 'field' }, h('label', { for: 'inbox-sort', text: 'Order' }), sort));
  replace(main, pageHead('Inbox'), h('p', { class: 'muted', text: 'Open tasks you may act on.' }), filters, status, list, more);

  let cursor = null;
  let shown = [];
  const params = () => ({ view: view.value, workflow: workflow.value.trim(), sort: sort.value, limit: PAGE });

  function card(t) {
    const claim = t.claimable
      ? h('button', { type: 'button', class: 'secondary claim', text: 'Claim', 'aria-label': `Claim ${t.title || t.step}` })
      : null;
    if (claim) {
      claim.addEventListener('click', async () => {
        claim.disabled = true;
        try {
          await api(`/tasks/${seg(t.instance_id)}/${seg(t.step)}/claim`, { method: 'POST' });
          await load();
        } catch (err) {
          claim.disabled = false;
          status.replaceChildren(notice('error', errorText(err)));
        }
      });
    }
    return h('li', { class: 'card task-card', dataset: { instance: t.instance_id, step: t.step } },
      h('h2', {}, h('a', { href: `#/tasks/${seg(t.instance_id)}/${seg(t.step)}`, text: t.title || t.step })),
      t.description ? h('p', { text: t.description }) : null,
      shownFields(t, 'card-fields'),
      h('p', { class: 'meta' },
        h('span', { text: `${t.workflow || ''} · ` }),
        h('a', { href: `#/instances/${seg(t.instance_id)}`, title: t.instance_id, text: shortId(t.instance_id) }),
        t.assignee ? h('span', { text: ` · for ${t.assignee}` }) : null,
        (t.candidates || []).length ? h('span', { text: ` · or ${t.candidates.join(', ')}` }) : null,
        (t.candidate_groups || []).length ? h('span', { text: ` · groups ${t.candidate_groups.join(', ')}` }) : null),
      h('p', { class: 'meta' }, 'Opened ', time(t.created_at), t.due_at ? [' · due ', time(t.due_at)] : null,
        t.overdue ? [' ', h('span', { class: 'badge s-failed overdue', text: 'Overdue' })] : null,
        t.reminders ? h('span', { class: 'reminders', text: ` · ${t.reminders} reminder${t.reminders === 1 ? '' : 's'}` }) : null),
      t.claimed_by
        ? h('p', { class: 'taken' }, h('span', { class: 'badge s-waiting', text: t.claimed_by === (me && me.user) ? 'Taken by you' : `Taken by ${t.claimed_by}` }))
        : null,
      claim);
  }

  function render() {
    replace(list, shown.length
      ? h('ul', { class: 'inbox' }, shown.map(card))
      : h('p', { class: 'empty', text: 'Nothing waiting for you.' }));
    more.hidden = !cursor;
  }

  async function load() {
    const page = await api(`/tasks${query(params())}`, { withNext: true });
    shown = page.data;
    cursor = page.next;
    status.replaceChildren();
    render();
  }

  more.addEventListener('click', async () => {
    more.disabled = true;
    try {
      const page = await api(`/tasks${query({ ...params(), cursor })}`, { withNext: true });
      shown = shown.concat(page.data);
      cursor = page.next;
      render();
    } catch (err) {
      status.replaceChildren(notice('error', errorText(err)));
    } finally {
      more.disabled = false;
    }
  });
  for (const control of [view, sort]) control.addEventListener('change', () => load().catch((err) => status.replaceChildren(notice('error', errorText(err)))));
  workflow.addEventListener('change', () => load().catch((err) => status.replaceChildren(notice('error', errorText(err)))));
  filters.addEventListener('submit', (event) => { event.preventDefault(); load().catch(() => {}); });

  // Subscribed before the first read, so an event during it is not missed.
  const stop = onEvents((e) => /Task|Workflow(Canceled|Failed|Completed)/.test(e.type || ''), () => load().catch(() => {}), 300);
  try {
    await load();
  } catch (err) {
    replace(list, notice('error', errorText(err)));
  }
  return stop;
}
