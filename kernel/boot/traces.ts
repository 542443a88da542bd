/**
 * Memory-reference traces for `vmlab replay`, parsed into compact typed arrays.
 *
 * Formats. Blank lines and lines starting with `#` are skipped; a `#` after white space ends a
 * line (a comment). R/W columns take either case; a line without one is a read.
 * - lackey: valgrind `--tool=lackey --trace-mem=yes` output: `I  0023C790,2`, ` L BE80199C,4`,
 *   ` S BE80199C,4`, ` M 0025747C,1` (M is a load then a store). Lines starting `==` (valgrind's
 *   own messages) are skipped. Instruction fetches (I) are kept only when asked for.
 * - rw: byte addresses, one per line: R or W, then a hex address (`R 7ffd1234`, `W 0x7ffd1234`).
 * - pagenum: hex page numbers, one per line, `0x` optional, the R/W column optional and on either
 *   side: `1a3f`, `0x1A3F`, `R 1a3f`, `1a3f W`. The address of page N is N * pageBytes.
 * - pagenum-dec: the same with decimal page numbers: `6719`, `R 6719`, `6719 w`.
 * - pages: decimal page numbers for hand examples, `1,2,3w,4` (w marks a write, r a read),
 *   separated by commas, spaces or new lines; the address of page N is N * pageBytes.
 * gzip-compressed files (by their magic bytes) are accepted in every format.
 *
 * Auto-detection reads the whole file once, character by character (no string or regex per
 * line), and sorts each line by its shape: a lackey line; R/W then a number (`R 1a3f`); a number
 * then R/W (`1a3f W`); a bare number (`1a3f`, `0x1a3f`, `42`); a page list (`1,2,3w`). Then:
 *
 *   1. no reference at all: InputError. A line of none of these shapes: InputError at its line.
 *   2. lackey lines: lackey, when every line is one; otherwise the file mixes formats (InputError
 *      naming a line of each kind). So with every other kind below.
 *   3. page lists: pages, when the other lines are bare decimal numbers.
 *   4. bare numbers only: if any number has `0x` or a hex letter (a-f), pagenum; if every number
 *      is zero-padded to one width (`0012`, `0340`: printf `%04x` or `%04d`?), refuse; otherwise
 *      pages (decimal page numbers, as OSTEP's paging-policy.py address files are).
 *   5. an R/W column somewhere: every reading that fits every line is a candidate:
 *      - rw, when every line is R/W then a number (the address read as hex);
 *      - pagenum, when every number read as hex is a page of the format (< vaLimit / pageBytes);
 *      - pagenum-dec, when no number has `0x` or a hex letter and every one read as decimal is a
 *        page of the format.
 *      One candidate: that format. Several: refuse (InputError naming the file and the first
 *      reference line, listing the candidates and what each means). None: the likeliest
 *      reading, whose parse then names the line that does not fit.
 *
 * So an `R 7ffd12345678` trace (a value of 2^36 or more, on x86-64's 48-bit addresses and
 * 4 KiB pages) is rw, a `1a3f W` trace is pagenum, and an `R 1a3f` trace whose values all fit
 * as page numbers could be either and is refused until --trace-format says which.
 *
 * A malformed line stops the parse with an InputError naming the file, the line and the text;
 * so does an address or a page the paging format cannot hold.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { InputError } from './configfile.ts';

export type TraceFormat = 'lackey' | 'rw' | 'pagenum' | 'pagenum-dec' | 'pages';

/** Every trace format, in the order the help lists them. */
export const TRACE_FORMATS: readonly TraceFormat[] = ['lackey', 'rw', 'pagenum', 'pagenum-dec', 'pages'];

export const REF_READ = 0;
export const REF_WRITE = 1;
export const REF_FETCH = 2;

export interface Trace {
  format: TraceFormat;
  /** Virtual addresses, one per reference. */
  addresses: Float64Array;
  /** REF_READ, REF_WRITE or REF_FETCH per reference. */
  kinds: Uint8Array;
  length: number;
}

export interface TraceOptions {
  format?: TraceFormat | 'auto';
  pageBytes: number;
  /** Exclusive upper bound of virtual addresses (2^vaBits). */
  vaLimit: number;
  /** Keep lackey instruction fetches (I lines) as execute references. */
  includeInstructions?: boolean;
}

/**
 * Read and parse a trace file (gzip or plain). InputError naming the file when it cannot be
 * read or unzipped, and as parseTrace for its contents.
 */
