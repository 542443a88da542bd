/**
 * Memory-reference traces for `vmlab replay`, parsed into compact typed arrays.
 *
 * Formats:
 * - lackey: valgrind `--tool=lackey --trace-mem=yes` output: `I  0023C790,2`, ` L BE80199C,4`,
 *   ` S BE80199C,4`, ` M 0025747C,1` (M is a load then a store). Lines starting `==` (valgrind's
 *   own messages) are skipped. Instruction fetches (I) are kept only when asked for.
 * - rw: one reference per line, `R 7ffd1234` or `W 0x7ffd1234` (hex address).
 * - pages: page numbers for hand examples, `1,2,3w,4` (w marks a write), separated by commas,
 *   spaces or new lines; the address of page N is N * pageBytes.
 * gzip-compressed files (by their magic bytes) are accepted in every format.
 *
 * A malformed line stops the parse with an InputError naming the file, the line and the text;
 * so does an address the paging format cannot hold.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { InputError } from './configfile.ts';

export type TraceFormat = 'lackey' | 'rw' | 'pages';

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

/** Read and parse a trace file. */
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

/** Parse trace text that came from `path`. */
export function parseTrace(path: string, text: string, options: TraceOptions): Trace {
  const format =
    options.format === undefined || options.format === 'auto' ? detectFormat(path, text) : options.format;
  const builder = new TraceBuilder();
  if (format === 'pages') parsePages(path, text, options, builder);
  else parseLines(path, text, format, options, builder);
  return builder.finish(format);
}

function detectFormat(path: string, text: string): TraceFormat {
  for (const raw of text.split('\n', 200)) {
    const line = raw.trimEnd();
    if (line.trim() === '' || line.startsWith('==') || line.startsWith('#')) continue;
    if (/^\s*[ILSM]\s+[0-9a-fA-F]+,\d+/.test(line)) return 'lackey';
    if (/^\s*[RWrw]\s+(0x)?[0-9a-fA-F]+\s*$/.test(line)) return 'rw';
    if (/^\s*\d+[wWrR]?(\s*[,\s]\s*\d+[wWrR]?)*\s*,?\s*$/.test(line)) return 'pages';
    throw new InputError(
      `${path}: cannot tell the trace format from '${line.trim().slice(0, 60)}' (use --trace-format)`,
    );
  }
  throw new InputError(`${path}: the trace holds no reference`);
}

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

function parseLines(
  path: string,
  text: string,
  format: 'lackey' | 'rw',
  options: TraceOptions,
  out: TraceBuilder,
): void {
  const lines = text.split('\n');
  const lackey = /^\s*([ILSM])\s+([0-9a-fA-F]+),(\d+)\s*$/;
  const rw = /^\s*([RWrw])\s+(?:0x)?([0-9a-fA-F]+)\s*$/;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line.trim() === '' || line.startsWith('#') || (format === 'lackey' && line.startsWith('==')))
      continue;
    const m = (format === 'lackey' ? lackey : rw).exec(line);
    if (m === null) {
      throw new InputError(`${path}:${i + 1}: not a ${format} trace line: '${line.trim().slice(0, 80)}'`);
    }
    const address = hexAddress(path, i + 1, m[2]!, options);
    const op = m[1]!.toUpperCase();
    if (op === 'I') {
      if (options.includeInstructions) out.push(address, REF_FETCH);
    } else if (op === 'L' || op === 'R') {
      out.push(address, REF_READ);
    } else if (op === 'S' || op === 'W') {
      out.push(address, REF_WRITE);
    } else {
      out.push(address, REF_READ);
      out.push(address, REF_WRITE);
    }
  }
}

function parsePages(path: string, text: string, options: TraceOptions, out: TraceBuilder): void {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/#.*/, '');
    for (const token of line.split(/[\s,]+/)) {
      if (token === '') continue;
      const m = /^(\d+)([wWrR]?)$/.exec(token);
      if (m === null)
        throw new InputError(`${path}:${i + 1}: '${token}' is not a page number (like 3 or 3w)`);
      const page = Number(m[1]);
      const address = page * options.pageBytes;
      if (!Number.isSafeInteger(address) || address >= options.vaLimit) {
        throw new InputError(`${path}:${i + 1}: page ${m[1]} is beyond the format's virtual address space`);
      }
      out.push(address, m[2]!.toLowerCase() === 'w' ? REF_WRITE : REF_READ);
    }
  }
}

function hexAddress(path: string, line: number, hex: string, options: TraceOptions): number {
  const v = Number.parseInt(hex, 16);
  if (!Number.isSafeInteger(v) || v >= options.vaLimit) {
    throw new InputError(`${path}:${line}: address 0x${hex} does not fit the format's virtual addresses`);
  }
  return v;
}
