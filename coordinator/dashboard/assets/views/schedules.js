// Schedules (admin): what fires when, paused or not, with its counts; pause, resume or fire
// one now, and open one to see its next five fire times and its last ten firings. Schedules
// belong to the namespace, not to a tenant, so the API gives them to admin tokens only.
// Creating and deleting stay with `weir schedule create|delete` and the API, where the spec
// is reviewed as text.

import { api, seg } from '../api.js';
import { h, replace } from '../dom.js';
import { errorText, instanceLink, notice, pageHead, time } from '../format.js';

/** The trigger as a person reads it: `cron 0 30 2 * * * (Europe/Paris)` or `every 90 s`. */
function triggerText(trigger) {
  if (!trigger) return '';
  if (trigger.kind === 'cron') return `cron ${trigger.expr}${trigger.timezone ? ` (${trigger.timezone})` : ' (UTC)'}`;
  if (trigger.kind === 'every') return `every ${Number(trigger.every_ms) / 1000} s`;
  return JSON.stringify(trigger);
}

/** One firing's outcome as text: `started`, `skipped overlap`, `missed 3`, `failed: ...`. */
function outcomeText(f) {
  const name = String(f.outcome || '').replace(/_/g, ' ');
  if (f.outcome === 'missed') return `${name} ${f.count ?? ''}`.trim();
  if (f.outcome === 'failed') return `${name}: ${f.error || ''}`;
  return name;
}

/** The next fire times and the last firings of one schedule (its fields flattened in). */
function detailOf(d) {
  const upcoming = d.upcoming || [];
  const recent = d.recent || [];
  return h('div', { class: 'schedule-detail' },
    h('h3', { text: 'Next fire times' }),
    upcoming.length
      ? h('ol', {}, upcoming.map((t) => h('li', {}, time(t))))
      : h('p', { class: 'muted', text: d.paused ? 'None while paused.' : 'None.' }),
    h('h3', { text: 'Last firings' }),
    recent.length
      ? h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Slot', 'Fired', 'Outcome', 'Instance'].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, recent.map((f) => h('tr', {},
          h('td', {}, f.slot ? time(f.slot) : h('span', { text: 'manual' })),
          h('td', {}, time(f.fired_at)),
          h('td', { text: outcomeText(f) }),
          h('td', {}, f.instance_id ? instanceLink(f.instance_id) : h('span', { class: 'muted', text: '—' })))))))
      : h('p', { class: 'muted', text: 'It has not fired yet.' }));
}

export default async function schedules(main, { me }) {
  if (!me.admin) {
    replace(main, pageHead('Schedules'), notice('info', 'Only an admin token may see the schedules.'));
    return;
  }
  const status = h('div', { 'aria-live': 'polite' });
  const list = h('div', {});
  replace(main, pageHead('Schedules'),
    h('p', { class: 'muted' }, 'Create or delete them with ', h('code', { text: 'weir schedule create' }), ' / ', h('code', { text: 'weir schedule delete' }), '.'),
    status, list);

  /** Runs an action on one schedule, then draws the list again. */
  async function act(button, path, done) {
    button.disabled = true;
    try {
      await api(path, { method: 'POST' });
      status.replaceChildren(notice('ok', done));
      await load();
    } catch (err) {
      button.disabled = false;
      status.replaceChildren(notice('error', errorText(err)));
    }
  }

  function row(s) {
    const spec = s; // the spec's fields are flattened into the schedule
    const name = spec.name;
    const path = `/schedules/${seg(name)}`;
    const toggle = h('button', { type: 'button', class: 'secondary', text: s.paused ? 'Resume' : 'Pause', 'aria-label': `${s.paused ? 'Resume' : 'Pause'} ${name}` });
    toggle.addEventListener('click', () => act(toggle, `${path}/${s.paused ? 'resume' : 'pause'}`, `${name} ${s.paused ? 'resumed' : 'paused'}.`));
    const fire = h('button', { type: 'button', class: 'secondary', text: 'Fire now', 'aria-label': `Fire now: ${name}` });
    fire.addEventListener('click', () => act(fire, `${path}/trigger`, `${name} fired (its overlap rule applies).`));
    const more = h('details', { class: 'schedule-more' }, h('summary', { text: 'Fire times and firings' }));
    more.addEventListener('toggle', async () => {
      if (!more.open || more.dataset.loaded) return;
      more.dataset.loaded = 'yes';
      try {
        more.append(detailOf(await api(path)));
      } catch (err) {
        more.append(notice('error', errorText(err)));
      }
    });
    return h('li', { class: 'card schedule-card', dataset: { schedule: name } },
      h('h2', { text: name }),
      h('p', { class: 'meta' },
        h('span', { text: `${spec.workflow}${spec.version ? ` ${spec.version}` : ''} · ${triggerText(spec.trigger)} · overlap ${spec.overlap || 'skip'} · catch-up ${spec.catch_up ?? 1}` })),
      h('p', { class: 'meta' },
        h('span', { class: `badge ${s.paused ? 's-canceled' : 's-running'}`, text: s.paused ? 'paused' : 'active' }),
        ' · next ', time(s.next_fire),
        h('span', { text: ` · fired ${s.fired ?? 0}, missed ${s.missed ?? 0}, skipped ${s.skipped ?? 0}` }),
        s.last_instance ? [' · last ', instanceLink(s.last_instance)] : null),
      h('div', { class: 'actions' }, toggle, fire),
      more);
  }

  async function load() {
    const all = await api('/schedules');
    replace(list, all.length
      ? h('ul', { class: 'inbox' }, all.map(row))
      : h('p', { class: 'empty', text: 'No schedules yet.' }));
  }

  try {
    await load();
  } catch (err) {
    replace(list, notice('error', errorText(err)));
  }
}
