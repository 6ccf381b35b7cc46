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

  it.each([
    ['VISQ_HTTP_PORT', 'eighty'],
    ['VISQ_HTTP_PORT', '70000'],
    ['DATABASE_URL', 'mysql://db/visq'],
    ['REDIS_URL', 'not a url'],
    ['MQTT_URL', 'http://broker'],
    ['VISQ_SITE', 'site/1'],
    ['VISQ_MAX_IMAGE_BYTES', '-1'],
    ['VISQ_LOG_LEVEL', 'loud'],
  ])('a bad %s (%s) is an error naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(name));
  });
});
