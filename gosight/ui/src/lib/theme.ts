// Light and dark theme. Without a stored choice the theme follows the system's
// prefers-color-scheme; a toggle stores the choice in localStorage.

import { useEffect, useState } from 'preact/hooks';

export type Theme = 'light' | 'dark';

const STORAGE_KEY = 'gosight.theme';
const darkQuery = window.matchMedia('(prefers-color-scheme: dark)');
const listeners = new Set<(theme: Theme) => void>();

function storedTheme(): Theme | null {
  try {
    const value = window.localStorage.getItem(STORAGE_KEY);
    return value === 'light' || value === 'dark' ? value : null;
  } catch {
    // Storage can be disabled by privacy settings; the system setting still applies.
    return null;
  }
}

function systemTheme(): Theme {
  return darkQuery.matches ? 'dark' : 'light';
}

export function currentTheme(): Theme {
  return storedTheme() ?? systemTheme();
}

function apply(theme: Theme): void {
  document.documentElement.dataset.theme = theme;
  document.documentElement.style.colorScheme = theme;
  for (const listener of listeners) listener(theme);
}

/** Apply the theme at start-up and follow system changes while no choice is stored. */
export function initTheme(): void {
  apply(currentTheme());
  darkQuery.addEventListener('change', () => {
    if (storedTheme() === null) apply(systemTheme());
  });
}

/**
 * Switch to the other theme and remember it. Choosing the theme that the system
 * prefers forgets the stored choice, so the app follows the system again from then on.
 */
export function toggleTheme(): void {
  // The applied theme, not the stored one, because storage may be unavailable.
  const next: Theme = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
  try {
    if (next === systemTheme()) window.localStorage.removeItem(STORAGE_KEY);
    else window.localStorage.setItem(STORAGE_KEY, next);
  } catch {
    // Without storage the choice lasts until the page is reloaded.
  }
  apply(next);
}

export function onThemeChange(listener: (theme: Theme) => void): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

export function useTheme(): Theme {
  const [theme, setTheme] = useState<Theme>(document.documentElement.dataset.theme === 'dark' ? 'dark' : 'light');
  useEffect(() => onThemeChange(setTheme), []);
  return theme;
}
