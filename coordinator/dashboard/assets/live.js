// Live updates: one Server-Sent Events stream (`/api/v1/events`) for the whole page. Views
// subscribe with a callback and get each event's JSON; they re-read what they show (debounced),
// so a missed or reordered event never leaves a stale page for long. EventSource cannot send
// headers, so the token travels as `access_token` (the API accepts it on this endpoint only).
// The browser reconnects by itself; the header's dot shows whether the stream is up.

import { token } from './api.js';

// The server sends every event as an unnamed message with its kind in the data's `type`, so
// `onmessage` gets them all, whatever kinds the engine adds: no list of names to keep here.

const listeners = new Set();
let source = null;
let onState = () => {};

/** Opens the stream (once per sign-in); `stateChanged(state)` gets 'live' | 'connecting' | 'off'. */
export function connect(stateChanged) {
  disconnect();
  onState = stateChanged || (() => {});
  const t = token();
  if (!t || typeof EventSource === 'undefined') {
    onState('off');
    return;
  }
  onState('connecting');
  source = new EventSource(`/api/v1/events?access_token=${encodeURIComponent(t)}`);
  let opened = false;
  source.onopen = () => {
    onState('live');
    // The stream has no replay: after a reconnection, every view re-reads what it shows.
    if (opened) for (const fn of listeners) fn(null);
    opened = true;
  };
  source.onerror = () => onState(source && source.readyState === EventSource.CLOSED ? 'off' : 'connecting');
  const dispatch = (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    for (const fn of listeners) {
      try {
        fn(event);
      } catch (err) {
        console.error('live listener failed', err);
      }
    }
  };
  source.onmessage = dispatch;
}

/** Closes the stream (at sign-out). */
export function disconnect() {
  if (source) source.close();
  source = null;
  onState('off');
}

/**
 * Calls `fn` at most once per `delay` ms after events for which `filter(event)` holds, and
 * after the stream reconnects (events may have been missed meanwhile).
 * Returns the unsubscribe function (views return it as their cleanup).
 */
export function onEvents(filter, fn, delay = 300) {
  let timer = null;
  // `null` is a resync (the stream reconnected): it passes every filter
  const listener = (event) => {
    if ((event !== null && !filter(event)) || timer) return;
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, delay);
  };
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
    if (timer) clearTimeout(timer);
  };
}
