import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import cookieParser from 'cookie-parser';
import express, { type Express, type Response } from 'express';
import helmet from 'helmet';
import { pinoHttp } from 'pino-http';
import { randomUUID } from 'node:crypto';
import type { ReviewChanges } from '../db/review-changes.js';
import { accountRoutes } from './accounts-routes.js';
import { auditRoutes } from './audit-routes.js';
import { authenticated, sameToken } from './auth.js';
import { eventRoutes } from './events-routes.js';
import { errorHandler, HttpError } from './errors.js';
import { inspectionRoutes, type InspectionRoutesDeps } from './inspections-routes.js';
import { lotRoutes } from './lots-routes.js';
import { limitRate } from './rate-limits.js';
import { planRoutes, type ModelSummary } from './plans-routes.js';
import { sessionRoutes, sessionSignInRoutes } from './session-routes.js';

const uiDir = fileURLToPath(new URL('../../ui/dist', import.meta.url));

export type ReadinessCheck = () => Promise<string | null>;

export interface HttpAppDeps extends InspectionRoutesDeps {
  models: readonly ModelSummary[];
  reviewChanges: ReviewChanges;
  sessionSeconds: number;
  /** express "trust proxy": whose X-Forwarded-For/-Proto count (client address for rate limits, HTTPS for Secure cookies). */
  trustProxy: string | number;
  /** The bearer token /metrics asks for; null: /metrics answers loopback addresses only. */
  metricsToken: string | null;
  /** This installation's site: where stations added over the API belong unless they say otherwise. */
  site: string;
  /** Named checks; each returns null when healthy, else what is wrong. */
  readiness: Record<string, ReadinessCheck>;
}

export function createHttpApp(deps: HttpAppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(helmet({
    contentSecurityPolicy: {
      directives: {
        // Plants often serve the workbench over plain HTTP on the line network: do not rewrite to https.
        'upgrade-insecure-requests': null,
      },
    },
  }));
  app.set('trust proxy', deps.trustProxy);
  app.use(pinoHttp({
    logger: deps.log,
    genReqId: (req, res) => {
      const id = (req.headers['x-request-id'] as string | undefined)?.slice(0, 100) ?? randomUUID();
      res.setHeader('X-Request-Id', id);
      return id;
    },
    autoLogging: { ignore: (req) => ['/healthz', '/readyz', '/metrics'].includes(req.url ?? '') },
    serializers: {
      req: (req) => ({ id: req.id, method: req.method, url: req.url, remoteAddress: req.remoteAddress }),
      res: (res) => ({ statusCode: res.statusCode }),
    },
    // The request's log line names the inspection it created or touched.
    customProps: (_req, res) => {
      const inspectionId = (res as unknown as Response).locals?.inspectionId as string | undefined;
      return inspectionId ? { inspectionId } : {};
    },
    customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info'),
  }));
  app.use((req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    const end = deps.metrics.httpRequests.startTimer({ method: req.method });
    res.on('finish', () => end({ route: req.route?.path ? `${req.baseUrl}${req.route.path}` : 'unmatched', status: String(res.statusCode) }));
    next();
  });

  app.get('/healthz', (_req, res) => { res.json({ status: 'ok' }); });
  app.get('/readyz', async (_req, res) => {
    const results = await Promise.all(Object.entries(deps.readiness).map(async ([name, check]) => {
      const problem = await check().catch((err: Error) => err.message || String(err));
      return [name, problem ?? 'ok'] as const;
    }));
    const ready = results.every(([, r]) => r === 'ok');
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not_ready', checks: Object.fromEntries(results) });
  });
  // Production volumes and yields are not for everyone: a token, or this host only.
  const scrapes = limitRate({ windowSeconds: 1, limit: 10, key: (req) => req.socket.remoteAddress ?? '', message: 'more than 10 scrapes per second' });
  app.get('/metrics', scrapes, (req, _res, next) => {
    if (deps.metricsToken !== null) {
      const m = /^Bearer\s+(\S+)$/i.exec(req.get('authorization') ?? '');
      if (!m || !sameToken(m[1], deps.metricsToken)) throw new HttpError(401, 'unauthorized', '/metrics needs "Authorization: Bearer <VISQ_METRICS_TOKEN>"', { 'WWW-Authenticate': 'Bearer' });
    } else if (!isLoopback(req.socket.remoteAddress)) {
      throw new HttpError(403, 'forbidden', '/metrics answers this host only; set VISQ_METRICS_TOKEN to scrape it from another');
    }
    next();
  }, async (_req, res) => {
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  const v1 = express.Router();
  v1.use(cookieParser());
  v1.use(sessionSignInRoutes(deps.db, deps.sessionSeconds));
  v1.use(authenticated(deps.db));
  v1.use(sessionRoutes(deps.db));
  v1.use(inspectionRoutes(deps));
  v1.use(lotRoutes(deps.db));
  v1.use(planRoutes(deps.db, deps.models));
  v1.use(auditRoutes(deps.db));
  v1.use(accountRoutes(deps.db, { site: deps.site }));
  v1.use(eventRoutes(deps.reviewChanges));
  app.use('/v1', v1);

  // The review workbench: a built single-page app (`npm run build:ui`) that uses the API above.
  if (existsSync(uiDir)) {
    app.use('/', express.static(uiDir, {
      index: 'index.html',
      setHeaders: (res, file) => res.setHeader('Cache-Control', file.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache'),
    }));
  }
  app.use((req, _res) => { throw new HttpError(404, 'not_found', `no route ${req.method} ${req.path}`); });
  app.use(errorHandler(deps.log));
  return app;
}

const isLoopback = (address: string | undefined) => address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
