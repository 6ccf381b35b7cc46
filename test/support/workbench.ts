import { until } from './services.js';

/** A signed-in workbench session as a browser holds it: the cookie and the CSRF token. */
export class SessionClient {
  private constructor(readonly baseUrl: string, readonly cookie: string, readonly setCookie: string, readonly me: any) {}

  static async signIn(baseUrl: string, username: string, password: string): Promise<SessionClient> {
    const res = await fetch(`${baseUrl}/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });
    if (res.status !== 200) throw new Error(`sign-in of ${username} answered ${res.status}: ${await res.text()}`);
    const setCookie = res.headers.getSetCookie()[0]!;
    return new SessionClient(baseUrl, setCookie.split(';')[0]!, setCookie, await res.json());
  }

  get(url: string) {
    return this.send('GET', url);
  }

  /** `csrf: null` leaves the CSRF header out. */
  async send(method: string, url: string, body?: unknown, o: { csrf?: string | null } = {}): Promise<{ status: number; body: any }> {
    const csrf = o.csrf === undefined ? this.me.csrfToken : o.csrf;
    const res = await fetch(`${this.baseUrl}${url}`, {
      method,
      headers: { cookie: this.cookie, ...(csrf ? { 'x-csrf-token': csrf } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let parsed: any = text;
    try { parsed = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, body: parsed };
  }
}

/** A server-sent event stream read the way EventSource does. */
export class SseStream {
  readonly events: { event: string; data: any }[] = [];
  private constructor(private readonly abort: AbortController) {}

  static async open(url: string, cookie: string): Promise<SseStream> {
    const abort = new AbortController();
    const res = await fetch(url, { headers: { cookie, accept: 'text/event-stream' }, signal: abort.signal });
    if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
    const stream = new SseStream(abort);
    void (async () => {
      let buffer = '';
      const decoder = new TextDecoder();
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const fields = Object.fromEntries(block.split('\n').filter((l) => !l.startsWith(':') && l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
            if (fields.data !== undefined) stream.events.push({ event: fields.event ?? 'message', data: JSON.parse(fields.data) });
          }
        }
      } catch { /* aborted */ }
    })();
    return stream;
  }

  async waitFor(match: (e: { event: string; data: any }) => boolean, timeoutMs = 30_000): Promise<void> {
    await until(() => this.events.some(match), 'a matching server-sent event', timeoutMs);
  }

  close(): void {
    this.abort.abort();
  }
}
