import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from '../app/logger.js';
import type { Metrics } from '../app/metrics.js';
import { stationContextSchema } from '../inspection/trace-fields.js';
import type { Database } from '../db/database.js';
import { Leadership, leaderLockKeys } from '../db/leadership.js';
import { countUnsent, fetchUnsent, markSent, type OutboxMessage } from '../db/outbox.js';
import { clearStationContext, findStation, saveStationContext } from '../db/stations.js';
import { relayBatch } from './relay.js';
import { Topics } from './topics.js';
import { describeIssues } from '../validation-issues.js';

export interface MesLinkOptions {
  db: Database;
  databaseUrl: string;
  mqttUrl: string;
  site: string;
  topicPrefix: string;
  metrics: Metrics;
  log: Logger;
  /** How long to wait for a broker acknowledgement before trying again later. */
  publishTimeoutMs?: number;
}

const maxContextBytes = 64 * 1024;

/**
 * The module's link to the MES: relays the outbox to `…/verdict`, keeps `_module/state`, and
 * stores each station's `…/context`. Only one process per database leads (a PostgreSQL advisory
 * lock), so per-station order holds however many API processes run; the others stand by.
 */
export class MesLink {
  private readonly log: Logger;
  private readonly leadership: Leadership;
  private mqttClient: MqttClient | null = null;
  private stopping = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;

  private readonly topics: Topics;
  /** A verdict message was stored since the relay last looked. */
  private notified = false;

  constructor(private readonly o: MesLinkOptions) {
    this.log = o.log.child({ component: 'mes-link' });
    this.topics = new Topics(o.topicPrefix, o.site);
    this.leadership = new Leadership({
      databaseUrl: o.databaseUrl,
      lockKey: leaderLockKeys.mesLink,
      what: 'MES link',
      log: this.log,
      // Wakes the relay as soon as a verdict message is stored.
      listen: { channel: 'visq_outbox', notified: () => { this.notified = true; this.wake?.(); } },
      lead: async () => {
        this.connectBroker();
        this.loop = this.relayLoop();
      },
      resign: () => this.resign(),
    });
  }

  get role(): 'leader' | 'standby' { return this.mqttClient ? 'leader' : 'standby'; }

  /** null when healthy (or standing by), else what is wrong. */
  readiness(): string | null {
    if (!this.leadership.electionAnswered) return 'the MES link is starting (electing its leader)';
    if (!this.mqttClient) return null;
    return this.mqttClient.connected ? null : `MQTT broker ${redact(this.o.mqttUrl)} is not connected`;
  }

  start(): void {
    this.leadership.start();
  }

  private connectBroker(): void {
    const stateTopic = this.topics.state;
    const client = mqtt.connect(this.o.mqttUrl, {
      clientId: `visq-${this.o.site}-${randomBytes(4).toString('hex')}`,
      reconnectPeriod: 2000,
      connectTimeout: 10_000,
      will: { topic: stateTopic, payload: Buffer.from('offline'), qos: 1, retain: true },
    });
    this.mqttClient = client;
    client.on('connect', () => {
      this.log.info({ broker: redact(this.o.mqttUrl) }, 'connected to the MQTT broker');
      client.publish(stateTopic, 'online', { qos: 1, retain: true });
      client.subscribe(this.topics.contexts, { qos: 1 });
      this.wake?.();
    });
    client.on('error', (err) => this.log.warn({ err: err.message, broker: redact(this.o.mqttUrl) }, 'MQTT broker error'));
    client.on('offline', () => this.log.warn({ broker: redact(this.o.mqttUrl) }, 'MQTT broker unreachable; verdicts wait in the outbox'));
    client.on('message', (topic, payload) => void this.onContext(topic, payload));
  }

