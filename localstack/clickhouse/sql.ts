/**
 * A small SQL scanner: just enough of ClickHouse's lexer to do what the HTTP handler must do
 * before handing text to chDB (which would otherwise run several statements at once):
 * find statement boundaries, the statement kind, a top-level FORMAT clause and where the
 * inline data of `INSERT … FORMAT X <data>` starts.
 */

/** What the handler needs to know about one statement. */
export interface StatementInfo {
  /** First keyword, upper-cased (SELECT, INSERT, CREATE, WITH, USE …). */
  readonly kind: string;
  /** Name given by a top-level `FORMAT name` clause, as written. */
  readonly format?: string;
  /** For `INSERT … FORMAT name`: offset of the inline data (after one whitespace run). */
  readonly dataOffset?: number;
  /** Offset just past the statement's last significant character (a trailing `;` excluded). */
  readonly end: number;
}

/** A statement the server must refuse before running it, with the server's wording. */
export class StatementSyntaxError extends Error {
  readonly clickhouseCode = 62;
  constructor(message: string) {
    super(message);
    this.name = 'StatementSyntaxError';
  }
}

const isSpace = (c: string): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v';
const isWordStart = (c: string): boolean => /[A-Za-z_\u0080-\uffff]/.test(c);
const isWordChar = (c: string): boolean => /[A-Za-z0-9_$\u0080-\uffff]/.test(c);

/** Offset after a quoted token opened at `start` (quote char `q`), honouring `\` escapes and doubled quotes. */
function skipQuoted(sql: string, start: number, q: string): number {
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i];
    if (c === '\\') {
      i += 2;
      continue;
    }
    if (c === q) {
      if (sql[i + 1] === q) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  return sql.length; // unterminated: let the engine report it
}

/** Offset after whitespace and comments starting at `i`. */
function skipBlank(sql: string, i: number): number {
  for (;;) {
    const c = sql[i];
    if (c === undefined) return i;
    if (isSpace(c)) {
      i++;
    } else if (c === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? sql.length : nl + 1;
    } else if (c === '#' && (sql[i + 1] === ' ' || sql[i + 1] === '!')) {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? sql.length : nl + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      const close = sql.indexOf('*/', i + 2);
      i = close < 0 ? sql.length : close + 2;
    } else {
      return i;
    }
  }
}

interface Token {
  readonly text: string;
  readonly start: number;
  readonly end: number;
  readonly word: boolean;
}

/**
 * Inspects one statement. Throws {@link StatementSyntaxError} for an empty query or when a
 * second statement follows a `;` (a server accepts one statement per request).
 * `knownFormats` (upper-cased names) keeps a column called `format` from being read as a clause.
 */
export function inspectStatement(sql: string, knownFormats?: ReadonlySet<string>): StatementInfo {
  let depth = 0;
  let kind = '';
  let format: string | undefined;
  let dataOffset: number | undefined;
  let lastSignificant = 0;
  let prev: Token | undefined;
  let beforePrev: Token | undefined;
  let i = skipBlank(sql, 0);

  while (i < sql.length) {
    const c = sql[i] ?? '';
    let tok: Token;
    if (c === "'" || c === '"' || c === '`') {
      const end = skipQuoted(sql, i, c);
      tok = { text: sql.slice(i, end), start: i, end, word: c !== "'" };
    } else if (isWordStart(c)) {
      let end = i + 1;
      while (end < sql.length && isWordChar(sql[end] ?? '')) end++;
      tok = { text: sql.slice(i, end), start: i, end, word: true };
    } else if (c === ';') {
      const next = skipBlankAndSemicolons(sql, i + 1);
      if (next < sql.length) {
        throw new StatementSyntaxError(
          `Syntax error (Multi-statements are not allowed): failed at position ${i + 1} (end of query): ${excerpt(sql, i)}.`,
        );
      }
      break;
    } else {
      if (c === '(' || c === '[' || c === '{') depth++;
      else if (c === ')' || c === ']' || c === '}') depth = Math.max(0, depth - 1);
      tok = { text: c, start: i, end: i + 1, word: false };
    }

    if (kind === '' && tok.word && /^[A-Za-z_]/.test(tok.text)) kind = tok.text.toUpperCase();
    lastSignificant = tok.end;

    // `FORMAT name` at top level. The name is the token after FORMAT.
    if (depth === 0 && tok.word && prev?.word && prev.text.toUpperCase() === 'FORMAT' && format === undefined) {
      const name = unquoteIdentifier(tok.text);
      const precededByValue = beforePrev !== undefined && beforePrev.text === ',';
      if (!precededByValue && (knownFormats === undefined || knownFormats.has(name.toUpperCase()))) {
        format = name;
        if (kind === 'INSERT') {
          // Everything after the format name (and one run of blanks) is data, not SQL.
          dataOffset = skipInsertDataGap(sql, tok.end);
          return { kind, format, dataOffset, end: sql.length };
        }
      }
    }

    beforePrev = prev;
    prev = tok;
    i = skipBlank(sql, tok.end);
  }

  if (kind === '' && lastSignificant === 0) {
    throw new StatementSyntaxError('Empty query.');
  }
  return { kind, format, dataOffset, end: lastSignificant };
}

/** Server rule: the data of `INSERT … FORMAT X` starts after the whitespace following the name. */
function skipInsertDataGap(sql: string, i: number): number {
  while (i < sql.length && isSpace(sql[i] ?? '')) i++;
  return i;
}

function skipBlankAndSemicolons(sql: string, i: number): number {
  for (;;) {
    const j = skipBlank(sql, i);
    if (sql[j] === ';') {
      i = j + 1;
      continue;
    }
    return j;
  }
}

function unquoteIdentifier(text: string): string {
  const q = text[0];
  if ((q === '"' || q === '`') && text.endsWith(q) && text.length >= 2) return text.slice(1, -1);
  return text;
}

function excerpt(sql: string, at: number): string {
  const rest = sql.slice(at, at + 60).replace(/\s+/g, ' ');
  return sql.length - at > 60 ? `${rest}...` : rest;
}
