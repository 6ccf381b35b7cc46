// Small shared pieces: verdict badge, error/loading lines, and a data-loading hook.

import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { errorMessage, get } from '../api';
import type { Verdict } from '../types';

export function VerdictBadge(props: { verdict: Verdict | null | undefined; testId?: string; large?: boolean }) {
  const v = props.verdict;
  const cls = `badge ${v ? `badge-${v.toLowerCase()}` : 'badge-none'}${props.large ? ' badge-large' : ''}`;
  return (
    <span class={cls} data-testid={props.testId}>
      {v ?? 'pending'}
    </span>
  );
}

export function ErrorText(props: { error: unknown; testId?: string }) {
  if (!props.error) return null;
  return (
    <p class="error" role="alert" data-testid={props.testId ?? 'error'}>
      {typeof props.error === 'string' ? props.error : errorMessage(props.error)}
    </p>
  );
}

export function Loading(props: { what?: string }) {
  return <p class="muted">Loading{props.what ? ` ${props.what}` : ''}…</p>;
}

export function Panel(props: { title: ComponentChildren; children: ComponentChildren; class?: string; testId?: string; actions?: ComponentChildren }) {
  return (
    <section class={`panel ${props.class ?? ''}`} data-testid={props.testId}>
      <header class="panel-head">
        <h2>{props.title}</h2>
        {props.actions ? <div class="panel-actions">{props.actions}</div> : null}
      </header>
      <div class="panel-body">{props.children}</div>
    </section>
  );
}

export interface Loaded<T> {
  data: T | null;
  error: unknown;
  loading: boolean;
  reload: () => void;
  setData: (d: T) => void;
}

/**
 * GETs `path` whenever it changes (null: nothing to load). A late answer for an old path is dropped,
 * so fast navigation never shows the previous item's data.
 */
export function useGet<T>(path: string | null): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(path !== null);
  const [tick, setTick] = useState(0);
  const current = useRef(0);

  useEffect(() => {
    if (path === null) {
      setData(null);
      setLoading(false);
      return;
    }
    const ticket = ++current.current;
    const ctl = new AbortController();
    setLoading(true);
    setError(null);
    get<T>(path, { signal: ctl.signal })
      .then((d) => {
        if (ticket === current.current) setData(d);
      })
      .catch((err: unknown) => {
        if ((err as Error)?.name === 'AbortError') return;
        if (ticket === current.current) {
          setError(err);
          setData(null);
        }
      })
      .finally(() => {
        if (ticket === current.current) setLoading(false);
      });
    return () => ctl.abort();
  }, [path, tick]);

  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload, setData };
}

/** True when a key event comes from a field where letters are typed (shortcuts stay off there). */
export function isTyping(e: KeyboardEvent): boolean {
  const t = e.target as HTMLElement | null;
  if (!t) return false;
  const tag = t.tagName;
  // A focused checkbox or button (e.g. an overlay toggle just clicked) takes no letters.
  if (tag === 'INPUT') return !NON_TEXT_INPUTS.has((t as HTMLInputElement).type);
  return tag === 'TEXTAREA' || tag === 'SELECT' || t.isContentEditable;
}

const NON_TEXT_INPUTS = new Set(['checkbox', 'radio', 'button', 'submit', 'reset', 'range', 'color', 'file', 'image']);
