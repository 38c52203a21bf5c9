/**
 * The embedded server's configuration, as ClickHouse's own XML files: the server's (ports, path,
 * logger, the cluster's remote servers) and the users'. Pure: options in, file contents out.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { ConfigError } from '../../shared/errors.ts';

/** Where the launcher writes the two files inside the data directory. */
export const configFileName = 'embedded-server.xml';
export const usersFileName = 'embedded-users.xml';
/** The server's log (errors), inside the data directory. */
export const logFileName = 'clickhouse-server.log';

/** One node of a cluster of embedded servers, as its peers reach it over the native protocol. */
export interface ClusterNode {
  readonly host: string;
  readonly tcpPort: number;
}

/** What the two files say. */
export interface ServerConfigOptions {
  readonly dataDir: string;
  readonly httpPort: number;
  /** The server's display_name: what tells this start's server from another one on the same port. */
  readonly displayName?: string;
  /** The native port: peers of a cluster (Distributed tables) talk to it. Absent: HTTP only. */
  readonly tcpPort?: number;
  /** A user with a password: then `default` can do nothing but start the listeners (see usersXml). */
  readonly user?: string;
  readonly password?: string;
  /** `remote_servers`: a cluster of one replica per shard, for Distributed tables. */
  readonly cluster?: { readonly name: string; readonly shards: readonly ClusterNode[] };
}

const xmlEscape = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

// Settings clickhouse-local turns on for its own command line that a server does not have: a
// client must see a server's defaults (`1+1` without SELECT is a syntax error there).
const serverProfile = '<default><implicit_select>0</implicit_select><allow_introspection_functions>0</allow_introspection_functions></default>';

/**
 * The users file. clickhouse-local's own session always logs in as `default` with no password
 * (chDB's LocalConnection), from 127.0.0.1 like any local client, so `default` must exist without
 * one. With a configured user, `default` keeps only what that session needs to start the
 * listeners and read its stdin (a narrower READ ON FILE('stdin') is refused for it); the tables
 * need the user's password. The server binds loopback only: the rest of this machine can still
 * read files through `default`, which docs/local-stack.md's limits say.
 */
export function usersXml(options: Pick<ServerConfigOptions, 'user' | 'password'>): string {
  const anyNetwork = '<networks><ip>::/0</ip></networks>';
  if (options.user === undefined || options.user === 'default') {
    if (options.password) throw new ConfigError('the embedded ClickHouse cannot give `default` a password (clickhouse-local logs in as default without one): configure another user');
    return wrapUsers(`<default><no_password/><profile>default</profile><quota>default</quota>${anyNetwork}<access_management>1</access_management></default>`);
  }
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(options.user)) throw new ConfigError(`embedded ClickHouse user ${JSON.stringify(options.user)}: letters, digits and _ only`);
  const startListeners = ['GRANT SYSTEM LISTEN ON *.*', 'GRANT READ ON FILE', 'GRANT CREATE TEMPORARY TABLE ON *.*']
    .map((grant) => `<query>${grant}</query>`)
    .join('');
  return wrapUsers(
    `<default><no_password/><profile>default</profile><quota>default</quota>${anyNetwork}<grants>${startListeners}</grants></default>` +
      `<${options.user}><password_sha256_hex>${sha256(options.password ?? '')}</password_sha256_hex><profile>default</profile><quota>default</quota>${anyNetwork}<access_management>1</access_management></${options.user}>`,
  );
}

function wrapUsers(users: string): string {
  return `<clickhouse><users>${users}</users><profiles>${serverProfile}</profiles><quotas><default/></quotas></clickhouse>\n`;
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The server's configuration file: loopback only, the data directory, the log, the cluster. */
export function serverConfigXml(options: ServerConfigOptions): string {
  const dataDir = options.dataDir.endsWith('/') ? options.dataDir : `${options.dataDir}/`;
  const lines = [
    '<clickhouse>',
    '  <listen_host>127.0.0.1</listen_host>',
    `  <http_port>${options.httpPort}</http_port>`,
    ...(options.displayName !== undefined ? [`  <display_name>${xmlEscape(options.displayName)}</display_name>`] : []),
    ...(options.tcpPort !== undefined ? [`  <tcp_port>${options.tcpPort}</tcp_port>`] : []),
    `  <path>${xmlEscape(dataDir)}</path>`,
    `  <users_config>${xmlEscape(join(options.dataDir, usersFileName))}</users_config>`,
    // clickhouse-local takes its log level from `log-level` (default trace once a log is set).
    '  <log-level>error</log-level>',
    `  <logger><log>${xmlEscape(join(options.dataDir, logFileName))}</log></logger>`,
  ];
  if (options.cluster) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(options.cluster.name)) throw new ConfigError(`cluster name ${JSON.stringify(options.cluster.name)}: letters, digits and _ only`);
    const shards = options.cluster.shards
      .map((node) => `<shard><replica><host>${xmlEscape(node.host)}</host><port>${node.tcpPort}</port></replica></shard>`)
      .join('');
    lines.push(`  <remote_servers><${options.cluster.name}>${shards}</${options.cluster.name}></remote_servers>`);
  }
  lines.push('</clickhouse>');
  return `${lines.join('\n')}\n`;
}
