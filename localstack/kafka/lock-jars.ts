/**
 * Maintainers only (`npm run kafka:lock`): resolves pom.xml's pins with Maven, with Maven Central's
 * checksums enforced, and writes jars.json: every runtime jar with its SHA-256, which jars.ts verifies.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir, homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jarsManifest, type LockedJar } from './jars.ts';

const here = fileURLToPath(new URL('.', import.meta.url));
const listFile = join(mkdtempSync(join(tmpdir(), 'kafka-lock-')), 'deps.txt');
execFileSync('mvn', ['-q', '-B', '--strict-checksums', '-f', join(here, 'pom.xml'), 'dependency:list',
  '-DincludeScope=runtime', '-DoutputAbsoluteArtifactFilename=true', `-DoutputFile=${listFile}`], { stdio: 'inherit' });

const repo = join(homedir(), '.m2', 'repository');
const jars: LockedJar[] = [];
for (const line of readFileSync(listFile, 'utf8').split('\n')) {
  // "   group:artifact:jar:version:scope:/abs/path.jar" (Maven prints the path when asked to).
  const m = line.trim().match(/^([^:\s]+):([^:]+):jar:([^:]+):(?:compile|runtime)(?::(.+))?$/);
  if (!m) {
    // A dependency in a shape this does not read (a classifier, say) must not silently drop out of the list.
    if (line.includes(':jar:')) throw new Error(`cannot read Maven's dependency line: ${line.trim()}`);
    continue;
  }
  const [, group, artifact, version, path] = m as unknown as [string, string, string, string, string | undefined];
  const file = path ?? join(repo, ...group.split('.'), artifact, version, `${artifact}-${version}.jar`);
  jars.push({ coords: `${group}:${artifact}:${version}`, sha256: createHash('sha256').update(readFileSync(file)).digest('hex') });
}
jars.sort((a, b) => a.coords.localeCompare(b.coords));
if (!jars.some((j) => j.coords.startsWith('org.apache.kafka:kafka_2.13:'))) throw new Error('the broker jar is missing from the resolution');
writeFileSync(jarsManifest, `${JSON.stringify({ jars }, null, 2)}\n`);
console.log(`wrote ${jars.length} jars to ${jarsManifest}`);
