import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/app/config.js';

describe('loadConfig', () => {
  it('has the contract\'s defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ redisUrl: undefined, databaseUrl: undefined, mqttUrl: undefined, http: { port: 8080 }, site: 'site1', topicPrefix: 'visq' });
    expect(c.dataDir).toBe(path.resolve('./data'));
    expect(c.modelsDir).toBe(path.resolve('./models'));
  });

  it('reads every variable', () => {
    const c = loadConfig({
      REDIS_URL: 'redis://r:6379', DATABASE_URL: 'postgres://u:p@db/visq', MQTT_URL: 'mqtts://broker:8883',
      VISQ_HTTP_PORT: '9000', VISQ_DATA_DIR: '/srv/visq', VISQ_MODELS_DIR: '/srv/models', VISQ_SITE: 'plant-7', VISQ_TOPIC_PREFIX: 'acme/visq',
    });
    expect(c).toMatchObject({ redisUrl: 'redis://r:6379', databaseUrl: 'postgres://u:p@db/visq', mqttUrl: 'mqtts://broker:8883', http: { port: 9000 }, dataDir: '/srv/visq', modelsDir: '/srv/models', site: 'plant-7', topicPrefix: 'acme/visq' });
  });

  it('keeps a small box healthy by default: 80 % of the volume, pruning from 90 % of that down to 80 %, PASS a week, FAIL and disposed a year', () => {
    expect(loadConfig({}).storage).toEqual({
      quota: { percent: 80 }, highWatermarkPercent: 90, lowWatermarkPercent: 80, minFree: { percent: 5 }, pruneIntervalSeconds: 60,
      retention: {
        pass: { minSeconds: 7 * 86400, maxSeconds: null },
        fail: { minSeconds: 365 * 86400, maxSeconds: null },
        disposed: { minSeconds: 365 * 86400, maxSeconds: null },
        overlay: { minSeconds: 30 * 86400, maxSeconds: null },
        prepared: { minSeconds: 0, maxSeconds: 3600 },
      },
    });
  });

  it('reads the storage and retention variables', () => {
    const c = loadConfig({
      VISQ_STORAGE_QUOTA: '200GB', VISQ_STORAGE_HIGH_WATERMARK: '95', VISQ_STORAGE_LOW_WATERMARK: '70', VISQ_STORAGE_MIN_FREE: '2GiB',
      VISQ_RETAIN_PASS_MIN_AGE: '12h', VISQ_RETAIN_PASS_MAX_AGE: '30d', VISQ_RETAIN_FAIL_MAX_AGE: '730d', VISQ_PRUNE_INTERVAL_SECONDS: '15',
    });
    expect(c.storage).toMatchObject({
      quota: { bytes: 200e9 }, highWatermarkPercent: 95, lowWatermarkPercent: 70, minFree: { bytes: 2 * 1024 ** 3 }, pruneIntervalSeconds: 15,
      retention: { pass: { minSeconds: 43200, maxSeconds: 30 * 86400 }, fail: { minSeconds: 365 * 86400, maxSeconds: 730 * 86400 } },
    });
  });

  it.each([
    ['VISQ_STORAGE_LOW_WATERMARK', { VISQ_STORAGE_LOW_WATERMARK: '90' }, /VISQ_STORAGE_LOW_WATERMARK: must be below VISQ_STORAGE_HIGH_WATERMARK \(90\)/],
    ['VISQ_RETAIN_PASS_MAX_AGE', { VISQ_RETAIN_PASS_MAX_AGE: '1d' }, /VISQ_RETAIN_PASS_MAX_AGE: must not be shorter than VISQ_RETAIN_PASS_MIN_AGE/],
    ['VISQ_STORAGE_QUOTA', { VISQ_STORAGE_QUOTA: 'most of it' }, /VISQ_STORAGE_QUOTA: "most of it" is not a size/],
    ['VISQ_RETAIN_FAIL_MIN_AGE', { VISQ_RETAIN_FAIL_MIN_AGE: 'a year' }, /VISQ_RETAIN_FAIL_MIN_AGE: "a year" is not a duration/],
  ])('a contradictory or unreadable %s stops the start, naming it', (_name, env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });

  it.each([
    ['VISQ_HTTP_PORT', 'eighty'],
    ['VISQ_HTTP_PORT', '70000'],
    ['DATABASE_URL', 'mysql://db/visq'],
    ['REDIS_URL', 'not a url'],
    ['MQTT_URL', 'http://broker'],
    ['VISQ_SITE', 'site/1'],
    ['VISQ_MAX_IMAGE_BYTES', '-1'],
    ['VISQ_LOG_LEVEL', 'loud'],
    ['VISQ_STORAGE_HIGH_WATERMARK', '120'],
    ['VISQ_STORAGE_MIN_FREE', '0%'],
    ['VISQ_RETAIN_PREPARED_MAX_AGE', 'soon'],
    ['VISQ_PRUNE_INTERVAL_SECONDS', '0'],
  ])('a bad %s (%s) is an error naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(name));
  });
});
