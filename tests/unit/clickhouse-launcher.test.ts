import { describe, expect, it } from 'vitest';
import { serverConfigXml, usersXml } from '../../localstack/clickhouse/config.ts';
import { startFailureLine } from '../../localstack/clickhouse/embedded.ts';
import { chdbLibraryPath, startupQuery } from '../../localstack/clickhouse/server.ts';

describe('the embedded ClickHouse server’s configuration', () => {
  it('listens on loopback only, on the ports asked, with its data, users file and log in the data directory', () => {
    const xml = serverConfigXml({ dataDir: '/data/ch', httpPort: 18123 });
    expect(xml).toContain('<listen_host>127.0.0.1</listen_host>');
    expect(xml).toContain('<http_port>18123</http_port>');
    expect(xml).not.toContain('<tcp_port>');
    expect(xml).toContain('<path>/data/ch/</path>');
    expect(xml).toContain('<users_config>/data/ch/embedded-users.xml</users_config>');
    expect(xml).toContain('<log>/data/ch/clickhouse-server.log</log>');
    expect(xml).not.toContain('remote_servers');
  });

  it('names every shard of a cluster by its native port', () => {
    const xml = serverConfigXml({ dataDir: '/d', httpPort: 1, tcpPort: 9001, cluster: { name: 'ugc_cluster', shards: [{ host: '127.0.0.1', tcpPort: 9001 }, { host: '127.0.0.1', tcpPort: 9002 }] } });
    expect(xml).toContain('<tcp_port>9001</tcp_port>');
    expect(xml).toContain('<remote_servers><ugc_cluster><shard><replica><host>127.0.0.1</host><port>9001</port></replica></shard><shard><replica><host>127.0.0.1</host><port>9002</port></replica></shard></ugc_cluster></remote_servers>');
  });

  it('gives default no password by default, and with a configured user only what clickhouse-local’s own session needs', () => {
    const open = usersXml({});
    expect(open).toContain('<default><no_password/>');
    expect(open).toContain('<access_management>1</access_management>');
    const locked = usersXml({ user: 'writer', password: 'pw' });
    expect(locked).toMatch(/<default><no_password\/>.*<grants><query>GRANT SYSTEM LISTEN ON \*\.\*<\/query><query>GRANT READ ON FILE<\/query><query>GRANT CREATE TEMPORARY TABLE ON \*\.\*<\/query><\/grants><\/default>/);
    // sha256('pw'), never the password itself
    expect(locked).toContain('<writer><password_sha256_hex>30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4</password_sha256_hex>');
    expect(locked).not.toContain('>pw<');
    // Both profiles turn clickhouse-local's command-line defaults back to a server's.
    expect(open).toContain('<implicit_select>0</implicit_select>');
    expect(() => usersXml({ user: 'default', password: 'pw' })).toThrow(/cannot give `default` a password/);
    expect(() => usersXml({ user: 'a b', password: 'pw' })).toThrow(/letters, digits and _ only/);
  });

  it('opens HTTP, and the native port for a cluster, then reads stdin until it closes', () => {
    expect(startupQuery(false)).toBe("SYSTEM START LISTEN HTTP; SELECT count() FROM file(stdin, 'LineAsString') FORMAT Null");
    expect(startupQuery(true)).toMatch(/^SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP; SELECT/);
  });
});

describe('a failed start, in one line', () => {
  it('keeps ClickHouse’s own Code line, or ours, and says what to do about a directory another server holds', () => {
    const listen = 'Logging error to /d/clickhouse-server.log\nCode: 210. DB::Exception: Listen [127.0.0.1]:8123 failed: Address already in use (NETWORK_ERROR)\n';
    expect(startFailureLine(listen)).toBe('Code: 210. DB::Exception: Listen [127.0.0.1]:8123 failed: Address already in use (NETWORK_ERROR)');
    expect(startFailureLine('embedded ClickHouse: data dir /d is already used by another embedded ClickHouse server (pid 7)\n')).toBe('data dir /d is already used by another embedded ClickHouse server (pid 7)');
    expect(startFailureLine('Code: 76. DB::Exception: Cannot lock file /d/status. Another server instance in same directory is already running. (CANNOT_OPEN_FILE)')).toMatch(/stop it or set CLICKHOUSE_DATA_DIR/);
    expect(startFailureLine('')).toBe('(no output)');
  });

  it('says where libchdb should come from when it is missing', () => {
    expect(() => chdbLibraryPath({ CHDB_LIBRARY_PATH: '/nonexistent/libchdb.so' })).toThrow(/^CHDB_LIBRARY_PATH \/nonexistent\/libchdb.so does not exist/);
    expect(chdbLibraryPath({})).toMatch(/libchdb\.(so|dylib)$/);
  });
});
