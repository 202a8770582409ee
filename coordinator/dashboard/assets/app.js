// The dashboard's entry point: signs in, draws the header, and swaps views on hash changes.
// Each view is a module whose default export renders into <main> and may return a cleanup
// function (to drop its live-update subscriptions) that runs when the user leaves the page.

import { api, setToken, token } from './api.js';
import { h, replace } from './dom.js';
import { errorText, notice } from './format.js';
import { connect, disconnect } from './live.js';
import { current, match, route } from './router.js';
import signIn from './views/signin.js';
import home from './views/home.js';
import definitions from './views/definitions.js';
import definition from './views/definition.js';
import start from './views/start.js';
import instances from './views/instances.js';
import instance from './views/instance.js';
import inbox from './views/inbox.js';
import task from './views/task.js';
import dlq from './views/dlq.js';
import schedules from './views/schedules.js';
import messages from './views/messages.js';

route('/', home);
route('/definitions', definitions);
route('/definitions/:name', definition);
route('/start', start);
route('/instances', instances);
route('/instances/:id', instance);
route('/inbox', inbox);
route('/tasks/:instance/:step', task);
route('/dlq', dlq);
route('/schedules', schedules);
route('/messages', messages);

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const liveDot = document.getElementById('live');
let me = null;
let cleanup = null;
let renderId = 0;

const LIVE_TEXT = { live: 'Live', connecting: 'Reconnecting…', off: 'Offline' };
function showLive(state) {
  liveDot.dataset.state = state;
  liveDot.textContent = LIVE_TEXT[state] || state;
}

/** Asks the API who the stored token belongs to; null when there is none or it is refused. */
async function loadMe() {
  if (!token()) return null;
  try {
    return await api('/me');
  } catch (err) {
    if (err.status === 401) return null;
    throw err;
  }
}

function showChrome(user) {
  nav.hidden = !user;
  who.hidden = !user;
  if (!user) return;
  document.getElementById('user').textContent = user.tenant ? `${user.user} · ${user.tenant}` : user.user;
  nav.querySelector('[data-nav="dlq"]').hidden = !user.admin;
  nav.querySelector('[data-nav="schedules"]').hidden = !user.admin;
}

function highlight(pattern) {
  const section = pattern === '/' ? 'home' : pattern.split('/')[1].replace(/^tasks$/, 'inbox').replace(/^start$/, 'definitions');
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.nav === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function render() {
  const id = ++renderId;
  if (cleanup) {
    try {
      cleanup();
    } catch (err) {
      console.error(err);
    }
    cleanup = null;
  }
  if (!me) {
    showChrome(null);
    replace(main);
    signIn(main, { onSignedIn: signedIn });
    return;
  }
  const { path, query } = current();
  const found = match(path);
  if (!found) {
    replace(main, h('h1', { text: 'Not found' }), h('p', {}, 'No page here. ', h('a', { href: '#/', text: 'Go home' })));
    return;
  }
  highlight(found.pattern);
  replace(main, h('p', { class: 'loading', text: 'Loading…' }));
  try {
    const done = await found.view(main, { params: found.params, query, me });
    if (id !== renderId) {
      if (typeof done === 'function') done();
      return;
    }
    cleanup = typeof done === 'function' ? done : null;
    const heading = main.querySelector('h1');
    document.title = heading ? `${heading.textContent} · Weir` : 'Weir';
  } catch (err) {
    if (id !== renderId || err.status === 401) return;
    replace(main, h('h1', { text: 'Something went wrong' }), notice('error', errorText(err)));
  }
}

async function signedIn(user) {
  me = user;
  showChrome(me);
  connect(showLive);
  await render();
  main.focus();
}

/** Forgets the token. A user who signs out starts again at home; one whose token was
 * refused (`expired`) stays on the page, to come back to it after signing in again. */
function signOut(expired = false) {
  setToken(null);
  me = null;
  disconnect();
  if (!expired && location.hash && location.hash !== '#/') {
    location.hash = '#/'; // the hashchange renders the sign-in form
    return;
  }
  render();
}

window.addEventListener('hashchange', () => {
  render();
  main.focus({ preventScroll: true });
});
window.addEventListener('weir:signed-out', () => {
  if (me) signOut(true);
});
document.getElementById('signout').addEventListener('click', () => signOut());

(async () => {
  try {
    me = await loadMe();
  } catch (err) {
    me = null;
    replace(main, notice('error', errorText(err)));
  }
  if (me) await signedIn(me);
  else render();
})();
