// Live review-queue updates over Server-Sent Events (same-origin, the session cookie authenticates).

import { useEffect, useRef, useState } from 'preact/hooks';
import { fetchSession, sessionExpired } from './api';

export type LiveStatus = 'connecting' | 'live' | 'reconnecting';

export interface ReviewEvent {
  id: string;
  change: 'flagged' | 'disposed';
}

/**
 * Calls `onChange` (debounced by `debounceMs`, so a burst of events costs one re-fetch) for each
 * `review` event. The browser reconnects by itself after a network error; when it gives up (the
 * server answered with an error status, e.g. the session expired) we check the session and retry.
 */
export function useReviewEvents(onChange: (events: ReviewEvent[]) => void, debounceMs = 300): LiveStatus {
  const [status, setStatus] = useState<LiveStatus>('connecting');
  const callback = useRef(onChange);
  callback.current = onChange;

  useEffect(() => {
    if (typeof EventSource === 'undefined') {
      setStatus('reconnecting');
      return;
    }
    let source: EventSource | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let retry: ReturnType<typeof setTimeout> | undefined;
    let pending: ReviewEvent[] = [];
    let closed = false;

    const flush = () => {
      const batch = pending;
      pending = [];
      timer = undefined;
      callback.current(batch);
    };

    const open = () => {
      if (closed) return;
      source = new EventSource('/v1/events');
      source.onopen = () => {
        setStatus('live');
        // Something may have changed while we were away: re-fetch once on every (re)connect.
        pending.push({ id: '', change: 'flagged' });
        if (!timer) timer = setTimeout(flush, debounceMs);
      };
      source.addEventListener('review', (ev) => {
        try {
          const data = JSON.parse((ev as MessageEvent<string>).data) as ReviewEvent;
          pending.push(data);
        } catch {
          pending.push({ id: '', change: 'flagged' });
        }
        if (!timer) timer = setTimeout(flush, debounceMs);
      });
      source.onerror = () => {
        setStatus('reconnecting');
        if (source && source.readyState === EventSource.CLOSED) {
          source = null;
          // Closed for good: was it the session? If so go sign in, else try again shortly.
          fetchSession()
            .then((s) => {
              if (!s) sessionExpired();
              else if (!closed) retry = setTimeout(open, 3000);
            })
            .catch(() => {
              if (!closed) retry = setTimeout(open, 5000);
            });
        }
      };
    };
    open();

    return () => {
      closed = true;
      if (timer) clearTimeout(timer);
      if (retry) clearTimeout(retry);
      source?.close();
    };
  }, [debounceMs]);

  return status;
}