export function loadTrace(path: string, options: TraceOptions): Trace {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (err) {
    throw new InputError(
      `${path}: cannot read the trace: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      raw = gunzipSync(raw);
    } catch (err) {
      throw new InputError(`${path}: not a valid gzip file: ${(err as Error).message}`);
    }
  }
  return parseTrace(path, raw.toString('latin1'), options);
}

/**
 * Parse trace text that came from `path`, in `options.format` or, for 'auto' (the default),
 * the format the detection rule above finds. InputError naming `path` and the line for a
 * malformed line, an address or page beyond the format, and an empty, mixed or ambiguous file.
 */
export function parseTrace(path: string, text: string, options: TraceOptions): Trace {
  const format =
    options.format === undefined || options.format === 'auto'
      ? detectFormat(path, text, options)
      : options.format;
  const builder = new TraceBuilder();
  if (format === 'pages') parsePages(path, text, options, builder);
  else parseLines(path, text, format, options, builder);
  if (builder.length === 0) {
    const hint =
      format === 'lackey' && options.includeInstructions !== true
        ? ' (instruction fetches, I lines, count only with --include-instructions)'
        : '';
    throw new InputError(`${path}: the trace holds no reference${hint}`);
  }
  return builder.finish(format);
}

// ---- characters ----

const CH_TAB = 9;
const CH_CR = 13;
const CH_SPACE = 32;
const CH_HASH = 35;
const CH_COMMA = 44;
const CH_ZERO = 48;
const CH_NINE = 57;
const CH_EQUALS = 61;

function isBlank(c: number): boolean {
  return c === CH_SPACE || c === CH_TAB || c === CH_CR;
}

/** 0..15 for a hex digit's code, -1 otherwise. */
function hexDigit(c: number): number {
  if (c >= CH_ZERO && c <= CH_NINE) return c - CH_ZERO;
  const lower = c | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

function isDecimalDigit(c: number): boolean {
  return c >= CH_ZERO && c <= CH_NINE;
}

/** R, W, r or w: the code upper-cased; 0 otherwise. */
function rwOp(c: number): number {
  const upper = c & ~0x20;
  return upper === 0x52 || upper === 0x57 ? upper : 0;
}

/** I, L, S or M (valgrind's upper-case operation letters); 0 otherwise. */
function lackeyOp(c: number): number {
  return c === 0x49 || c === 0x4c || c === 0x53 || c === 0x4d ? c : 0;
}

const OP_WRITE = 0x57;
const OP_FETCH = 0x49;
const OP_STORE = 0x53;
const OP_MODIFY = 0x4d;

function skipBlanks(text: string, i: number, end: number): number {
  while (i < end && isBlank(text.charCodeAt(i))) i++;
  return i;
}

/** Does the line end at `i` (maybe after blanks), or does a comment start there after blanks? */
function endsAt(text: string, i: number, end: number): boolean {
  const j = skipBlanks(text, i, end);
  return j === end || (j > i && text.charCodeAt(j) === CH_HASH);
}

/** The value of the hex digits in [start, end) (beyond 2^53: imprecise, but as large). */
function hexValue(text: string, start: number, end: number): number {
  let v = 0;
  for (let i = start; i < end; i++) v = v * 16 + hexDigit(text.charCodeAt(i));
  return v;
}

/** The value of the decimal digits in [start, end). */
function decimalValue(text: string, start: number, end: number): number {
  let v = 0;
  for (let i = start; i < end; i++) v = v * 10 + (text.charCodeAt(i) - CH_ZERO);
  return v;
}

// ---- line shapes ----

const SHAPE_BLANK = 0;
const SHAPE_VALGRIND = 1;
const SHAPE_LACKEY = 2;
const SHAPE_OP_NUMBER = 3;
const SHAPE_NUMBER_OP = 4;
const SHAPE_NUMBER = 5;
const SHAPE_LIST = 6;
const SHAPE_NONE = 7;
const SHAPE_COUNT = 8;

const SHAPE_WORDS = [
  'blank',
  "a valgrind message ('==')",
  'a valgrind lackey line',
  'R/W then a number',
  'a number then R/W',
  'a bare number',
  'a page list (the pages format)',
  'unreadable',
];

/**
 * What one line holds, found without allocating (one object reused for every line):
 *   shape in SHAPE_*; for the number shapes and lackey, the digits are text[digitsStart,
 *   digitsEnd) (after any 0x), and op is the upper-cased operation letter (0: none).
 */
class LineScan {
  shape = SHAPE_BLANK;
  op = 0;
  digitsStart = 0;
  digitsEnd = 0;
  /** The number had a 0x prefix. */
  prefixed = false;
  /** The number had a hex letter (a-f). */
  letters = false;

  /** Sort the line text[start, end) (no new line inside) into a shape. */
  read(text: string, start: number, end: number): void {
    this.op = 0;
    this.shape = this.shapeOf(text, start, end);
  }

  private shapeOf(text: string, start: number, end: number): number {
    const i = skipBlanks(text, start, end);
    if (i === end || text.charCodeAt(i) === CH_HASH) return SHAPE_BLANK;
    const c = text.charCodeAt(i);
    if (c === CH_EQUALS && text.charCodeAt(i + 1) === CH_EQUALS) return SHAPE_VALGRIND;
    if (i + 1 < end && isBlank(text.charCodeAt(i + 1))) {
      if (lackeyOp(c) !== 0 && this.readLackey(text, i, end)) return SHAPE_LACKEY;
      if (rwOp(c) !== 0 && this.readOpNumber(text, i, end)) return SHAPE_OP_NUMBER;
    }
    const k = this.readNumber(text, i, end);
    if (k >= 0) {
      if (endsAt(text, k, end)) return SHAPE_NUMBER;
      const j = skipBlanks(text, k, end);
      const op = rwOp(text.charCodeAt(j));
      if (j > k && op !== 0 && endsAtOrBlank(text, j + 1, end)) {
        this.op = op;
        return SHAPE_NUMBER_OP;
      }
    }
    const tokens = pageListTokens(text, i, end, null);
    return tokens > 0 ? SHAPE_LIST : tokens === 0 ? SHAPE_BLANK : SHAPE_NONE;
  }

  /** `L hex,size`: true, with the address digits and op recorded. */
  private readLackey(text: string, i: number, end: number): boolean {
    const j = skipBlanks(text, i + 1, end);
    let k = j;
    while (k < end && hexDigit(text.charCodeAt(k)) >= 0) k++;
    if (k === j || text.charCodeAt(k) !== CH_COMMA) return false;
    let m = k + 1;
    while (m < end && isDecimalDigit(text.charCodeAt(m))) m++;
    if (m === k + 1 || !endsAt(text, m, end)) return false;
    this.op = text.charCodeAt(i);
    this.digitsStart = j;
    this.digitsEnd = k;
    return true;
  }

  /** `R number`: true, with the number and op recorded. */
  private readOpNumber(text: string, i: number, end: number): boolean {
    const k = this.readNumber(text, skipBlanks(text, i + 1, end), end);
    if (k < 0 || !endsAt(text, k, end)) return false;
    this.op = rwOp(text.charCodeAt(i));
    return true;
  }

  /** A number at i (0x optional, hex digits): the index after it, or -1. */
  private readNumber(text: string, i: number, end: number): number {
    let start = i;
    this.prefixed = false;
    if (
      text.charCodeAt(i) === CH_ZERO &&
      (text.charCodeAt(i + 1) | 0x20) === 0x78 &&
      i + 2 < end &&
      hexDigit(text.charCodeAt(i + 2)) >= 0
    ) {
      start = i + 2;
      this.prefixed = true;
    }
    let k = start;
    let letters = false;
    for (; k < end; k++) {
      const d = hexDigit(text.charCodeAt(k));
      if (d < 0) break;
      if (d > 9) letters = true;
    }
    if (k === start) return -1;
    this.digitsStart = start;
    this.digitsEnd = k;
    this.letters = letters;
    return k;
  }
}

/** Like endsAt, but also true at the end of the line itself (after an op letter). */
function endsAtOrBlank(text: string, i: number, end: number): boolean {
  return i === end || (isBlank(text.charCodeAt(i)) && endsAt(text, i, end));
}

/**
 * The page tokens (`3`, `3w`, `3r`) of a pages-format line text[start, end), separated by
 * commas and blanks, up to a `#`: how many there are, or -1 when one is malformed (its start
 * is then in badToken.start). `visit` (when given) gets each token's digits and write mark.
 */
function pageListTokens(
  text: string,
  start: number,
  end: number,
  visit: ((digitsStart: number, digitsEnd: number, kind: number) => void) | null,
): number {
  let n = 0;
  let i = start;
  for (;;) {
    while (i < end && (isBlank(text.charCodeAt(i)) || text.charCodeAt(i) === CH_COMMA)) i++;
    if (i === end || text.charCodeAt(i) === CH_HASH) return n;
    const t = i;
    while (i < end && isDecimalDigit(text.charCodeAt(i))) i++;
    const digitsEnd = i;
    const op = rwOp(text.charCodeAt(i));
    if (digitsEnd > t && op !== 0) i++;
    const c = text.charCodeAt(i);
    if (digitsEnd === t || (i < end && !isBlank(c) && c !== CH_COMMA && c !== CH_HASH)) {
      badToken.start = t;
      return -1;
    }
    visit?.(t, digitsEnd, op === OP_WRITE ? REF_WRITE : REF_READ);
    n++;
  }
}

/** Where pageListTokens found a malformed token. */
const badToken = { start: 0 };

/** Calls `line(start, end, lineNumber)` for each line of `text` (its new line excluded). */
function forEachLine(text: string, line: (start: number, end: number, lineNumber: number) => void): void {
  const n = text.length;
  let s = 0;
  for (let lineNumber = 1; s <= n; lineNumber++) {
    let e = text.indexOf('\n', s);
    if (e < 0) e = n;
    line(s, e, lineNumber);
    s = e + 1;
  }
}

/** A line's text for a message: trimmed, at most `max` characters. */
function lineText(text: string, start: number, end: number, max = 80): string {
  return text.slice(start, end).trim().slice(0, max);
}

// ---- detection ----

/**
 * What a whole file holds, line shape by line shape, for the detection rule.
 *   count[s] == lines of shape s;  first[s] == the first such line's number (0: none)
 *   hexLine: the first number line with 0x or a hex letter (0: none)
 *   maxHex, maxDecimal: the largest number read as hex, and as decimal over the numbers that
 *   are decimal digits only (-1: none)
 *   width: the digit count shared by every bare number (0: none yet, -1: they differ);
 *   padded: some bare number of two digits or more starts with 0
 */
class Evidence {
  readonly count = new Float64Array(SHAPE_COUNT);
  readonly first = new Float64Array(SHAPE_COUNT);
  readonly firstStart = new Float64Array(SHAPE_COUNT);
  readonly firstEnd = new Float64Array(SHAPE_COUNT);
  references = 0;
  firstReference = 0;
  firstReferenceStart = 0;
  firstReferenceEnd = 0;
  hexLine = 0;
  hexStart = 0;
  hexEnd = 0;
  maxHex = -1;
  maxDecimal = -1;
  width = 0;
  padded = false;

  /** Count one line of shape `scan.shape`. */
  add(text: string, scan: LineScan, where: { start: number; end: number; line: number }): void {
    const shape = scan.shape;
    if (this.count[shape]++ === 0) {
      this.first[shape] = where.line;
      this.firstStart[shape] = where.start;
      this.firstEnd[shape] = where.end;
    }
    if (shape === SHAPE_BLANK || shape === SHAPE_VALGRIND) return;
    if (this.references++ === 0) {
      this.firstReference = where.line;
      this.firstReferenceStart = where.start;
      this.firstReferenceEnd = where.end;
    }
    if (shape === SHAPE_OP_NUMBER || shape === SHAPE_NUMBER_OP || shape === SHAPE_NUMBER)
      this.addNumber(text, scan, where);
  }

  private addNumber(text: string, scan: LineScan, where: { start: number; end: number; line: number }): void {
    const { digitsStart: s, digitsEnd: e } = scan;
    this.maxHex = Math.max(this.maxHex, hexValue(text, s, e));
    if (scan.prefixed || scan.letters) {
      if (this.hexLine === 0) {
        this.hexLine = where.line;
        this.hexStart = where.start;
        this.hexEnd = where.end;
      }
    } else {
      this.maxDecimal = Math.max(this.maxDecimal, decimalValue(text, s, e));
    }
    if (scan.shape !== SHAPE_NUMBER) return;
    const w = e - s;
    if (this.width === 0) this.width = w;
    else if (this.width !== w) this.width = -1;
    if (w >= 2 && text.charCodeAt(s) === CH_ZERO) this.padded = true;
  }
}

function detectFormat(path: string, text: string, options: TraceOptions): TraceFormat {
  const scan = new LineScan();
  const evidence = new Evidence();
  const where = { start: 0, end: 0, line: 0 };
  forEachLine(text, (start, end, line) => {
    scan.read(text, start, end);
    if (scan.shape === SHAPE_NONE) {
      throw new InputError(
        `${path}:${line}: cannot tell the trace format from '${lineText(text, start, end, 60)}': not a line of any format (${TRACE_FORMATS.join(', ')}; see --trace-format)`,
      );
    }
    where.start = start;
    where.end = end;
    where.line = line;
    evidence.add(text, scan, where);
  });
  return decideFormat(path, text, evidence, options);
}

/** The detection rule (steps 1 to 5 of the header) over a whole file's evidence. */
function decideFormat(path: string, text: string, ev: Evidence, options: TraceOptions): TraceFormat {
  if (ev.references === 0) throw new InputError(`${path}: the trace holds no reference`);
  const c = ev.count;
  if (c[SHAPE_LACKEY]! > 0) {
    if (c[SHAPE_LACKEY] === ev.references) return 'lackey';
    throw mixedFormats(path, text, ev, SHAPE_LACKEY, firstOtherShape(ev, [SHAPE_LACKEY]));
  }
  if (c[SHAPE_LIST]! > 0) return pagesOrMixed(path, text, ev);
  if (c[SHAPE_OP_NUMBER] === 0 && c[SHAPE_NUMBER_OP] === 0) return bareNumbers(path, text, ev, options);
  return numberColumns(path, text, ev, options);
}

/** Step 3: page lists with, at most, bare decimal numbers beside them. */
function pagesOrMixed(path: string, text: string, ev: Evidence): TraceFormat {
  const other = firstOtherShape(ev, [SHAPE_LIST, SHAPE_NUMBER]);
  if (other !== SHAPE_NONE) throw mixedFormats(path, text, ev, SHAPE_LIST, other);
  if (ev.hexLine !== 0) {
    throw new InputError(
      `${path}: mixes trace formats: line ${ev.first[SHAPE_LIST]} '${lineText(text, ev.firstStart[SHAPE_LIST]!, ev.firstEnd[SHAPE_LIST]!)}' is a page list (pages, decimal), line ${ev.hexLine} '${lineText(text, ev.hexStart, ev.hexEnd)}' a hex number; give --trace-format to read it one way, and see which lines it refuses`,
    );
  }
  return 'pages';
}

/** Step 4: only bare numbers, one per line. */
function bareNumbers(path: string, text: string, ev: Evidence, options: TraceOptions): TraceFormat {
  if (ev.hexLine !== 0) return 'pagenum';
  if (ev.width >= 2 && ev.padded) {
    throw ambiguous(path, text, ev, ['pagenum', 'pagenum-dec'], options, [
      `every number is zero-padded to ${ev.width} digits and none has 0x or a hex letter, so they could be hex or decimal`,
    ]);
  }
  return 'pages';
}

/** Step 5: an R/W column on some line: the readings that fit every line. */
function numberColumns(path: string, text: string, ev: Evidence, options: TraceOptions): TraceFormat {
  const pageLimit = pageLimitOf(options);
  const rwShaped = ev.count[SHAPE_OP_NUMBER] === ev.references;
  const decimalPossible = ev.hexLine === 0;
  const candidates: TraceFormat[] = [];
  if (rwShaped) candidates.push('rw');
  if (ev.maxHex < pageLimit) candidates.push('pagenum');
  if (decimalPossible && ev.maxDecimal < pageLimit) candidates.push('pagenum-dec');
  if (candidates.length === 1) return candidates[0]!;
  if (candidates.length === 0) return rwShaped ? 'rw' : decimalPossible ? 'pagenum-dec' : 'pagenum';
  throw ambiguous(path, text, ev, candidates, options, ambiguityReasons(candidates, pageLimit, options));
}

/** Why each pair of candidate readings both fit, in words. */
function ambiguityReasons(candidates: TraceFormat[], pageLimit: number, options: TraceOptions): string[] {
  const has = (f: TraceFormat) => candidates.includes(f);
  const limit = `0x${pageLimit.toString(16)} (the number of ${options.pageBytes}-byte pages in the format's address space)`;
  const reasons: string[] = [];
  if (has('rw') && has('pagenum'))
    reasons.push(`every value is below ${limit}, so each could be a byte address or a page number`);
  if (has('rw') && has('pagenum-dec') && !has('pagenum'))
    reasons.push(
      `no number has 0x or a hex letter, and read as decimal every one is below ${limit}, so each could be a hex byte address or a decimal page number`,
    );
  if (has('pagenum') && has('pagenum-dec'))
    reasons.push('no number has 0x or a hex letter, so they could be hex or decimal');
  return reasons;
}

/** The refusal of a file that reads more than one way: the candidates and what each means. */
function ambiguous(
  path: string,
  text: string,
  ev: Evidence,
  candidates: TraceFormat[],
  options: TraceOptions,
  reasons: string[],
): InputError {
  const meaning: Record<string, string> = {
    rw: `R/W, then a hex byte address (its page is the address / ${options.pageBytes})`,
    pagenum: `hex page numbers, R/W optional on either side (the address is page * ${options.pageBytes})`,
    'pagenum-dec': `decimal page numbers, R/W optional on either side (the address is page * ${options.pageBytes})`,
  };
  const first = lineText(text, ev.firstReferenceStart, ev.firstReferenceEnd, 60);
  return new InputError(
    `${path}:${ev.firstReference}: cannot tell how to read '${first}': ${reasons.join('; ')}. Give one of:\n${candidates
      .map((f) => `  --trace-format ${f.padEnd(12)} ${meaning[f]}`)
      .join('\n')}`,
  );
}

/** The shape of the first reference line whose shape is not in `allowed` (SHAPE_NONE: none). */
function firstOtherShape(ev: Evidence, allowed: number[]): number {
  let best = SHAPE_NONE;
  for (const s of [SHAPE_LACKEY, SHAPE_OP_NUMBER, SHAPE_NUMBER_OP, SHAPE_NUMBER, SHAPE_LIST]) {
    if (allowed.includes(s) || ev.count[s] === 0) continue;
    if (best === SHAPE_NONE || ev.first[s]! < ev.first[best]!) best = s;
  }
  return best;
}

function mixedFormats(path: string, text: string, ev: Evidence, a: number, b: number): InputError {
  const [x, y] = ev.first[a]! < ev.first[b]! ? [a, b] : [b, a];
  const show = (s: number) =>
    `line ${ev.first[s]} '${lineText(text, ev.firstStart[s]!, ev.firstEnd[s]!, 60)}' is ${SHAPE_WORDS[s]}`;
  return new InputError(
    `${path}: mixes trace formats: ${show(x)}, ${show(y)}; give --trace-format to read it one way, and see which lines it refuses`,
  );
}

/** Pages in the format's address space: a page number must be below this. */
function pageLimitOf(options: TraceOptions): number {
  return Math.floor(options.vaLimit / options.pageBytes);
}

// ---- parsing ----

class TraceBuilder {
  addresses = new Float64Array(1024);
  kinds = new Uint8Array(1024);
  length = 0;

  push(address: number, kind: number): void {
    if (this.length === this.addresses.length) {
      const a = new Float64Array(this.length * 2);
      a.set(this.addresses);
      this.addresses = a;
      const k = new Uint8Array(this.length * 2);
      k.set(this.kinds);
      this.kinds = k;
    }
    this.addresses[this.length] = address;
    this.kinds[this.length] = kind;
    this.length++;
  }

  finish(format: TraceFormat): Trace {
    return {
      format,
      addresses: this.addresses.subarray(0, this.length),
      kinds: this.kinds.subarray(0, this.length),
      length: this.length,
    };
  }
}

/** What each line format expects, for the message refusing a line. */
const EXPECTED: Record<Exclude<TraceFormat, 'pages'>, string> = {
  lackey: "expected ' L addr,size', ' S addr,size', ' M addr,size' or 'I  addr,size'",
  rw: 'expected R or W, then a hex byte address',
  pagenum: "expected a hex page number, R/W optional on either side ('1a3f', 'R 0x1a3f', '1a3f W')",
  'pagenum-dec': "expected a decimal page number, R/W optional on either side ('6719', 'R 6719', '6719 W')",
};

function parseLines(
  path: string,
  text: string,
  format: Exclude<TraceFormat, 'pages'>,
  options: TraceOptions,
  out: TraceBuilder,
): void {
  const scan = new LineScan();
  const pageLimit = pageLimitOf(options);
  forEachLine(text, (start, end, line) => {
    scan.read(text, start, end);
    const shape = scan.shape;
    if (shape === SHAPE_BLANK || (shape === SHAPE_VALGRIND && format === 'lackey')) return;
    if (!shapeFits(format, shape))
      throw new InputError(
        `${path}:${line}: not a ${format} trace line: '${lineText(text, start, end)}' (${EXPECTED[format]})`,
      );
    if (format === 'lackey') pushLackey(path, line, text, scan, options, out);
    else if (format === 'rw') out.push(hexAddress(path, line, text, scan, options), kindOf(scan.op));
    else {
      const page = pageNumber(path, line, text, scan, format, pageLimit);
      out.push(page * options.pageBytes, kindOf(scan.op));
    }
  });
}

function shapeFits(format: Exclude<TraceFormat, 'pages'>, shape: number): boolean {
  if (format === 'lackey') return shape === SHAPE_LACKEY;
  if (format === 'rw') return shape === SHAPE_OP_NUMBER;
  return shape === SHAPE_OP_NUMBER || shape === SHAPE_NUMBER_OP || shape === SHAPE_NUMBER;
}

function kindOf(op: number): number {
  return op === OP_WRITE ? REF_WRITE : REF_READ;
}

function pushLackey(
  path: string,
  line: number,
  text: string,
  scan: LineScan,
  options: TraceOptions,
  out: TraceBuilder,
): void {
  const address = hexAddress(path, line, text, scan, options);
  const op = scan.op;
  if (op === OP_FETCH) {
    if (options.includeInstructions) out.push(address, REF_FETCH);
  } else if (op === OP_STORE) {
    out.push(address, REF_WRITE);
  } else if (op === OP_MODIFY) {
    out.push(address, REF_READ);
    out.push(address, REF_WRITE);
  } else {
    out.push(address, REF_READ);
  }
}

/** The line's number as a hex byte address; InputError when the format cannot hold it. */
function hexAddress(path: string, line: number, text: string, scan: LineScan, options: TraceOptions): number {
  const v = hexValue(text, scan.digitsStart, scan.digitsEnd);
  if (!Number.isSafeInteger(v) || v >= options.vaLimit) {
    throw new InputError(
      `${path}:${line}: address 0x${text.slice(scan.digitsStart, scan.digitsEnd)} does not fit the format's virtual addresses`,
    );
  }
  return v;
}

/** The line's number as a page number (hex or decimal); InputError when it is not a page of the format. */
function pageNumber(
  path: string,
  line: number,
  text: string,
  scan: LineScan,
  format: 'pagenum' | 'pagenum-dec',
  pageLimit: number,
): number {
  const digits = text.slice(scan.digitsStart, scan.digitsEnd);
  if (format === 'pagenum-dec' && (scan.prefixed || scan.letters)) {
    throw new InputError(
      `${path}:${line}: '${scan.prefixed ? '0x' : ''}${digits}' is not a decimal page number (pagenum-dec; hex page numbers are --trace-format pagenum)`,
    );
  }
  const page =
    format === 'pagenum'
      ? hexValue(text, scan.digitsStart, scan.digitsEnd)
      : decimalValue(text, scan.digitsStart, scan.digitsEnd);
  if (page >= pageLimit) {
    const shown = format === 'pagenum' ? `0x${digits}` : digits;
    throw new InputError(
      `${path}:${line}: page ${shown} is beyond the format's virtual address space (pages below 0x${pageLimit.toString(16)})`,
    );
  }
  return page;
}

function parsePages(path: string, text: string, options: TraceOptions, out: TraceBuilder): void {
  const pageLimit = pageLimitOf(options);
  let lineNumber = 0;
  const visit = (digitsStart: number, digitsEnd: number, kind: number): void => {
    const page = decimalValue(text, digitsStart, digitsEnd);
    if (page >= pageLimit) {
      throw new InputError(
        `${path}:${lineNumber}: page ${text.slice(digitsStart, digitsEnd)} is beyond the format's virtual address space`,
      );
    }
    out.push(page * options.pageBytes, kind);
  };
  forEachLine(text, (start, end, line) => {
    lineNumber = line;
    if (pageListTokens(text, start, end, visit) >= 0) return;
    let e = badToken.start;
    while (e < end && !isBlank(text.charCodeAt(e)) && text.charCodeAt(e) !== CH_COMMA) e++;
    throw new InputError(
      `${path}:${line}: '${text.slice(badToken.start, e)}' is not a page number (like 3 or 3w)`,
    );
  });
}
