import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The README is a newcomer's first ten minutes; the reference lives in docs/, one page per reader.
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const readmePath = join(repoRoot, 'README.md');
const docsDir = join(repoRoot, 'docs');
const docPages = readdirSync(docsDir).filter((name) => name.endsWith('.md')).sort();
const pages = [readmePath, ...docPages.map((name) => join(docsDir, name))];
const read = (path: string) => readFileSync(path, 'utf8');
const rel = (path: string) => relative(repoRoot, path);

/** The text outside fenced code blocks. */
const unfenced = (markdown: string) => markdown.replace(/^[ \t]*(```|~~~)[^\n]*\n[\s\S]*?^[ \t]*\1[^\n]*$/gm, '');

/** The text outside code blocks and inline code spans, where a link is a link. */
const prose = (markdown: string) => unfenced(markdown).replace(/`[^`\n]*`/g, '');

/** Inline links and images: `[text](target)` or `[text](target "title")`. */
function links(markdown: string): string[] {
  return [...prose(markdown).matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]!);
}

const isRelative = (target: string) => !/^[a-z][a-z0-9+.-]*:/i.test(target) && !target.startsWith('//');

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const [, heading] of unfenced(markdown).replace(/`([^`\n]*)`/g, '$1').matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const text = heading!.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/<[^>]+>/g, '');
    const base = text.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    result.add(n === 0 ? base : `${base}-${n}`);
  }
  return result;
}

describe('README.md and docs/', () => {
  it('keeps README.md to at most 150 lines', () => {
    const lines = read(readmePath).replace(/\n$/, '').split('\n').length;
    expect(lines, `README.md has ${lines} lines; move reference material to a docs/ page`).toBeLessThanOrEqual(150);
  });

  it('links every docs/ page from README.md', () => {
    const linked = new Set(links(read(readmePath)).filter(isRelative).map((t) => resolve(repoRoot, decodeURI(t.split('#')[0]!))));
    expect(docPages.length).toBeGreaterThan(0);
    const unlinked = readdirSync(docsDir).map((name) => join(docsDir, name)).filter((path) => !linked.has(path)).map(rel);
    expect(unlinked, `README.md does not link these docs/ files: ${unlinked.join(', ')}`).toEqual([]);
  });

  it('starts each docs/ page with a title and one line saying who it is for', () => {
    for (const name of docPages) {
      const [title, blank, firstLine] = read(join(docsDir, name)).split('\n');
      expect(title, `docs/${name}: the first line is its title`).toMatch(/^# \S/);
      expect(blank, `docs/${name}: a blank line after the title`).toBe('');
      expect(firstLine, `docs/${name}: the paragraph after the title says who the page is for`).toMatch(/^For /);
    }
  });

  it.each(pages.map((path) => [rel(path), path] as const))('%s: every relative link resolves, anchors included', (name, path) => {
    const broken: string[] = [];
    for (const target of links(read(path)).filter(isRelative)) {
      const [file, anchor] = decodeURI(target).split('#') as [string, string | undefined];
      const dest = file === '' ? path : resolve(dirname(path), file);
      if (!existsSync(dest)) {
        broken.push(`${name}: link "${target}": no file ${rel(dest)}`);
        continue;
      }
      if (anchor !== undefined && anchor !== '') {
        if (statSync(dest).isDirectory() || !dest.endsWith('.md')) {
          broken.push(`${name}: link "${target}": #${anchor} points into ${rel(dest)}, which has no headings`);
        } else if (!anchors(read(dest)).has(anchor)) {
          broken.push(`${name}: link "${target}": ${rel(dest)} has no heading "#${anchor}" (its anchors: ${[...anchors(read(dest))].join(', ')})`);
        }
      }
    }
    expect(broken, broken.join('\n')).toEqual([]);
  });
});