  private async onContext(topic: string, payload: Buffer): Promise<void> {
    const { line, stationId } = this.topics.contextOf(topic);
    const log = this.log.child({ topic, stationId });
    const refuse = (reason: string, message: string) => {
      this.o.metrics.contextRejected.inc({ reason });
      log.warn(message);
    };
    if (payload.length > maxContextBytes) return refuse('too_large', `context message of ${payload.length} bytes is too large; ignored`);
    // The topic alone proves nothing: only a registered station's context, on its own line, counts.
    const station = await findStation(this.o.db, stationId).catch((err) => { log.error({ err }, 'cannot look the station up'); return undefined; });
    if (station === undefined) return;
    if (station === null) return refuse('unknown_station', 'context for a station that is not registered (or is disabled); ignored');
    if (station.line !== line) return refuse('wrong_line', `context on line "${line}" for a station of line "${station.line}"; ignored`);
    if (payload.length === 0) {
      await clearStationContext(this.o.db, stationId).catch((err) => log.error({ err }, 'cannot clear the station context'));
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
    } catch {
      return refuse('invalid', 'context message is not valid UTF-8 JSON; ignored');
    }
    const parsed = stationContextSchema.safeParse(json);
    if (!parsed.success) return refuse('invalid', `context message is invalid (${describeIssues(parsed.error).join('; ')}); ignored`);
    const ctx = { partNumber: parsed.data.partNumber ?? null, lotId: parsed.data.lotId ?? null, workOrder: parsed.data.workOrder ?? null, operation: parsed.data.operation ?? null };
    await saveStationContext(this.o.db, stationId, ctx).then(
      () => log.info({ context: ctx }, 'station context updated'),
      (err) => log.error({ err }, 'cannot store the station context'),
    );
  }

  private async relayLoop(): Promise<void> {
    const limit = 500;
    while (!this.stopping && this.mqttClient) {
      let idle = true;
      try {
        if (this.mqttClient.connected) {
          this.notified = false;
          const batch = await fetchUnsent(this.o.db, limit);
          const acked = batch.length ? await this.relay(batch) : 0;
          // What this round saw tells the gauge, unless the batch was full (then more may wait: count them).
          this.o.metrics.outboxUnsent.set(batch.length === limit ? await countUnsent(this.o.db) : batch.length - acked);
          // Round again at once when more may be waiting; after a round the broker refused, wait a while.
          const refused = batch.length > 0 && acked === 0;
          idle = refused || !(batch.length === limit || acked < batch.length || this.notified);
        } else {
          this.o.metrics.outboxUnsent.set(await countUnsent(this.o.db));
        }
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'relay round failed; retrying');
      }
      if (idle) await new Promise<void>((resolve) => { this.wake = resolve; setTimeout(resolve, 1000); });
      this.wake = null;
    }
  }

  /** Publishes a batch (see relayBatch); returns how many were acknowledged. */
  private async relay(batch: OutboxMessage[]): Promise<number> {
    const acked = await relayBatch(batch, async (m) => {
      if (!(await this.publish(m))) return false;
      if (!m.payload.final) this.o.metrics.deliveryLatency.observe((Date.now() - Date.parse(m.payload.receivedAt)) / 1000);
      return true;
    });
    await markSent(this.o.db, acked);
    this.o.metrics.mqttPublished.inc(acked.length);
    return acked.length;
  }

  private async publish(m: OutboxMessage): Promise<boolean> {
    const client = this.mqttClient;
    if (!client?.connected) return false;
    const timeout = this.o.publishTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.publishAsync(this.topics.verdict(m.payload), JSON.stringify(m.payload), { qos: 1 }),
        new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no broker acknowledgement in ${timeout} ms`)), timeout); }),
      ]);
      return true;
    } catch (err) {
      this.log.warn({ err: (err as Error).message, messageId: m.messageId }, 'publish not acknowledged; will retry');
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  private async resign(): Promise<void> {
    const mqttClient = this.mqttClient;
    this.mqttClient = null;
    this.wake?.();
    // Resigning: the loop's and the connections' own errors were logged where they happened.
    await this.loop?.catch(() => {});
    this.loop = null;
    if (mqttClient) await mqttClient.endAsync(true).catch(() => {});
  }

  /** Flushes what the broker will take now, announces `offline`, and lets another process lead. */
  async stop(flushTimeoutMs = 5000): Promise<void> {
    const client = this.mqttClient;
    if (client?.connected) {
      const deadline = Date.now() + flushTimeoutMs;
      // A database that is gone has nothing more to flush: stop waiting.
      while (Date.now() < deadline && (await countUnsent(this.o.db).catch(() => 0)) > 0 && client.connected) {
        this.wake?.();
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    this.stopping = true;
    this.wake?.();
    await this.loop?.catch(() => {}); // its errors were logged in the loop
    if (client?.connected) {
      // Best effort: the last will says `offline` anyway when the connection drops.
      await client.publishAsync(this.topics.state, 'offline', { qos: 1, retain: true }).catch(() => {});
    }
    this.loop = null;
    await this.leadership.stop();
  }
}

/** A URL for logs, without its password. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}
