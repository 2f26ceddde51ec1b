// The app state store: the URL is the source of truth, and components read it
// through useAppState and change it through navigate.

import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { parseState, serializeState, type AppState } from './url';

type Listener = () => void;

let current: AppState = parseState(window.location.pathname, window.location.search);
const stateListeners = new Set<Listener>();

let reloadCount = 0;
const reloadListeners = new Set<Listener>();

window.addEventListener('popstate', () => {
  current = parseState(window.location.pathname, window.location.search);
  notify(stateListeners);
});

function notify(listeners: Set<Listener>): void {
  for (const listener of listeners) listener();
}

function useSubscription(listeners: Set<Listener>): void {
  const [, setVersion] = useState(0);
  // A layout effect subscribes before the browser can deliver any input event, so a
  // click right after the first paint cannot change the state unnoticed.
  useLayoutEffect(() => {
    const listener = () => setVersion((version) => version + 1);
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }, [listeners]);
}

export function getState(): AppState {
  return current;
}

/** Subscribe the component to the app state; it re-renders on every navigation. */
export function useAppState(): AppState {
  useSubscription(stateListeners);
  return current;
}

/**
 * Change the state and the URL. A new entry goes into the browser history unless
 * `replace` is set, which suits changes made while typing, such as a search box.
 */
export function navigate(change: Partial<AppState> | ((state: AppState) => AppState), replace = false): void {
  const next = typeof change === 'function' ? change(current) : { ...current, ...change };
  const url = serializeState(next);
  if (url !== window.location.pathname + window.location.search) {
    if (replace) window.history.replaceState(null, '', url);
    else window.history.pushState(null, '', url);
  }
  const scrollToTop = next.page !== current.page || next.endpoint !== current.endpoint;
  current = parseState(window.location.pathname, window.location.search);
  notify(stateListeners);
  if (scrollToTop) window.scrollTo(0, 0);
}

/** Build a link target for a state change, for <a href> so that opening in a new tab works. */
export function hrefFor(change: Partial<AppState>): string {
  return serializeState({ ...current, ...change });
}

/**
 * Follow a same-origin link through navigate instead of a page load. Clicks with a
 * modifier key or another button keep the browser's behavior (new tab, new window).
 */
export function followLink(event: MouseEvent, change: Partial<AppState>): void {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
    return;
  }
  event.preventDefault();
  navigate(change);
}

/** Ask every view to fetch its data again now. */
export function requestReload(): void {
  reloadCount += 1;
  notify(reloadListeners);
}

/**
 * Return a counter that grows on every manual reload and every auto-refresh tick,
 * for use as an effect dependency. Ticks pause while the page is hidden. In live
 * mode views with `pushed` data (charts) get no ticks, and the others tick every 5 s.
 */
export function useReloadTick(pushed = false): number {
  useSubscription(reloadListeners);
  useSubscription(stateListeners);
  const { refresh } = current;
  const [ticks, setTicks] = useState(0);
  useEffect(() => {
    if (refresh === 'off' || (pushed && refresh === 'live')) return undefined;
    const intervalMs = (refresh === 'live' ? 5 : refresh) * 1000;
    const timer = window.setInterval(() => {
      if (document.visibilityState === 'visible') setTicks((count) => count + 1);
    }, intervalMs);
    return () => window.clearInterval(timer);
  }, [refresh, pushed]);
  return reloadCount + ticks;
}

/**
 * Local editable state that starts from `source` and is replaced when `source`
 * changes later, as when Back restores another URL. The first effect run is
 * skipped: effects run after paint, and by then the user may have typed already.
 */
export function useFollowingState<T>(source: T, key: string = JSON.stringify(source)): [T, (next: T) => void] {
  const [value, setValue] = useState(source);
  const followedKey = useRef(key);
  useEffect(() => {
    if (followedKey.current === key) return;
    followedKey.current = key;
    setValue(source);
  }, [key]);
  return [value, setValue];
}
