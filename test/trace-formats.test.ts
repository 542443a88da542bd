/**
 * Trace formats and their detection (kernel/boot/traces.ts): one stream of page numbers written
 * in every format gives the same references and the same faults, equal to a plain LRU/FIFO
 * model; auto-detection refuses what could be read two ways; hostile files are refused with
 * the file and line.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { replayTrace } from '../kernel/boot/replay.ts';
import {
  loadTrace,
  parseTrace,
  REF_READ,
  REF_WRITE,
  type Trace,
  type TraceFormat,
} from '../kernel/boot/traces.ts';

const dir = mkdtempSync(join(tmpdir(), 'vmlab-traces-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PAGE = 4096;
/** x86-64: 48-bit addresses, so 2^36 pages of 4 KiB. */
const X86 = { pageBytes: PAGE, vaLimit: 2 ** 48 };
const PAGE_LIMIT = 2 ** 36;
const cli = join(process.cwd(), 'kernel/boot/vmlab.mjs');

/** mulberry32: a seeded generator for the test's own streams (not the kernel's). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** LRU faults with `frames` frames, by the textbook rule on a plain array (MRU at the end). */
function lruFaults(pages: readonly number[], frames: number): number {
  const mem: number[] = [];
  let faults = 0;
  for (const p of pages) {
    const at = mem.indexOf(p);
    if (at >= 0) mem.splice(at, 1);
    else {
      faults++;
      if (mem.length === frames) mem.shift();
    }
    mem.push(p);
  }
  return faults;
}

/** FIFO faults with `frames` frames (load order at the end). */
function fifoFaults(pages: readonly number[], frames: number): number {
  const mem: number[] = [];
  let faults = 0;
  for (const p of pages) {
    if (mem.includes(p)) continue;
    faults++;
    if (mem.length === frames) mem.shift();
    mem.push(p);
  }
  return faults;
}

/**
 * A stream with locality: 70% of references to 24 hot pages, the rest to pages up to 2^20
 * (hex letters appear), a third of them writes.
 */
function stream(count: number, seed: number): { pages: number[]; writes: boolean[] } {
  const r = rng(seed);
  const hot = Array.from({ length: 24 }, () => Math.floor(r() * 2 ** 20));
  const pages: number[] = [];
  const writes: boolean[] = [];
  for (let i = 0; i < count; i++) {
    pages.push(r() < 0.7 ? hot[Math.floor(r() * hot.length)]! : Math.floor(r() * 2 ** 20));
    writes.push(r() < 1 / 3);
  }
  return { pages, writes };
}

const op = (w: boolean, lower: boolean) => (w ? (lower ? 'w' : 'W') : lower ? 'r' : 'R');

/** The stream written in each format, with its variations (0x, case, R/W side). */
function writeForms(s: { pages: number[]; writes: boolean[] }, seed: number): Record<string, string> {
  const r = rng(seed);
  const { pages, writes } = s;
  const lines = (f: (p: number, w: boolean, i: number) => string) =>
    `${pages.map((p, i) => f(p, writes[i]!, i)).join('\n')}\n`;
  const hex = (p: number) => {
    const h = p.toString(16);
    const cased = r() < 0.5 ? h : h.toUpperCase();
    return r() < 0.3 ? `0x${cased}` : cased;
  };
  return {
    'pagenum, R/W first': lines((p, w) => `${op(w, r() < 0.3)} ${hex(p)}`),
    'pagenum, R/W last': lines((p, w) => `${hex(p)}\t${op(w, r() < 0.3)}`),
    'pagenum, R/W either side': lines((p, w) =>
      r() < 0.5 ? `${op(w, false)} ${hex(p)}` : `${hex(p)} ${op(w, false)}`,
    ),
    'pagenum, no R/W': lines((p) => hex(p)),
    'pagenum-dec, R/W either side': lines((p, w) =>
      r() < 0.5 ? `${op(w, r() < 0.5)} ${p}` : `${p} ${op(w, false)}`,
    ),
    'pagenum-dec, no R/W': lines((p) => String(p)),
    pages: pages
      .map((p, i) => `${p}${writes[i] ? 'w' : ''}`)
      .join(',')
      .replace(/((?:[^,]*,){19}[^,]*),/g, '$1\n'),
    'rw (byte addresses)': lines(
      (p, w) => `${op(w, false)} ${r() < 0.5 ? '0x' : ''}${(p * PAGE + Math.floor(r() * PAGE)).toString(16)}`,
    ),
    lackey: lines(
      (p, w) => `${w ? ' S' : ' L'} ${(p * PAGE + Math.floor(r() * PAGE)).toString(16).padStart(8, '0')},4`,
    ),
  };
}

