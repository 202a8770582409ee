// Definitions: every registered workflow, its versions, and links to its diagram and start form.

import { api, seg } from '../api.js';
import { h, replace } from '../dom.js';
import { pageHead } from '../format.js';

export default async function definitions(main) {
  const list = await api('/definitions');
  const rows = list.map((d) => h('tr', {},
    h('td', {}, h('a', { href: `#/definitions/${seg(d.name)}`, text: d.name })),
    h('td', { text: d.latest_version }),
    h('td', { class: 'muted', text: (d.versions || []).join(', ') }),
    h('td', { text: d.description || '' }),
    h('td', { class: 'num', text: d.steps ?? '' }),
    h('td', {}, h('a', { class: 'button small secondary', href: `#/start?workflow=${seg(d.name)}`, text: 'Start' }))));
  replace(main, pageHead('Definitions', h('a', { class: 'button', href: '#/start', text: 'Start an instance' })),
    list.length
      ? h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Name', 'Latest', 'Versions', 'Description', 'Steps', ''].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, rows)))
      : h('p', { class: 'muted' }, 'No definitions yet: register one with ', h('code', { text: 'weir definition register FILE' }), '.'));
}
