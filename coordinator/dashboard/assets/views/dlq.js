// The dead-letter queue (admin): messages no worker or coordinator could handle.

import { api, query } from '../api.js';
import { h, replace } from '../dom.js';
import { errorText, notice, pageHead } from '../format.js';

export default async function dlq(main, { me }) {
  if (!me.admin) {
    replace(main, pageHead('Dead letters'), notice('info', 'Only an admin token may see the dead-letter queue.'));
    return;
  }
  let letters;
  try {
    letters = await api(`/dlq${query({ limit: 200 })}`);
  } catch (err) {
    replace(main, pageHead('Dead letters'), notice('error', errorText(err)));
    return;
  }
  replace(main, pageHead('Dead letters'),
    h('p', { class: 'muted' }, 'Replay or purge them with ', h('code', { text: 'weir dlq replay ID' }), ' / ', h('code', { text: 'weir dlq purge ID' }), '.'),
    letters.length
      ? h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Id', 'Source', 'Group', 'Deliveries', 'Size', 'Error'].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, letters.map((d) => h('tr', {},
          h('td', { class: 'mono', text: d.id }),
          h('td', { class: 'mono', text: d.source || '' }),
          h('td', { text: d.group || '' }),
          h('td', { class: 'num', text: d.deliveries ?? '' }),
          h('td', { class: 'num', text: d.size != null ? `${d.size} B` : '' }),
          h('td', { class: 'error-text', text: d.error || '' }))))))
      : h('p', { class: 'empty', text: 'The dead-letter queue is empty.' }));
}
