// The signed-in user, shared with every view (role decides what is offered; name signs dispositions).

import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Role, Session } from './types';

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session | null {
  return useContext(SessionContext);
}

/** Engineers and admins maintain plans and read the audit trail. */
export const canEditPlans = (role: Role | undefined) => role === 'engineer' || role === 'admin';