const FORMAT_OF: Record<string, TraceFormat> = {
  'pagenum, R/W first': 'pagenum',
  'pagenum, R/W last': 'pagenum',
  'pagenum, R/W either side': 'pagenum',
  'pagenum, no R/W': 'pagenum',
  'pagenum-dec, R/W either side': 'pagenum-dec',
  'pagenum-dec, no R/W': 'pagenum-dec',
  pages: 'pages',
  'rw (byte addresses)': 'rw',
  lackey: 'lackey',
};

const pagesOf = (t: Trace) => Array.from(t.addresses, (a) => Math.floor(a / PAGE));

function replay(trace: Trace, frames: number, policy: string) {
  return replayTrace({ trace, frames, policy, machine: { memoryBytes: 64 * 1024 * 1024 } });
}

describe('one stream in every format', () => {
  const s = stream(2500, 1);
  const forms = writeForms(s, 2);

  it('parses to the same page numbers (and R/W where the format has it) in every format', () => {
    for (const [name, text] of Object.entries(forms)) {
      const t = parseTrace(name, text, { ...X86, format: FORMAT_OF[name] });
      expect(pagesOf(t), name).toEqual(s.pages);
      if (!name.includes('no R/W'))
        expect(Array.from(t.kinds), name).toEqual(s.writes.map((w) => (w ? REF_WRITE : REF_READ)));
      else
        expect(
          t.kinds.every((k) => k === REF_READ),
          name,
        ).toBe(true);
    }
  });

  it('replays to equal fault counts, equal to a plain LRU and FIFO model', () => {
    const lru = lruFaults(s.pages, 12);
    const fifo = fifoFaults(s.pages, 12);
    expect(lru).toBeGreaterThan(500); // the cold references miss
    for (const [name, text] of Object.entries(forms)) {
      const t = parseTrace(name, text, { ...X86, format: FORMAT_OF[name] });
      expect(replay(t, 12, 'lru').faults, `${name} lru`).toBe(lru);
      expect(replay(t, 12, 'fifo').faults, `${name} fifo`).toBe(fifo);
    }
  });

  it('auto-detects every form that reads only one way, and refuses R/W-first page numbers', () => {
    const auto = (name: string) => parseTrace(name, forms[name]!, X86).format;
    expect(auto('pagenum, R/W last')).toBe('pagenum');
    expect(auto('pagenum, R/W either side')).toBe('pagenum');
    expect(auto('pagenum, no R/W')).toBe('pagenum');
    expect(auto('pages')).toBe('pages');
    expect(auto('pagenum-dec, no R/W')).toBe('pages'); // bare decimal numbers: OSTEP's address files
    expect(auto('lackey')).toBe('lackey');
    // Byte addresses below 2^32: every one could be a page number as well.
    expect(() => auto('rw (byte addresses)')).toThrow(/could be a byte address or a page number/);
    expect(() => auto('pagenum, R/W first')).toThrow(
      /^pagenum, R\/W first:1: cannot tell how to read '.*'[\s\S]*--trace-format rw [\s\S]*--trace-format pagenum /,
    );
    // The same addresses in a stack-like region above 2^36: only byte addresses.
    const high = s.pages
      .map((p, i) => `${op(s.writes[i]!, false)} ${(0x7f0000000000 + p * PAGE).toString(16)}`)
      .join('\n');
    const t = parseTrace('high', high, X86);
    expect(t.format).toBe('rw');
    expect(replay(t, 12, 'lru').faults).toBe(lruFaults(s.pages, 12));
  });
});

