// The electronic signature for a disposition: the reviewer re-enters their password and gives a
// reason; the meaning of the signature is shown in words (it is stored with the record).

import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { ApiError, errorMessage } from '../api';
import type { Decision } from '../types';

export const MEANING: Record<Decision, string> = {
  accept: 'I accept this part as conforming',
  rework: 'I reject this part for rework',
  scrap: 'I reject this part as scrap',
};

export const DECISION_LABEL: Record<Decision, string> = { accept: 'Accept', rework: 'Rework', scrap: 'Scrap' };

export function SignatureDialog(props: {
  decision: Decision;
  signerName: string;
  onCancel: () => void;
  /** Resolves when the server accepted the signature; rejects with ApiError otherwise. */
  onSubmit: (reason: string, password: string) => Promise<void>;
}) {
  const [reason, setReason] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [reasonError, setReasonError] = useState<string | null>(null);
  const [busy, setBusyState] = useState(false);
  // Esc must not look cancelled while a signature is on its way: the key handler reads this ref.
  const busyRef = useRef(false);
  const setBusy = (b: boolean) => {
    busyRef.current = b;
    setBusyState(b);
  };
  const reasonRef = useRef<HTMLInputElement>(null);
  const passwordRef = useRef<HTMLInputElement>(null);

  // Layout effect: focus and Esc work from the moment the dialog is on screen.
  useLayoutEffect(() => {
    reasonRef.current?.focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation();
        if (!busyRef.current) props.onCancel();
      }
    };
    // Capture: Esc closes the dialog before any view shortcut sees it.
    window.addEventListener('keydown', onKey, true);
    return () => window.removeEventListener('keydown', onKey, true);
  }, []);

  async function submit(e: Event) {
    e.preventDefault();
    if (busy) return;
    if (!reason.trim()) {
      setReasonError('A reason is required.');
      reasonRef.current?.focus();
      return;
    }
    setReasonError(null);
    if (!password) {
      setError('Enter your password to sign.');
      passwordRef.current?.focus();
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await props.onSubmit(reason.trim(), password);
    } catch (err) {
      setPassword('');
      if (err instanceof ApiError && err.code === 'invalid_signature') {
        setError('The password is not correct');
        passwordRef.current?.focus();
      } else {
        setError(errorMessage(err));
      }
      setBusy(false);
    }
  }

  return (
    <div class="backdrop" onClick={(e) => e.target === e.currentTarget && !busy && props.onCancel()}>
      <div class="dialog card" role="dialog" aria-modal="true" aria-labelledby="sig-title" data-testid="signature-dialog">
        <form class="dialog-form" onSubmit={submit} noValidate>
          <h2 id="sig-title">Sign: {DECISION_LABEL[props.decision]}</h2>
          <p class={`meaning meaning-${props.decision}`} data-testid="signature-meaning">
            {MEANING[props.decision]}
          </p>
          <p class="muted">
            Signed by <strong data-testid="signer-name">{props.signerName}</strong>
          </p>
          <label for="sig-reason">Reason</label>
          <input
            id="sig-reason"
            ref={reasonRef}
            required
            maxLength={2000}
            value={reason}
            aria-invalid={reasonError ? true : undefined}
            aria-describedby={reasonError ? 'sig-reason-error' : undefined}
            onInput={(e) => setReason(e.currentTarget.value)}
          />
          {reasonError ? (
            <p class="field-error" id="sig-reason-error">
              {reasonError}
            </p>
          ) : null}
          <label for="sig-password">Password</label>
          <input
            id="sig-password"
            ref={passwordRef}
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
          {error ? (
            <p class="error" role="alert" data-testid="signature-error">
              {error}
            </p>
          ) : null}
          <div class="dialog-actions">
            <button type="button" onClick={props.onCancel} disabled={busy}>
              Cancel
            </button>
            <button type="submit" class={`primary decision-${props.decision}`} disabled={busy}>
              Sign and submit
            </button>
          </div>
          <p class="hint">Enter submits · Esc cancels</p>
        </form>
      </div>
    </div>
  );
}
