import express, { Router } from 'express';
import { z } from 'zod';
import { hashPassword, passwordProblem } from '../access/passwords.js';
import { roles } from '../access/roles.js';
import type { Database } from '../db/database.js';
import { addStation, listStations, rotateStationKey, setStationDisabled } from '../db/stations.js';
import { addUser, issueToken, listUsers, revokeToken, setIntegration, setRole, setUserDisabled } from '../db/users.js';
import { InvalidInputError } from '../errors.js';
import { note } from '../fields.js';
import { role, username as actor } from './auth.js';
import { parseOr400 } from './errors.js';

const usernameSchema = z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/, '1–64 letters, digits or "_.@-"');
const levelSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, '1–64 letters, digits, "_" or "-" (it is an MQTT topic level)');
const days = z.number().int().min(1).max(3650);
const reason = z.object({ reason: note(2000).optional() });

/**
 * Managing credentials (admins manage people, engineers stations; CONTRACT.md "Command line"): the
 * same as `visq user …` and `visq station …`, each change in the audit trail. Keys and tokens are
 * shown once, in the answer that issues them.
 */
export function accountRoutes(db: Database, defaults: { site: string }): Router {
  const router = Router();
  const json = express.json({ limit: '16kb' });
  const name = (value: unknown, schema: z.ZodType<string>) => parseOr400(schema, value, 'invalid_id');

  router.get('/users', role('admin'), async (_req, res) => {
    res.json({ users: await listUsers(db) });
  });

  router.post('/users', role('admin'), json, async (req, res) => {
    const body = parseOr400(z.object({
      username: usernameSchema,
      role: z.enum(roles as [string, ...string[]]),
      name: z.string().trim().min(1).max(200).optional(),
      password: z.string().min(1).max(1024).optional(),
      integration: z.boolean().default(false),
      tokenDays: days.default(365),
    }).strict(), req.body, 'invalid_user');
    if (body.integration && body.password !== undefined) throw new InvalidInputError('invalid_user', 'an integration account has no password');
    const problem = body.password === undefined ? null : passwordProblem(body.password);
    if (problem) throw new InvalidInputError('invalid_user', `password: ${problem}`);
    const created = await addUser(db, actor(req), {
      username: body.username, role: body.role as (typeof roles)[number], fullName: body.name ?? null,
      passwordHash: body.password === undefined ? null : await hashPassword(body.password), integration: body.integration, tokenDays: body.tokenDays,
    });
    res.status(201).json(created);
  });

  router.patch('/users/:username', role('admin'), json, async (req, res) => {
    const username = name(req.params.username, usernameSchema);
    const body = parseOr400(reason.extend({
      role: z.enum(roles as [string, ...string[]]).optional(),
      disabled: z.boolean().optional(),
      integration: z.boolean().optional(),
    }).strict(), req.body, 'invalid_change');
    if (body.disabled && username === actor(req)) throw new InvalidInputError('invalid_change', 'an admin cannot disable their own account');
    const why = body.reason ?? null;
    if (body.role !== undefined) await setRole(db, actor(req), username, body.role as (typeof roles)[number], why);
    if (body.disabled !== undefined) await setUserDisabled(db, actor(req), username, body.disabled, why);
    if (body.integration !== undefined) await setIntegration(db, actor(req), username, body.integration, why);
    res.json((await listUsers(db)).find((u) => u.username === username));
  });

  router.post('/users/:username/token', role('admin'), json, async (req, res) => {
    const body = parseOr400(z.object({ days: days.default(365) }).strict(), req.body ?? {}, 'invalid_change');
    res.status(201).json(await issueToken(db, actor(req), name(req.params.username, usernameSchema), body.days));
  });

  router.delete('/users/:username/token', role('admin'), async (req, res) => {
    const q = parseOr400(reason, req.query, 'invalid_query');
    await revokeToken(db, actor(req), name(req.params.username, usernameSchema), q.reason ?? null);
    res.status(204).end();
  });

  router.get('/stations', role('engineer'), async (_req, res) => {
    res.json({ stations: await listStations(db) });
  });

  router.post('/stations', role('engineer'), json, async (req, res) => {
    const body = parseOr400(z.object({ stationId: levelSchema, line: levelSchema, site: levelSchema.optional() }).strict(), req.body, 'invalid_station');
    res.status(201).json(await addStation(db, actor(req), body.stationId, body.site ?? defaults.site, body.line));
  });

  router.post('/stations/:stationId/key', role('engineer'), json, async (req, res) => {
    const body = parseOr400(reason.strict(), req.body ?? {}, 'invalid_change');
    res.status(201).json(await rotateStationKey(db, actor(req), name(req.params.stationId, levelSchema), body.reason ?? null));
  });

  router.patch('/stations/:stationId', role('engineer'), json, async (req, res) => {
    const stationId = name(req.params.stationId, levelSchema);
    const body = parseOr400(reason.extend({ disabled: z.boolean() }).strict(), req.body, 'invalid_change');
    await setStationDisabled(db, actor(req), stationId, body.disabled, body.reason ?? null);
    res.json((await listStations(db)).find((s) => s.stationId === stationId));
  });

  return router;
}
