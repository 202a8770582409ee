// The workflow diagram, drawn here as SVG from the API's graph JSON (`nodes`, `edges`, and on
// an instance `states`): no diagram library to ship. Layout, in a few lines:
//  1. a depth-first walk from the steps nobody points to marks the edges that close loops
//     (back edges); they are drawn on the side and left out of the layering;
//  2. each step's layer is the longest path to it over the other edges (so every forward edge
//     points down);
//  3. within a layer, steps are ordered by the mean position of their parents (two sweeps),
//     which removes most crossings of small workflows.
// Nodes are coloured by state; a legend says what the colours mean.

import { h, svg } from './dom.js';

const W = 164; // node width
const H = 46; // node height
const GAP_X = 28;
const GAP_Y = 64;
const PAD = 24;
const LOOP = 46; // how far a back edge swings out to the right

/** The colours of each state, as CSS classes `st-<state>` (see style.css); the legend's order. */
export const STATES = ['pending', 'running', 'waiting', 'sleeping', 'retrying', 'completed', 'failed', 'timed_out', 'skipped', 'interrupted', 'canceled'];

/** Whether an edge is an alternative path (`on: failure | timeout`); `success` is the usual one. */
const isAlt = (e) => Boolean(e.on) && e.on !== 'success';

/** Computes `{ layers, pos: Map(id -> {x, y, layer}), back: Set(edgeIndex), width, height }`. */
export function layout(graph) {
  const ids = graph.nodes.map((n) => n.id);
  const known = new Set(ids);
  const edges = graph.edges.filter((e) => known.has(e.from) && known.has(e.to));
  const out = new Map(ids.map((id) => [id, []]));
  const indegree = new Map(ids.map((id) => [id, 0]));
  edges.forEach((e, i) => {
    out.get(e.from).push(i);
    indegree.set(e.to, indegree.get(e.to) + 1);
  });

  // 1. back edges: an edge to a step still on the walk's stack closes a loop.
  const back = new Set();
  const seen = new Set();
  const onStack = new Set();
  const visit = (id) => {
    seen.add(id);
    onStack.add(id);
    for (const i of out.get(id)) {
      const to = edges[i].to;
      if (onStack.has(to)) back.add(i);
      else if (!seen.has(to)) visit(to);
    }
    onStack.delete(id);
  };
  const roots = ids.filter((id) => indegree.get(id) === 0);
  const initial = graph.initial_step || (graph.nodes.find((n) => n.initial) || {}).id;
  for (const id of [initial, ...roots, ...ids]) if (id && known.has(id) && !seen.has(id)) visit(id);

  // 2. longest-path layers over forward edges (Kahn's order).
  const layer = new Map(ids.map((id) => [id, 0]));
  const fwdIn = new Map(ids.map((id) => [id, 0]));
  edges.forEach((e, i) => {
    if (!back.has(i)) fwdIn.set(e.to, fwdIn.get(e.to) + 1);
  });
  const queue = ids.filter((id) => fwdIn.get(id) === 0);
  while (queue.length) {
    const id = queue.shift();
    for (const i of out.get(id)) {
      if (back.has(i)) continue;
      const to = edges[i].to;
      layer.set(to, Math.max(layer.get(to), layer.get(id) + 1));
      fwdIn.set(to, fwdIn.get(to) - 1);
      if (fwdIn.get(to) === 0) queue.push(to);
    }
  }

  const layers = [];
  for (const id of ids) (layers[layer.get(id)] ||= []).push(id);
  for (let i = 0; i < layers.length; i++) layers[i] ||= [];

  // 3. order by the parents' mean position.
  const parents = new Map(ids.map((id) => [id, []]));
  edges.forEach((e, i) => {
    if (!back.has(i)) parents.get(e.to).push(e.from);
  });
  const index = new Map();
  const number = () => layers.forEach((ls) => ls.forEach((id, i) => index.set(id, i)));
  number();
  for (let sweep = 0; sweep < 2; sweep++) {
    for (let l = 1; l < layers.length; l++) {
      const score = (id) => {
        const ps = parents.get(id);
        return ps.length ? ps.reduce((s, p) => s + index.get(p), 0) / ps.length : index.get(id);
      };
      layers[l].sort((a, b) => score(a) - score(b));
      number();
    }
  }

  const widest = Math.max(1, ...layers.map((ls) => ls.length));
  const rowWidth = (n) => n * W + (n - 1) * GAP_X;
  const width = PAD * 2 + rowWidth(widest) + (back.size ? LOOP * 1.4 : 0);
  const pos = new Map();
  layers.forEach((ls, l) => {
    const left = PAD + (rowWidth(widest) - rowWidth(ls.length)) / 2;
    ls.forEach((id, i) => pos.set(id, { x: left + i * (W + GAP_X), y: PAD + l * (H + GAP_Y), layer: l }));
  });
  const height = PAD * 2 + layers.length * H + Math.max(0, layers.length - 1) * GAP_Y;
  return { layers, pos, back, edges, width, height };
}

/** The label of an edge: its condition, `default`, or `on failure` / `on timeout`. */
function edgeLabel(e) {
  if (isAlt(e)) return `on ${e.on}`;
  if (e.condition) return e.condition;
  if (e.default) return 'default';
  return '';
}

