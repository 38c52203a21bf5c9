import { describe, expect, it } from 'vitest';
import { env, kafkaEnv, loadConfig } from '../../shared/config.ts';
import { ConfigError } from '../../shared/errors.ts';
import { authEnv } from '../../shared/auth.ts';
import { storedClickHouseEnv } from '../../shared/clickhouse.ts';
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

  it('says in words what is wrong with each variable', () => {
    const problems = (schema: Parameters<typeof loadConfig>[0], values: Record<string, string>) => {
      try {
        loadConfig(schema, values);
      } catch (error) {
        return (error as Error).message;
      }
      throw new Error('expected a ConfigError');
    };
    const clickhouse = problems(storedClickHouseEnv, { CLICKHOUSE_URL: 'not a url', CLICKHOUSE_REQUEST_TIMEOUT_MS: '0', CLICKHOUSE_PASSWORD_PARAMETER: 'ugc/pw' });
    expect(clickhouse).toContain('CLICKHOUSE_URL: Invalid URL');
    expect(clickhouse).toContain('CLICKHOUSE_REQUEST_TIMEOUT_MS: Too small: expected number to be >=1');
    expect(clickhouse).toContain('CLICKHOUSE_PASSWORD_PARAMETER: must be a full parameter name starting with /');
    const auth = problems(authEnv, { JWT_SECRET: 'short', JWT_ALGORITHMS: 'HS256,none', JWT_CACHE_SIZE: 'lots' });
    expect(auth).toContain('JWT_SECRET: must be at least 16 characters');
    expect(auth).toMatch(/JWT_ALGORITHMS\.1: Invalid option: expected one of "HS256"\|"RS256"\|"ES256"/);
    expect(auth).toContain('JWT_CACHE_SIZE: Invalid input: expected number, received NaN');
  });

  it('reads numbers, lists and flags, with defaults for unset or empty variables', () => {
    const config = loadConfig({ N: env.int(7, 1), L: env.list(), B: env.bool(true), S: env.string('x'), O: env.optionalString() },
      { N: ' 42 ', L: 'a,, b ,', B: '', S: '' });
    expect(config).toEqual({ N: 42, L: ['a', 'b'], B: true, S: 'x', O: undefined });
    expect(loadConfig({ N: env.int(7, 1) }, {})).toEqual({ N: 7 });
    expect(() => loadConfig({ N: env.int(7, 1) }, { N: '1.5' })).toThrow(/N: Invalid input: expected int/);
    expect(() => loadConfig({ L: env.list() }, { L: ' , ' })).toThrow(/L: Too small/);
  });
});

describe('migration splitting', () => {
  it('sends one statement at a time and drops comments', () => {
    expect(splitStatements('-- a comment\nCREATE TABLE a (x String DEFAULT \';\');\n\nCREATE VIEW b AS SELECT 1;\n'))
      .toEqual(["CREATE TABLE a (x String DEFAULT ';')", 'CREATE VIEW b AS SELECT 1']);
  });
});
