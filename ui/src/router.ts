// Hash routing: the server serves one index.html at "/", so every view lives after "#".
// A route is "#/<path>?<query>"; the query part carries optional view state (e.g. a plan's operation).

import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { name: 'login' }
  | { name: 'queue' }
  | { name: 'inspection'; id: string }
  | { name: 'lots' }
  | { name: 'lot'; lotId: string }
  | { name: 'plans' }
  | { name: 'plan'; partNumber: string; operation: string | null; version: number | null }
  | { name: 'audit' }
  | { name: 'accounts' }
  | { name: 'notFound'; path: string };

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#/, '') || '/queue';
  const qIndex = raw.indexOf('?');
  const path = qIndex >= 0 ? raw.slice(0, qIndex) : raw;
  const query = new URLSearchParams(qIndex >= 0 ? raw.slice(qIndex + 1) : '');
  const parts = path.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  const [head, arg, ...rest] = parts;
  // Part numbers may contain "/" (the plan schema allows it): the rest of the path is the argument.
  const tail = [arg, ...rest].filter((p): p is string => p !== undefined).join('/');
  switch (head) {
    case undefined:
    case 'queue':
      return { name: 'queue' };
    case 'login':
      return { name: 'login' };
    case 'inspections':
      return arg ? { name: 'inspection', id: arg } : { name: 'queue' };
    case 'lots':
      return tail ? { name: 'lot', lotId: tail } : { name: 'lots' };
    case 'plans': {
      if (!tail) return { name: 'plans' };
      const v = Number(query.get('version'));
      return {
        name: 'plan',
        partNumber: tail,
        operation: query.get('operation') || null,
        version: Number.isInteger(v) && v > 0 ? v : null,
      };
    }
    case 'audit':
      return { name: 'audit' };
    case 'accounts':
      return { name: 'accounts' };
    default:
      return { name: 'notFound', path };
  }
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseHash(location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

const seg = (s: string) => s.split('/').map(encodeURIComponent).join('/');

/** Hrefs for links, so every view builds them the same way. */
export const href = {
  queue: () => '#/queue',
  inspection: (id: string) => `#/inspections/${encodeURIComponent(id)}`,
  lots: () => '#/lots',
  lot: (lotId: string) => `#/lots/${seg(lotId)}`,
  plans: () => '#/plans',
  plan: (partNumber: string, operation?: string | null, version?: number | null) => {
    const q = new URLSearchParams();
    if (operation) q.set('operation', operation);
    if (version) q.set('version', String(version));
    const s = q.toString();
    return `#/plans/${seg(partNumber)}${s ? `?${s}` : ''}`;
  },
  audit: () => '#/audit',
  accounts: () => '#/accounts',
};

export function navigate(to: string): void {
  location.hash = to;
}
