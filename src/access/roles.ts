/** Who may do what (CONTRACT.md): stations only post images; people act as their role allows. */
export type Role = 'reviewer' | 'engineer' | 'admin';
export const roles: readonly Role[] = ['reviewer', 'engineer', 'admin'];

export type Principal =
  | { kind: 'station'; stationId: string; site: string; line: string }
  | { kind: 'user'; username: string; role: Role };

const rank: Record<Role, number> = { reviewer: 0, engineer: 1, admin: 2 };

/** Engineers can do what reviewers can, admins what engineers can. */
export function hasRole(principal: Principal, needed: Role): boolean {
  return principal.kind === 'user' && rank[principal.role] >= rank[needed];
}
