import type { Person } from '../db/users.js';
import { SignatureError } from '../errors.js';
import type { DispositionDecision } from '../quality/decision.js';
import type { InspectionDocument } from './inspection-document.js';

/** Who signed a disposition, and how they proved it was them (`token`: an integration account's API token). */
export interface Signer { username: string; name: string; method: 'password' | 'token' }

export interface DisposeDeps {
  findPerson(username: string): Promise<Person | null>;
  passwordMatches(password: string, stored: string): Promise<boolean>;
  /** Records the disposition, its final verdict message and its audit entry; throws NotFoundError / ConflictError. */
  recordDisposition(inspectionId: string, signer: Signer, decision: DispositionDecision, reason: string): Promise<InspectionDocument>;
}

export interface DispositionRequest { inspectionId: string; username: string; decision: DispositionDecision; reason: string; password?: string }

/**
 * A reviewer's decision on a flagged part, signed (21 CFR 11.200): an account with a password signs
 * by entering it again; accounts without one (API integrations) sign with their token alone, and
 * the record says so. The signed decision makes the verdict final and is sent to the MES.
 */
export async function disposeInspection(deps: DisposeDeps, r: DispositionRequest): Promise<InspectionDocument> {
  return deps.recordDisposition(r.inspectionId, await signer(deps, r.username, r.password), r.decision, r.reason);
}

async function signer(deps: DisposeDeps, username: string, password: string | undefined): Promise<Signer> {
  const person = await deps.findPerson(username);
  if (!person || person.disabled) throw new SignatureError('forbidden', `no user "${username}" who may sign`);
  if (person.passwordHash === null) {
    if (!person.integration) {
      throw new SignatureError('invalid_signature', 'this account has no password and is not marked as an integration: set a password (visq user passwd) to sign, or mark the account an integration');
    }
    if (password !== undefined) throw new SignatureError('invalid_signature', 'this account has no password; sign with its API token alone');
    return { username, name: person.name, method: 'token' };
  }
  if (password === undefined) throw new SignatureError('invalid_signature', 'sign the disposition: enter your password');
  if (!(await deps.passwordMatches(password, person.passwordHash))) throw new SignatureError('invalid_signature', 'the password is not correct; the disposition was not signed');
  return { username, name: person.name, method: 'password' };
}
