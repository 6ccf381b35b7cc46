// The one place that talks to the server: CSRF header on every non-GET request, JSON in and out,
// the server's error envelope turned into ApiError, and any 401 sends the user to the sign-in page
// (remembering where they were so they come back after signing in).

import type { Session } from './types';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

let csrfToken: string | null = null;

/** Set from the session response; sent as X-CSRF-Token on every state-changing request. */
export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

const RETURN_KEY = 'visq.returnTo';

/** Where to go back after signing in (a hash route), cleared once read. */
export function takeReturnTo(): string {
  const to = sessionStorage.getItem(RETURN_KEY);
  sessionStorage.removeItem(RETURN_KEY);
  return to && to.startsWith('#/') && !to.startsWith('#/login') ? to : '#/queue';
}

/** Listeners told when the server says the session is gone (so the app drops its user). */
const unauthorizedListeners = new Set<() => void>();
export function onUnauthorized(fn: () => void): () => void {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}

export function goToLogin(): void {
  const here = location.hash;
  if (here.startsWith('#/login')) return;
  if (here.startsWith('#/')) sessionStorage.setItem(RETURN_KEY, here);
  location.hash = '#/login';
}

/** The server no longer knows us: drop the user and go sign in. */
export function sessionExpired(): void {
  setCsrfToken(null);
  for (const fn of unauthorizedListeners) fn();
  goToLogin();
}

export interface RequestOptions {
  /** Don't treat a 401 as "session expired" (the sign-in call itself, the start-up probe). */
  allow401?: boolean;
  signal?: AbortSignal;
}

async function parseError(res: Response): Promise<ApiError> {
  let code = `http_${res.status}`;
  let message = res.statusText || `HTTP ${res.status}`;
  try {
    const text = await res.text();
    try {
      const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
      if (body.error?.code) code = body.error.code;
      if (body.error?.message) message = body.error.message;
    } catch {
      if (text && text.length < 300) message = text;
    }
  } catch {
    /* the body could not be read: keep the status line */
  }
  return new ApiError(res.status, code, message);
}

export async function request<T>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') {
    headers['Content-Type'] = 'application/json';
    if (csrfToken) headers['X-CSRF-Token'] = csrfToken;
  }
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      signal: opts.signal,
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, 'network', 'The server cannot be reached. Check the connection and try again.');
  }
  if (res.status === 401 && !opts.allow401) {
    sessionExpired();
    throw await parseError(res);
  }
  if (!res.ok) throw await parseError(res);
  if (res.status === 204) return undefined as T;
  const type = res.headers.get('Content-Type') ?? '';
  if (!type.includes('json')) return (await res.text()) as unknown as T;
  return (await res.json()) as T;
}

export const get = <T>(path: string, opts?: RequestOptions) => request<T>('GET', path, undefined, opts);
export const post = <T>(path: string, body: unknown, opts?: RequestOptions) => request<T>('POST', path, body, opts);
export const put = <T>(path: string, body: unknown, opts?: RequestOptions) => request<T>('PUT', path, body, opts);
export const del = <T>(path: string, opts?: RequestOptions) => request<T>('DELETE', path, undefined, opts);
export const patch = <T>(path: string, body: unknown, opts?: RequestOptions) => request<T>('PATCH', path, body, opts);

/** Builds a query string from the defined, non-empty values. */
export function qs(params: Record<string, string | number | null | undefined>): string {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    sp.set(k, String(v));
  }
  const s = sp.toString();
  return s ? `?${s}` : '';
}

export const enc = encodeURIComponent;

/** URL of a stored image or overlay (served same-origin with the session cookie). */
export const imageUrl = (sha256: string) => `/v1/images/${enc(sha256)}`;

// ---- session ------------------------------------------------------------------------------

export async function fetchSession(): Promise<Session | null> {
  try {
    const s = await get<Session>('/v1/session', { allow401: true });
    setCsrfToken(s.csrfToken);
    return s;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

export async function signIn(username: string, password: string): Promise<Session> {
  const s = await post<Session>('/v1/session', { username, password }, { allow401: true });
  setCsrfToken(s.csrfToken);
  return s;
}

export async function signOut(): Promise<void> {
  try {
    await del<void>('/v1/session', { allow401: true });
  } finally {
    setCsrfToken(null);
  }
}

/** A message fit to show a person for any thrown value. */
export function errorMessage(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