describe('regression: a hex page-number trace with R/W was read as byte addresses (4 faults at 16 frames)', () => {
  // Page numbers below 0x4000 read as byte addresses all fall in pages 0 to 3: LRU at 16 frames
  // then faults 4 times, where the right count is nearly one fault per reference.
  const r = rng(20);
  const pages = Array.from({ length: 20000 }, () => Math.floor(r() * 0x4000));
  const path = join(dir, 'pagenum-rw.txt');
  writeFileSync(path, `${pages.map((p, i) => `${i % 3 === 0 ? 'W' : 'R'} ${p.toString(16)}`).join('\n')}\n`);
  const vmlab = (...args: string[]) =>
    spawnSync('node', [cli, 'replay', path, '--frames', '16', '--policy', 'lru', ...args], {
      encoding: 'utf8',
    });

  it('auto refuses it with a clear message naming the file, the first line and both formats', () => {
    const out = vmlab();
    expect(out.status).toBe(2);
    expect(out.stderr).toContain(`${path}:1: cannot tell how to read 'W ${pages[0]!.toString(16)}'`);
    expect(out.stderr).toMatch(/--trace-format rw +R\/W, then a hex byte address/);
    expect(out.stderr).toMatch(/--trace-format pagenum +hex page numbers/);
    expect(out.stderr).not.toMatch(/\n\s+at /);
  });

  it('--trace-format pagenum gives the model count; rw (asked for) still reads byte addresses', () => {
    const right = JSON.parse(vmlab('--trace-format', 'pagenum', '--json').stdout);
    const model = lruFaults(pages, 16);
    expect(model).toBeGreaterThan(19000);
    expect(right.faults).toBe(model);
    expect(JSON.parse(vmlab('--trace-format', 'rw', '--json').stdout).faults).toBe(4);
  });
});