function clip(text, max) {
  const s = String(text ?? '');
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function shape(type, x, y, cls) {
  switch (type) {
    case 'gateway':
      return svg('polygon', { class: cls, points: `${x + W / 2},${y - 4} ${x + W + 6},${y + H / 2} ${x + W / 2},${y + H + 4} ${x - 6},${y + H / 2}` });
    case 'timer':
      return svg('ellipse', { class: cls, cx: x + W / 2, cy: y + H / 2, rx: W / 2, ry: H / 2 });
    case 'human':
      return svg('rect', { class: cls, x, y, width: W, height: H, rx: H / 2 });
    default:
      return svg('rect', { class: cls, x, y, width: W, height: H, rx: 5 });
  }
}

/**
 * Draws the diagram. `graph`: `{ nodes, edges, initial_step?, states? }`. Returns a `<figure>`
 * with the SVG and a legend; each node is a `<g data-step=ID data-state=STATE>`.
 */
export function diagram(graph, { title = 'Workflow diagram' } = {}) {
  const states = graph.states || null;
  const { pos, back, edges, width, height } = layout(graph);
  const root = svg('svg', {
    class: 'diagram',
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: 'img',
    'aria-label': title,
  });
  root.append(
    svg('defs', {},
      svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
        svg('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' }))),
  );

  const labels = [];
  edges.forEach((e, i) => {
    const a = pos.get(e.from);
    const b = pos.get(e.to);
    let d;
    let lx;
    let ly;
    if (back.has(i) || a.layer >= b.layer) {
      // a loop (or a sideways edge): out of the right side, around, into the right side
      const sx = a.x + W;
      const sy = a.y + H / 2;
      const tx = b.x + W;
      const ty = b.y + H / 2;
      // swing out beyond every step of the layers it passes
      let right = Math.max(sx, tx);
      for (const [, q] of pos) if (q.layer >= Math.min(a.layer, b.layer) && q.layer <= Math.max(a.layer, b.layer)) right = Math.max(right, q.x + W);
      const swing = right + LOOP * 0.8;
      d = `M${sx},${sy} C${swing},${sy} ${swing},${ty} ${tx + 2},${ty}`;
      lx = swing - 6;
      ly = (sy + ty) / 2;
    } else {
      const sx = a.x + W / 2;
      const sy = a.y + H + (graphType(graph, e.from) === 'gateway' ? 4 : 0);
      const tx = b.x + W / 2;
      const ty = b.y - (graphType(graph, e.to) === 'gateway' ? 6 : 2);
      const my = (sy + ty) / 2;
      d = `M${sx},${sy} C${sx},${my} ${tx},${my} ${tx},${ty}`;
      // the label sits at 70% of the curve, near its target, so a gateway's labels part
      const t = 0.7;
      const u = 1 - t;
      lx = u * u * u * sx + 3 * u * u * t * sx + 3 * u * t * t * tx + t * t * t * tx;
      ly = u * u * u * sy + 3 * u * u * t * my + 3 * u * t * t * my + t * t * t * ty;
    }
    const cls = ['edge'];
    if (isAlt(e)) cls.push('edge-alt');
    if (back.has(i)) cls.push('edge-back');
    const path = svg('path', { class: cls.join(' '), d, 'marker-end': 'url(#arrow)' });
    const label = edgeLabel(e);
    if (label) path.append(svg('title', { text: label }));
    root.append(path);
    if (label) labels.push(svg('text', { class: 'edge-label', x: lx, y: ly, 'text-anchor': 'middle', 'dominant-baseline': 'middle', text: clip(label, 26) }));
  });
  root.append(...labels);

  for (const node of graph.nodes) {
    const p = pos.get(node.id);
    const state = states ? String(states[node.id] || 'pending').toLowerCase() : null;
    const cls = `node-shape${state ? ` st-${state.replace(/[^a-z_]/g, '')}` : ''}`;
    // a human step's label is `name: title`; the name is on the first line already
    const raw = String(node.label || '');
    const label = raw.startsWith(`${node.id}:`) ? raw.slice(node.id.length + 1).trim() : raw;
    const sub = state ? node.type : label && label !== node.id ? label : node.type;
    const g = svg('g', { class: `node t-${node.type}`, dataset: { step: node.id, state: state || '' } },
      svg('title', { text: `${node.id} (${node.type})${state ? `: ${state}` : ''}${node.label && node.label !== node.id ? `\n${node.label}` : ''}` }),
      shape(node.type, p.x, p.y, cls),
      svg('text', { class: 'node-name', x: p.x + W / 2, y: p.y + H / 2 - 6, 'text-anchor': 'middle', 'dominant-baseline': 'middle', text: clip(node.id, 20) }),
      svg('text', { class: 'node-sub', x: p.x + W / 2, y: p.y + H / 2 + 10, 'text-anchor': 'middle', 'dominant-baseline': 'middle', text: clip(state ? `${sub} · ${state.replace('_', ' ')}` : sub, 26) }),
    );
    root.append(g);
  }

  const present = states ? STATES.filter((s) => s === 'pending' || Object.values(states).some((v) => String(v).toLowerCase() === s)) : [];
  const legend = h('ul', { class: 'legend', 'aria-label': 'Legend' },
    ['machine', 'human', 'gateway', 'timer'].map((t) => h('li', {}, h('span', { class: `key shape-${t}`, 'aria-hidden': 'true' }), t)),
    present.map((s) => h('li', {}, h('span', { class: `key st-${s}`, 'aria-hidden': 'true' }), s.replace('_', ' '))),
    h('li', {}, h('span', { class: 'key line-alt', 'aria-hidden': 'true' }), 'on failure / timeout'),
  );
  return h('figure', { class: 'graph' }, h('div', { class: 'graph-scroll' }, root), h('figcaption', {}, legend));
}

function graphType(graph, id) {
  const n = graph.nodes.find((x) => x.id === id);
  return n ? n.type : '';
}
