/**
 * Loading user-written YAML/JSON files (workloads, paging formats) against a zod schema, with
 * errors that name the file, line, column and field, say what was expected, and suggest the
 * nearest known key for a misspelt one. A user's mistake is an InputError (exit status 2 at the
 * CLI), never a stack trace.
 */
import { readFileSync } from 'node:fs';
import { isMap, isScalar, LineCounter, type Node, parseDocument } from 'yaml';
import type { z } from 'zod';

/** A mistake in a user's input file or arguments. The CLI prints `message` and exits with 2. */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

/** Parse `path` as YAML (JSON is YAML too) and validate it; throws InputError on any mistake. */
export function loadConfigFile<S extends z.ZodType>(path: string, schema: S): z.output<S> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InputError(
      `${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  return parseConfigText(path, text, schema);
}

/** Validate YAML text that came from `path` (for tests and embedded configs). */
export function parseConfigText<S extends z.ZodType>(path: string, text: string, schema: S): z.output<S> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = lineCounter.linePos(e.pos[0]);
    throw new InputError(`${path}:${pos.line}:${pos.col}: ${e.message.split('\n')[0]}`);
  }
  const data: unknown = doc.toJS();
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  const lines = unknownKeysFirst(result.error.issues)
    .flatMap((issue) => describeIssue(path, doc, lineCounter, schema, issue))
    .slice(0, 5);
  throw new InputError(lines.join('\n'));
}

type Issue = z.core.$ZodIssue;

/** Issues with unknown keys first: a misspelt key is usually why a required one is missing. */
function unknownKeysFirst(issues: readonly Issue[]): Issue[] {
  const rank = (i: Issue): number => (i.code === 'unrecognized_keys' ? 0 : 1);
  return [...issues].sort((a, b) => rank(a) - rank(b));
}

type Doc = ReturnType<typeof parseDocument>;

/** The lines describing one issue (unknown keys and a union's chosen branch may give several). */
function describeIssue(path: string, doc: Doc, lc: LineCounter, schema: z.ZodType, issue: Issue): string[] {
  if (issue.code === 'invalid_union') {
    const lines = describeUnion(path, doc, lc, schema, issue);
    if (lines !== undefined) return lines;
  }
  if (issue.code === 'unrecognized_keys') return describeUnknownKeys(path, doc, lc, schema, issue);
  const where = locate(doc, lc, issue.path);
  const field = issue.path.length > 0 ? issue.path.map(String).join('.') : '(top level)';
  return [`${path}:${where}: ${field}: ${issue.message.replace(/^Invalid input: /, '')}`];
}

/** One line per unknown key, at the key, with the nearest known key or the list of them. */
function describeUnknownKeys(
  path: string,
  doc: Doc,
  lc: LineCounter,
  schema: z.ZodType,
  issue: Issue & { code: 'unrecognized_keys' },
): string[] {
  const known = knownKeysAt(schema, issue.path);
  return issue.keys.map((key) => {
    const guess = nearest(key, known);
    const where = locate(doc, lc, issue.path, key);
    const field = [...issue.path.map(String), key].join('.');
    const hint =
      guess !== undefined
        ? ` (did you mean '${guess}'?)`
        : known.length > 0
          ? ` (known: ${known.join(', ')})`
          : '';
    return `${path}:${where}: ${field}: unknown key${hint}`;
  });
}

/**
 * A failed union: the issues of the branch the user meant, or what the branches accept when
 * none fits the value's shape; undefined when neither can be told (zod's message then).
 */
function describeUnion(
  path: string,
  doc: Doc,
  lc: LineCounter,
  schema: z.ZodType,
  issue: Issue & { code: 'invalid_union' },
): string[] | undefined {
  const unknownToAll = keysUnknownToEveryBranch(issue);
  if (unknownToAll.length > 0) {
    // A key no branch knows (a misspelt operation name in a one-key map): say so, with the
    // nearest name among every branch's keys.
    const unknown = { code: 'unrecognized_keys', keys: unknownToAll, path: issue.path, message: '' };
    return describeUnknownKeys(path, doc, lc, schema, unknown as Issue & { code: 'unrecognized_keys' });
  }
  const branch = pickUnionBranch(issue);
  if (branch !== undefined) {
    return unknownKeysFirst(branch).flatMap((e) =>
      describeIssue(path, doc, lc, schema, { ...e, path: [...issue.path, ...e.path] } as Issue),
    );
  }
  const expected = unionAlternatives(issue);
  if (expected === undefined) return undefined;
  const field = issue.path.length > 0 ? issue.path.map(String).join('.') : '(top level)';
  const value = doc.getIn(issue.path as unknown[]);
  const got = value === undefined ? 'nothing' : JSON.stringify(value);
  return [`${path}:${locate(doc, lc, issue.path)}: ${field}: expected ${expected}, got ${got}`];
}

/** Keys at the union's own level that every branch rejects as unknown. */
function keysUnknownToEveryBranch(issue: Issue & { code: 'invalid_union' }): string[] {
  let common: string[] | undefined;
  for (const branch of issue.errors) {
    const keys = branch.flatMap((e) => (e.code === 'unrecognized_keys' && e.path.length === 0 ? e.keys : []));
    common = common === undefined ? keys : common.filter((k) => keys.includes(k));
    if (common.length === 0) return [];
  }
  return common ?? [];
}

/**
 * The branch of a failed union the user most likely meant, as its issues: among the branches
 * whose errors reach inside the value (it had the branch's shape), the one with the fewest
 * keys that do not fit it (unknown, or required and missing), then the one whose errors go
 * deepest. Undefined when no branch fits the value's shape at all.
 */
function pickUnionBranch(issue: Issue & { code: 'invalid_union' }): Issue[] | undefined {
  let best: Issue[] | undefined;
  let bestMisfit = Number.POSITIVE_INFINITY;
  let bestDepth = 0;
  for (const branch of issue.errors) {
    let misfit = 0;
    let depth = 0;
    for (const e of branch) {
      if (e.code === 'unrecognized_keys') misfit += e.keys.length;
      else if (e.code === 'invalid_type' && / received undefined$/.test(e.message)) misfit++;
      depth = Math.max(depth, e.path.length + (e.code === 'unrecognized_keys' ? 1 : 0));
    }
    if (depth === 0) continue;
    if (misfit < bestMisfit || (misfit === bestMisfit && depth > bestDepth)) {
      best = branch;
      bestMisfit = misfit;
      bestDepth = depth;
    }
  }
  return best;
}

/** "1, 2, 4 or 8" / "number or string": what the branches of a union accept at its own level. */
function unionAlternatives(issue: Issue & { code: 'invalid_union' }): string | undefined {
  const alternatives: string[] = [];
  for (const branch of issue.errors) {
    for (const e of branch) {
      if (e.path.length > 0) continue;
      if (e.code === 'invalid_value') alternatives.push(...e.values.map((v) => JSON.stringify(v)));
      else if (e.code === 'invalid_type') alternatives.push(e.expected);
    }
  }
  const unique = [...new Set(alternatives)];
  if (unique.length === 0) return undefined;
  if (unique.length === 1) return unique[0];
  return `${unique.slice(0, -1).join(', ')} or ${unique.at(-1)}`;
}

/** "line:col" of the node at `path` (or of key `key` inside it); the nearest existing parent otherwise. */
function locate(doc: Doc, lc: LineCounter, path: PropertyKey[], key?: string): string {
  let node: unknown = doc.contents;
  let offset = (doc.contents as Node | null)?.range?.[0] ?? 0;
  for (const seg of path) {
    const child =
      isMap(node) || (node as { items?: unknown })?.items
        ? (node as { get: (k: unknown, keep: boolean) => unknown }).get(seg, true)
        : undefined;
    if (child === undefined || child === null) break;
    node = child;
    offset = (child as Node).range?.[0] ?? offset;
  }
  if (key !== undefined && isMap(node)) {
    const pair = node.items.find((p) => isScalar(p.key) && p.key.value === key);
    if (pair && isScalar(pair.key) && pair.key.range) offset = pair.key.range[0];
  }
  const pos = lc.linePos(offset);
  return `${pos.line}:${pos.col}`;
}

/** Keys of the object schema found at `path` inside `schema`. */
function knownKeysAt(schema: z.ZodType, path: PropertyKey[]): string[] {
  const found = new Set<string>();
  const visit = (s: unknown, rest: PropertyKey[]): void => {
    const def = (s as { _zod?: { def?: Record<string, unknown> } })?._zod?.def;
    if (def === undefined) return;
    switch (def.type) {
      case 'object': {
        const shape = def.shape as Record<string, unknown>;
        if (rest.length === 0) {
          for (const k of Object.keys(shape)) found.add(k);
          return;
        }
        visit(shape[String(rest[0])], rest.slice(1));
        return;
      }
      case 'array':
        if (rest.length > 0) visit(def.element, rest.slice(1));
        return;
      case 'record':
        if (rest.length > 0) visit(def.valueType, rest.slice(1));
        return;
      case 'union':
        for (const o of def.options as unknown[]) visit(o, rest);
        return;
      case 'optional':
      case 'nullable':
      case 'default':
      case 'prefault':
      case 'catch':
      case 'readonly':
        visit(def.innerType, rest);
        return;
      case 'pipe':
        visit(def.in, rest);
        return;
      case 'lazy':
        visit((def.getter as () => unknown)(), rest);
        return;
      default:
        return;
    }
  };
  visit(schema, path);
  return [...found].sort();
}

/** The known key closest to `word` by edit distance, if it is close enough to be a likely typo. */
export function nearest(word: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = editDistance(word.toLowerCase(), k.toLowerCase());
    if (d < bestDist) {
      best = k;
      bestDist = d;
    }
  }
  return best !== undefined && bestDist <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}
