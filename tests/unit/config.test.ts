import { describe, expect, it } from 'vitest';
import { ConfigError, kafkaEnv, loadConfig } from '../../shared/config.ts';
import { splitStatements } from '../../clickhouse/migrate.ts';

describe('configuration', () => {
  it('parses variables once into a frozen object with defaults', () => {
    const config = loadConfig(kafkaEnv, { KAFKA_BROKERS: 'a:9092, b:9092', KAFKA_IDEMPOTENT: 'false' });
    expect(config).toMatchObject({ KAFKA_BROKERS: ['a:9092', 'b:9092'], KAFKA_TOPIC: 'ugc.events', KAFKA_IDEMPOTENT: false });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('fails naming the variable that is missing or malformed', () => {
    expect(() => loadConfig(kafkaEnv, {})).toThrow(ConfigError);
    expect(() => loadConfig(kafkaEnv, {})).toThrow(/KAFKA_BROKERS/);
    expect(() => loadConfig(kafkaEnv, { KAFKA_BROKERS: 'a:1', KAFKA_IDEMPOTENT: 'maybe' })).toThrow(/KAFKA_IDEMPOTENT/);
  });
});

describe('migration splitting', () => {
  it('sends one statement at a time and drops comments', () => {
    expect(splitStatements('-- a comment\nCREATE TABLE a (x String DEFAULT \';\');\n\nCREATE VIEW b AS SELECT 1;\n'))
      .toEqual(["CREATE TABLE a (x String DEFAULT ';')", 'CREATE VIEW b AS SELECT 1']);
  });
});
