// The shell: finds out who is signed in, routes by the URL hash, and draws the top bar.

import { useEffect, useState } from 'preact/hooks';
import { errorMessage, fetchSession, goToLogin, onUnauthorized, signOut, takeReturnTo } from './api';
import { ErrorText, Loading } from './components/common';
import { href, navigate, useRoute, type Route } from './router';
import { canEditPlans, SessionContext } from './session';
import type { Session } from './types';
import { AccountsView } from './views/Accounts';
import { AuditView } from './views/Audit';
import { InspectionView } from './views/Inspection';
import { LoginView } from './views/Login';
import { LotsView } from './views/Lots';
import { LotView } from './views/Lot';
import { PlansView } from './views/Plans';
import { PlanView } from './views/Plan';
import { QueueView } from './views/Queue';

export function App() {
  const route = useRoute();
  // undefined: still asking the server; null: nobody signed in.
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [startError, setStartError] = useState<string | null>(null);

  useEffect(() => {
    fetchSession()
      .then(setSession)
      .catch((err: unknown) => {
        setStartError(errorMessage(err));
        setSession(null);
      });
    return onUnauthorized(() => setSession(null));
  }, []);

  // Nobody signed in: every page but the sign-in page sends the user there (and back afterwards).
  useEffect(() => {
    if (session === null && route.name !== 'login') goToLogin();
  }, [session, route.name]);

  useEffect(() => {
    document.title = `visq — ${titleOf(route)}`;
  }, [route]);

  if (session === undefined) return <main class="page"><Loading /></main>;

  if (route.name === 'login' || !session) {
    return (
      <main class="page page-login">
        <ErrorText error={startError} />
        <LoginView
          onSignedIn={(s) => {
            setSession(s);
            setStartError(null);
            navigate(takeReturnTo());
          }}
          signedInAs={session}
        />
      </main>
    );
  }

  return (
    <SessionContext.Provider value={session}>
      <TopBar route={route} session={session} onSignedOut={() => setSession(null)} />
      <main class="page">{renderRoute(route, session)}</main>
    </SessionContext.Provider>
  );
}

function renderRoute(route: Route, session: Session | null) {
  switch (route.name) {
    case 'queue':
      return <QueueView />;
    case 'inspection':
      return <InspectionView key={route.id} id={route.id} />;
    case 'lots':
      return <LotsView />;
    case 'lot':
      return <LotView key={route.lotId} lotId={route.lotId} />;
    case 'plans':
      return <PlansView />;
    case 'plan':
      return <PlanView key={`${route.partNumber}|${route.operation ?? ''}`} partNumber={route.partNumber} operation={route.operation} version={route.version} />;
    case 'audit':
      return <AuditView />;
    case 'accounts':
      return session ? <AccountsView role={session.role} me={session.username} /> : null;
    case 'login':
      return null;
    case 'notFound':
      return (
        <p class="error" role="alert">
          No page "{route.path}". <a href={href.queue()}>Go to the review queue</a>.
        </p>
      );
  }
}

function titleOf(route: Route): string {
  switch (route.name) {
    case 'inspection':
      return `inspection ${route.id}`;
    case 'lot':
      return `lot ${route.lotId}`;
    case 'plan':
      return `plan ${route.partNumber}`;
    case 'notFound':
      return 'not found';
    default:
      return route.name;
  }
}

function TopBar(props: { route: Route; session: Session; onSignedOut: () => void }) {
  const { route, session } = props;
  const section = route.name === 'inspection' || route.name === 'queue' ? 'queue' : route.name === 'lot' ? 'lots' : route.name === 'plan' ? 'plans' : route.name;
  const link = (name: string, to: string, label: string) => (
    <a href={to} class={section === name ? 'active' : undefined} aria-current={section === name ? 'page' : undefined}>
      {label}
    </a>
  );
  const staff = canEditPlans(session.role);
  return (
    <header class="topbar">
      <a class="brand" href={href.queue()}>
        visq
      </a>
      <nav aria-label="Main">
        {link('queue', href.queue(), 'Queue')}
        {link('lots', href.lots(), 'Lots')}
        {staff ? link('plans', href.plans(), 'Plans') : null}
        {staff ? link('audit', href.audit(), 'Audit') : null}
        {staff ? link('accounts', href.accounts(), 'Accounts') : null}
      </nav>
      <div class="user">
        <span data-testid="user-name">{session.name}</span>
        <span class="role" data-testid="user-role">
          {session.role}
        </span>
        <button
          type="button"
          class="link-button"
          onClick={async () => {
            try {
              await signOut();
            } catch {
              /* signed out locally either way */
            }
            props.onSignedOut();
            sessionStorage.clear();
            navigate('#/login');
          }}
        >
          Sign out
        </button>
      </div>
    </header>
  );
}
