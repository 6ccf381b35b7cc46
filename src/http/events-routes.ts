import { Router } from 'express';
import type { ReviewChanges } from '../db/review-changes.js';
import { role } from './auth.js';

/** `GET /v1/events`: the review queue's changes as server-sent events, so queues update without reloading. */
export function eventRoutes(changes: ReviewChanges): Router {
  const router = Router();
  router.get('/events', role('reviewer'), (req, res) => {
    // `Connection: close`: when the stream ends its socket goes too, so it cannot hold up a shutdown as an idle keep-alive.
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no', Connection: 'close' });
    res.write('retry: 3000\n\n');
    const unsubscribe = changes.subscribe(
      (change) => res.write(`event: review\ndata: ${JSON.stringify(change)}\n\n`),
      () => res.end(),
    );
    // Proxies and NAT drop connections that look idle.
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 25_000);
    res.on('close', () => { clearInterval(heartbeat); unsubscribe(); });
  });
  return router;
}
