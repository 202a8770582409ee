// One definition: its diagram, its steps, and a version picker.

import { api, query, seg } from '../api.js';
import { h, replace } from '../dom.js';
import { json, pageHead } from '../format.js';
import { diagram } from '../graph.js';
import { go } from '../router.js';

export default async function definition(main, { params, query: q }) {
  const name = params.name;
  const version = q.get('version') || '';
  const [def, graph, all] = await Promise.all([
    api(`/definitions/${seg(name)}${query({ version })}`),
    api(`/definitions/${seg(name)}/graph${query({ version })}`),
    api('/definitions'),
  ]);
  const entry = all.find((d) => d.name === name);
  const picker = h('select', { id: 'version', onchange: (e) => go(`/definitions/${name}`, { version: e.target.value }) },
    (entry ? entry.versions : [def.version]).map((v) => h('option', { value: v, selected: v === def.version, text: v })));
  const steps = Object.entries(def.steps || {});
  replace(main,
    pageHead(def.name, h('a', { class: 'button', href: `#/start?workflow=${seg(def.name)}&version=${seg(def.version)}`, text: 'Start an instance' })),
    h('p', { class: 'lede', text: def.description || '' }),
    h('div', { class: 'field inline-field' }, h('label', { for: 'version', text: 'Version' }), picker),
    h('h2', { text: 'Diagram' }),
    diagram({ ...graph, initial_step: def.initial_step }, { title: `Diagram of ${def.name} ${def.version}` }),
    h('h2', { text: 'Steps' }),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Step', 'Type', 'Details'].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, steps.map(([id, s]) => h('tr', {},
        h('th', { scope: 'row', text: id === def.initial_step ? `${id} (first)` : id }),
        h('td', { text: s.type || '' }),
        h('td', {}, h('details', {}, h('summary', { text: stepSummary(s) }), json(s)))))))),
    h('details', { class: 'raw' }, h('summary', { text: 'Mermaid text' }), h('pre', { class: 'json', text: graph.mermaid || '' })));
}

function stepSummary(s) {
  if (s.type === 'machine') return `handler ${s.handler || '?'}`;
  if (s.type === 'human') return [s.title, s.assignee && `for ${s.assignee}`].filter(Boolean).join(' · ') || 'human task';
  if (s.type === 'timer') return 'timer';
  return s.type || 'step';
}
