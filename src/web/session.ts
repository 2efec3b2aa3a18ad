// The API key of this tab. Kept in sessionStorage: never in a URL, a cookie or the page's HTML, gone when the tab
// closes or the person signs out. README "Dashboard" says why a bearer key rather than a session cookie.
const KEY = "berth.apiKey";

export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null; // storage disabled: the person signs in again on reload
  }
}

export function storeKey(key: string): void {
  try {
    sessionStorage.setItem(KEY, key);
  } catch {
    // Storage disabled: the key lives in memory only, for this page.
  }
}

export function forgetKey(): void {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // Nothing was stored.
  }
}