describe('the detection rule, case by case', () => {
  const detect = (text: string, limits = X86) => parseTrace('t.txt', text, limits).format;
  const refused = (text: string, limits = X86) => {
    try {
      parseTrace('t.txt', text, limits);
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error('parsed');
  };

  it('reads the one format a file can be', () => {
    expect(detect('==12== Lackey\nI  0023C790,2\n L BE80199C,4\n')).toBe('lackey');
    expect(detect('R 7ffd12345678\nW 1000\n')).toBe('rw'); // one value >= 2^36: addresses
    expect(detect('1a3f W\n12 r\n')).toBe('pagenum'); // R/W after the number: never rw
    expect(detect('1a3f\n12\n')).toBe('pagenum'); // a hex letter: hex page numbers
    expect(detect('0x12\n12\n')).toBe('pagenum'); // a 0x prefix: hex
    expect(detect('R 1a3f\n12\n')).toBe('pagenum'); // a bare line: not rw; all fit as pages
    expect(detect('12\n13\n140\n')).toBe('pages'); // bare decimal digits: decimal pages
    expect(detect('1,2,3w\n4\n')).toBe('pages');
    expect(detect('# a comment\n\n  7 \n')).toBe('pages');
    expect(detect('R 100000000000\nW 12\n')).toBe('rw'); // hex >= 2^36, decimal 1e11 >= 2^36 too
  });

  it('refuses a file that reads two ways, naming the first reference line and the candidates', () => {
    const rwOrPage = refused('# header\n\nR 1a3f\nW 0x1000\n');
    expect(rwOrPage).toMatch(
      /^t\.txt:3: cannot tell how to read 'R 1a3f': every value is below 0x1000000000/,
    );
    expect(rwOrPage).toContain('--trace-format rw');
    expect(rwOrPage).toContain('--trace-format pagenum ');
    expect(rwOrPage).not.toContain('pagenum-dec');
    const three = refused('R 12\nW 13\n'); // hex address, hex page or decimal page
    for (const f of ['rw ', 'pagenum ', 'pagenum-dec ']) expect(three).toContain(`--trace-format ${f}`);
    const hexOrDec = refused('12 W\n13\n');
    expect(hexOrDec).toMatch(/could be hex or decimal/);
    expect(hexOrDec).not.toContain('--trace-format rw');
    const padded = refused('0012\n0013\n0140\n'); // %04x or %04d?
    expect(padded).toMatch(/^t\.txt:1: .*zero-padded to 4 digits/);
    // A hex reading beyond the pages, a decimal one within: rw or decimal pages.
    expect(refused('R 1000000000\n')).toMatch(/hex byte address or a decimal page number/);
  });

  it('follows the page size: the limit is vaLimit / pageBytes', () => {
    // 0x4ffffffff is beyond 2^34 pages of 16 KiB but within 2^36 pages of 4 KiB.
    expect(detect('R 4ffffffff\n', { pageBytes: 16384, vaLimit: 2 ** 48 })).toBe('rw');
    expect(refused('R 4ffffffff\n')).toMatch(/could be a byte address or a page number/);
  });

  it('looks at the whole file, not only its first lines', () => {
    const ambiguous = Array.from({ length: 300 }, (_, i) => `R ${(i * 4096).toString(16)}`);
    expect(detect([...ambiguous, 'W 7ffd12345678'].join('\n'))).toBe('rw');
    const decimal = Array.from({ length: 250 }, (_, i) => String(i + 10));
    const t = parseTrace('t.txt', [...decimal, '1a'].join('\n'), X86);
    expect(t.format).toBe('pagenum'); // so '10' is page 16
    expect(t.addresses[0]).toBe(16 * PAGE);
  });

  it('detects from the last line of a 1,000,000-line trace in one pass', () => {
    const lines = new Array<string>(1_000_000);
    for (let i = 0; i < lines.length - 1; i++) lines[i] = `R ${(i & 0xffff).toString(16)}`;
    lines[lines.length - 1] = 'W 7ffd12345678';
    const t0 = performance.now();
    const t = parseTrace('big.txt', lines.join('\n'), X86);
    const seconds = (performance.now() - t0) / 1000;
    expect(t.format).toBe('rw');
    expect(t.length).toBe(1_000_000);
    console.log(`1,000,000-line rw trace: detected and parsed in ${seconds.toFixed(3)} s`);
  });

  it('refuses mixed files, naming a line of each kind', () => {
    expect(refused(' L BE80199C,4\nR 12\n')).toMatch(
      /^t\.txt: mixes trace formats: line 1 'L BE80199C,4' is a valgrind lackey line, line 2 'R 12' is R\/W then a number/,
    );
    expect(refused('1,2\n3\nR 1a\n')).toMatch(
      /line 1 '1,2' is a page list .* line 3 'R 1a' is R\/W then a number/,
    );
    expect(refused('1,2,3\n1a\n')).toMatch(/line 1 '1,2,3' is a page list .* line 2 '1a' a hex number/);
  });
});

describe('hostile traces', () => {
  const err =
    (text: string, format: TraceFormat | 'auto' = 'auto') =>
    () =>
      parseTrace('h.txt', text, { ...X86, format });

  it('refuses a file with no reference in every format', () => {
    for (const format of ['auto', 'lackey', 'rw', 'pagenum', 'pagenum-dec', 'pages'] as const) {
      expect(err('', format), format).toThrow(/^h\.txt: the trace holds no reference/);
      expect(err('# only\n\n   \n', format), format).toThrow(/holds no reference/);
    }
    expect(err(',,,\n')).toThrow(/holds no reference/);
    expect(err('I  0023C790,2\n')).toThrow(/--include-instructions/);
  });

  it('names the line of a bad token, in every format', () => {
    expect(err('R 12\nW 1a3g\n')).toThrow(/^h\.txt:2: cannot tell the trace format from 'W 1a3g'/);
    expect(err('1a3f W\n12\n1a3g W\n', 'pagenum')).toThrow(/^h\.txt:3: not a pagenum trace line: '1a3g W'/);
    expect(err('12\n0x\n', 'pagenum')).toThrow(/^h\.txt:2: not a pagenum trace line: '0x'/);
    expect(err('12 W\n1a W\n', 'pagenum-dec')).toThrow(/^h\.txt:2: '1a' is not a decimal page number/);
    expect(err('12\nR 0x12\n', 'pagenum-dec')).toThrow(/^h\.txt:2: '0x12' is not a decimal page number/);
    expect(err('1,2\n3,x,4\n', 'pages')).toThrow(/^h\.txt:2: 'x' is not a page number/);
    expect(err('1,2\n3ww\n', 'pages')).toThrow(/^h\.txt:2: '3ww' is not a page number/);
    expect(err('R 12\n12 R\n', 'rw')).toThrow(/^h\.txt:2: not a rw trace line: '12 R'/);
    expect(err('R 12 W\n', 'pagenum')).toThrow(/^h\.txt:1: not a pagenum trace line/);
  });

  it('refuses a page beyond the virtual address space, naming the line', () => {
    const last = (PAGE_LIMIT - 1).toString(16);
    expect(pagesOf(parseTrace('h.txt', `R ${last}\n`, { ...X86, format: 'pagenum' }))).toEqual([
      PAGE_LIMIT - 1,
    ]);
    expect(err(`R ${last}\nW ${PAGE_LIMIT.toString(16)}\n`, 'pagenum')).toThrow(
      /^h\.txt:2: page 0x1000000000 is beyond the format's virtual address space/,
    );
    expect(err(`${PAGE_LIMIT - 1}\n${PAGE_LIMIT} W\n`, 'pagenum-dec')).toThrow(
      /^h\.txt:2: page 68719476736 is beyond/,
    );
    expect(err(`1,${PAGE_LIMIT}\n`, 'pages')).toThrow(/^h\.txt:1: page 68719476736 is beyond/);
    expect(err(`${'f'.repeat(40)}\n`)).toThrow(/^h\.txt:1: page 0xf{40} is beyond/); // no overflow wrap
    expect(err('R 1000000000000\n', 'rw')).toThrow(/^h\.txt:1: address 0x1000000000000 does not fit/);
  });

  it('takes CRLF line ends, tabs, lower-case R/W, trailing comments and gzip', () => {
    const t = parseTrace('h.txt', '1a3f\tw\r\n  r 0X1A40  # hot\r\n\r\n', X86);
    expect(t.format).toBe('pagenum');
    expect(pagesOf(t)).toEqual([0x1a3f, 0x1a40]);
    expect(Array.from(t.kinds)).toEqual([REF_WRITE, REF_READ]);
    const path = join(dir, 'pages.txt.gz');
    writeFileSync(path, gzipSync('1a3f W\n12 R\n'));
    expect(pagesOf(loadTrace(path, X86))).toEqual([0x1a3f, 0x12]);
  });
});

describe('vmlab replay --trace-format', () => {
  it('lists every format in its help, and refuses another name', () => {
    const help = spawnSync('node', [cli, 'replay', '--help'], { encoding: 'utf8' }).stdout;
    for (const f of ['auto', 'lackey', 'rw', 'pagenum', 'pagenum-dec', 'pages']) expect(help).toContain(f);
    const path = join(dir, 'ref.txt');
    writeFileSync(path, '1,2,3\n');
    const bad = spawnSync('node', [cli, 'replay', path, '--trace-format', 'hex'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain(
      "--trace-format: 'hex' is not auto, lackey, rw, pagenum, pagenum-dec, pages",
    );
  });
});
