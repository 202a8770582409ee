// Sign in: the user pastes an API token; it is checked with `/me` and kept in this tab's
// sessionStorage (gone when the tab closes, never sent to another origin).

import { api, setToken } from '../api.js';
import { h } from '../dom.js';
import { errorText, notice } from '../format.js';

export default function signIn(main, { onSignedIn }) {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'current-password', required: true, spellcheck: 'false' });
  const status = h('div', { 'aria-live': 'polite' });
  const button = h('button', { type: 'submit', text: 'Sign in' });
  const form = h('form', { class: 'card signin', novalidate: true },
    h('h1', { text: 'Sign in to Weir' }),
    h('p', { class: 'muted', text: 'Paste an API token from the server\'s auth file (ask your Weir operator).' }),
    h('div', { class: 'field' }, h('label', { for: 'token', text: 'API token' }), input),
    status,
    h('div', { class: 'form-actions' }, button));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) {
      status.replaceChildren(notice('error', 'Enter a token.'));
      input.focus();
      return;
    }
    button.disabled = true;
    status.replaceChildren(h('p', { class: 'muted', text: 'Checking…' }));
    try {
      const me = await api('/me', { token: value });
      setToken(value);
      await onSignedIn(me);
    } catch (err) {
      status.replaceChildren(notice('error', err.status === 401 ? 'This token is not valid.' : errorText(err)));
      button.disabled = false;
      input.focus();
    }
  });
  main.append(form);
  input.focus();
}
