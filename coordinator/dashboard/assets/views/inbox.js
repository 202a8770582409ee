// The task inbox: the open tasks the signed-in user may complete (`/tasks?mine=true`), as
// cards that stack on a phone. Refreshed live when tasks open or close.

import { api, seg } from '../api.js';
import { h, replace } from '../dom.js';
import { errorText, notice, pageHead, shortId, time } from '../format.js';
import { onEvents } from '../live.js';

export default async function inbox(main) {
  const list = h('div', {});
  replace(main, pageHead('Inbox'), h('p', { class: 'muted', text: 'Open tasks you may complete.' }), list);

  async function load() {
    const tasks = await api('/tasks?mine=true');
    tasks.sort((a, b) => String(a.due_at || '~').localeCompare(String(b.due_at || '~')) || String(a.created_at).localeCompare(String(b.created_at)));
    replace(list, tasks.length
      ? h('ul', { class: 'inbox' }, tasks.map((t) => h('li', { class: 'card task-card', dataset: { instance: t.instance_id, step: t.step } },
        h('h2', {}, h('a', { href: `#/tasks/${seg(t.instance_id)}/${seg(t.step)}`, text: t.title || t.step })),
        t.description ? h('p', { text: t.description }) : null,
        h('p', { class: 'meta' },
          h('span', { text: `${t.workflow || ''} · ` }),
          h('a', { href: `#/instances/${seg(t.instance_id)}`, title: t.instance_id, text: shortId(t.instance_id) }),
          t.assignee ? h('span', { text: ` · for ${t.assignee}` }) : null,
          (t.candidates || []).length ? h('span', { text: ` · or ${t.candidates.join(', ')}` }) : null),
        h('p', { class: 'meta' }, 'Opened ', time(t.created_at), t.due_at ? [' · due ', time(t.due_at)] : null))))
      : h('p', { class: 'empty', text: 'Nothing waiting for you.' }));
  }

  // Subscribed before the first read, so an event during it is not missed.
  const stop = onEvents((e) => /Task|Workflow(Canceled|Failed|Completed)/.test(e.type || ''), () => load().catch(() => {}), 300);
  try {
    await load();
  } catch (err) {
    replace(list, notice('error', errorText(err)));
  }
  return stop;
}
