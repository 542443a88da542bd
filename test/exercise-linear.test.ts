/**
 * The linear page-table exercise (OSTEP's paging-linear-translate.py in vmlab): OSTEP's text
 * line for line, every -c answer checked against arithmetic done here on the printed table (not
 * against vmlab's MMU), one seed's exercise worked by hand, determinism, -u 0 and -u 100, -A,
 * and each refused option named in its error.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InputError } from '../kernel/boot/configfile.ts';
import { type LinearExerciseOptions, linearExercise, linearFormat } from '../kernel/boot/exercise-linear.ts';
import { Mmu } from '../kernel/hw/mmu.ts';

const OSTEP_DEFAULTS: LinearExerciseOptions = {
  seed: 0,
  addressSpace: '16k',
  physMem: '64k',
  pageSize: '4k',
  usedPercent: 50,
  count: 5,
  verbose: false,
  compute: false,
};

const run = (o: Partial<LinearExerciseOptions>): string => linearExercise({ ...OSTEP_DEFAULTS, ...o });

/** The page-table entries as printed, in order, checking each line's form (with or without -v). */
function printedTable(text: string): number[] {
  const lines = text.split('\n');
  const start = lines.indexOf('Page Table (from entry 0 down to the max size)') + 1;
  const entries: number[] = [];
  for (let i = start; lines[i] !== ''; i++) {
    const m = /^ {2}(?:\[ *(\d+)\] {2})?0x([0-9a-f]{8})$/.exec(lines[i]!);
    expect(m, `table line ${JSON.stringify(lines[i])}`).not.toBeNull();
    if (m![1] !== undefined) expect(Number(m![1])).toBe(entries.length);
    entries.push(Number.parseInt(m![2]!, 16));
  }
  return entries;
}

interface TraceLine {
  va: number;
  answer: string;
}

/** The Virtual Address Trace lines: each address (hex and decimal agreeing) and what follows `-->`. */
function trace(text: string): TraceLine[] {
  return [...text.matchAll(/^ {2}VA 0x([0-9a-f]{8}) \(decimal: +(\d+)\) --> (.*)$/gm)].map((m) => {
    const va = Number.parseInt(m[1]!, 16);
    expect(Number(m[2])).toBe(va);
    return { va, answer: m[3]! };
  });
}

/**
 * The answer worked by hand from a VA and the printed table: VPN = VA / page size, offset =
 * VA mod page size; the entry's bit 31 is the valid bit and bits 0-30 the PFN;
 * PA = PFN * page size + offset. Returned in OSTEP's words.
 */
function byHand(va: number, table: number[], pageBytes: number): string {
  const vpn = Math.floor(va / pageBytes);
  const offset = va % pageBytes;
  const pte = table[vpn]!;
  if (pte < 2 ** 31) return ` Invalid (VPN ${vpn} not valid)`;
  const pa = (pte - 2 ** 31) * pageBytes + offset;
  return `${pa.toString(16).padStart(8, '0')} (decimal ${String(pa).padStart(8, ' ')}) [VPN ${vpn}]`;
}

/** What `f` throws: whether it is an InputError (a user's mistake, exit status 2), and its message. */
function refusal(f: () => unknown): { isInputError: boolean; message: string } {
  try {
    f();
  } catch (err) {
    return { isInputError: err instanceof InputError, message: (err as Error).message };
  }
  throw new Error('refusal: nothing was thrown');
}

describe("OSTEP's text", () => {
  it('echoes every option in ARG lines, then the headings, the table, the trace and the closing lines', () => {
    const q = run({});
    const lines = q.split('\n');
    expect(lines.slice(0, 16)).toEqual([
      'ARG seed 0',
      'ARG address space size 16k',
      'ARG phys mem size 64k',
      'ARG page size 4k',
      'ARG verbose False',
      'ARG addresses -1',
      '',
      '',
      'The format of the page table is simple:',
      'The high-order (left-most) bit is the VALID bit.',
      '  If the bit is 1, the rest of the entry is the PFN.',
      '  If the bit is 0, the page is not valid.',
      'Use verbose mode (-v) if you want to print the VPN # by',
      'each entry of the page table.',
      '',
      'Page Table (from entry 0 down to the max size)',
    ]);
    expect(printedTable(q)).toHaveLength(4); // 16k / 4k
    expect(lines.slice(20, 22)).toEqual(['', 'Virtual Address Trace']);
    expect(lines.slice(22, 27).every((l) => / --> PA or invalid address\?$/.test(l))).toBe(true);
    expect(lines.slice(27)).toEqual([
      '',
      'For each virtual address, write down the physical address it translates to',
      'OR write down that it is an out-of-bounds address (e.g., segfault).',
      '',
      '',
    ]);
  });

  it('echoes the sizes as written, True for -v and the -A list; -c drops the closing lines', () => {
    const a = run({
      addressSpace: '32K',
      physMem: '1m',
      pageSize: '1024',
      verbose: true,
      compute: true,
      addresses: '5,0x10',
    });
    expect(a.split('\n').slice(0, 7)).toEqual([
      'ARG seed 0',
      'ARG address space size 32K',
      'ARG phys mem size 1m',
      'ARG page size 1024',
      'ARG verbose True',
      'ARG addresses 5,0x10',
      '',
    ]);
    expect(a).not.toContain('For each virtual address');
    expect(a.endsWith('[VPN 0]\n\n') || a.endsWith('not valid)\n\n')).toBe(true);
  });

  it('-v puts each VPN in a column of 8 before the same entries', () => {
    const plain = run({ seed: 4, addressSpace: '64k', pageSize: '1k', physMem: '256k' });
    const verbose = run({ seed: 4, addressSpace: '64k', pageSize: '1k', physMem: '256k', verbose: true });
    expect(printedTable(verbose)).toEqual(printedTable(plain));
    expect(verbose).toContain('\n  [       0]  0x');
    expect(verbose).toContain('\n  [      63]  0x');
    expect(plain).toMatch(/\n {2}0x[0-9a-f]{8}\n/);
  });
});

describe('answers (-c) against arithmetic on the printed table', () => {
  it('seed 0, worked by hand: a page in frame 8, a page in frame 0, two invalid pages', () => {
    const a = run({ verbose: true, compute: true, addresses: '0x3a39,0x17a7,8192,0b11' });
    // The table as printed: VPN 1 -> PFN 0, VPN 3 -> PFN 8, VPNs 0 and 2 invalid.
    expect(printedTable(a)).toEqual([0x00000000, 0x80000000, 0x00000000, 0x80000008]);
    // 16k of address space: 14-bit addresses; 4k pages: a 12-bit offset and a 2-bit VPN.
    // 0x3a39 = 11 1010 0011 1001: VPN 3, offset 0xa39; PFN 8: PA 0x8000 | 0xa39 = 0x8a39 = 35385.
    // 0x17a7 = 01 0111 1010 0111: VPN 1, offset 0x7a7; PFN 0: PA 0x7a7 = 1959.
    // 8192 = 0x2000: VPN 2, invalid. 0b11 = 3: VPN 0, invalid.
    expect(a.split('\n').slice(-7)).toEqual([
      'Virtual Address Trace',
      '  VA 0x00003a39 (decimal:    14905) --> 00008a39 (decimal    35385) [VPN 3]',
      '  VA 0x000017a7 (decimal:     6055) --> 000007a7 (decimal     1959) [VPN 1]',
      '  VA 0x00002000 (decimal:     8192) -->  Invalid (VPN 2 not valid)',
      '  VA 0x00000003 (decimal:        3) -->  Invalid (VPN 0 not valid)',
      '',
      '',
    ]);
  });

  it.each([
    ['OSTEP defaults', { seed: 1 }, 4096],
    [
      '1k pages in 32k of 128k',
      { seed: 2, addressSpace: '32k', physMem: '128k', pageSize: '1k', usedPercent: 75 },
      1024,
    ],
    ['16-byte pages', { seed: 3, addressSpace: '1k', physMem: '4k', pageSize: '16', usedPercent: 30 }, 16],
    ['64k pages', { seed: 4, addressSpace: '1m', physMem: '16m', pageSize: '64k', usedPercent: 60 }, 65536],
    [
      'address space as large as memory',
      { seed: 5, addressSpace: '64k', physMem: '64k', pageSize: '4k' },
      4096,
    ],
    ['one page', { seed: 6, addressSpace: '4k', physMem: '64k', pageSize: '4k', usedPercent: 100 }, 4096],
  ] as const)('%s: every answer is the hand-worked one', (_name, o, pageBytes) => {
    for (const verbose of [false, true]) {
      const a = run({ ...o, count: 60, compute: true, verbose });
      const table = printedTable(a);
      const lines = trace(a);
      expect(lines).toHaveLength(60);
      for (const { va, answer } of lines) expect(answer).toBe(byHand(va, table, pageBytes));
    }
  });

  it('the answers are the MMU translating each address (once each), and only with -c', () => {
    const translate = vi.spyOn(Mmu.prototype, 'translate');
    run({ count: 7 });
    expect(translate).not.toHaveBeenCalled();
    run({ count: 7, compute: true });
    expect(translate).toHaveBeenCalledTimes(7);
  });

  afterEach(() => vi.restoreAllMocks());
});

describe('the random problem', () => {
  it('one seed gives one exercise, byte for byte; another seed another table', () => {
    const o = { addressSpace: '64k', physMem: '1m', pageSize: '1k', count: 20 };
    expect(run({ ...o, seed: 9 })).toBe(run({ ...o, seed: 9 }));
    expect(run({ ...o, seed: 9, compute: true })).toBe(run({ ...o, seed: 9, compute: true }));
    expect(printedTable(run({ ...o, seed: 9 }))).not.toEqual(printedTable(run({ ...o, seed: 10 })));
    expect(trace(run({ ...o, seed: 9 }))).not.toEqual(trace(run({ ...o, seed: 10 })));
  });

  it('the table does not depend on -n, -A, -v or -c: the questions are drawn after it', () => {
    const table = printedTable(run({ seed: 12 }));
    expect(printedTable(run({ seed: 12, count: 0 }))).toEqual(table);
    expect(printedTable(run({ seed: 12, addresses: '1,2' }))).toEqual(table);
    expect(printedTable(run({ seed: 12, verbose: true, compute: true }))).toEqual(table);
    expect(trace(run({ seed: 12, compute: false })).map((t) => t.va)).toEqual(
      trace(run({ seed: 12, compute: true })).map((t) => t.va),
    );
  });

  it('-u 0: every entry is zero and every address invalid', () => {
    const a = run({
      seed: 3,
      addressSpace: '64k',
      physMem: '128k',
      pageSize: '1k',
      usedPercent: 0,
      count: 30,
      compute: true,
    });
    expect(printedTable(a)).toEqual(new Array(64).fill(0));
    for (const { answer } of trace(a)) expect(answer).toMatch(/^ Invalid \(VPN \d+ not valid\)$/);
  });

  it('-u 100: every page valid, in a frame of its own inside physical memory', () => {
    // 64 pages of 1k in 256 frames, and in 64 (memory as large as the address space: all used).
    for (const [physMem, frames] of [
      ['256k', 256],
      ['64k', 64],
    ] as const) {
      const a = run({
        seed: 3,
        addressSpace: '64k',
        physMem,
        pageSize: '1k',
        usedPercent: 100,
        count: 30,
        compute: true,
      });
      const table = printedTable(a);
      expect(table.every((e) => e >= 2 ** 31)).toBe(true);
      const pfns = table.map((e) => e - 2 ** 31);
      expect(new Set(pfns).size).toBe(64);
      expect(Math.max(...pfns)).toBeLessThan(frames);
      for (const { answer } of trace(a)) expect(answer).toMatch(/\[VPN \d+\]$/);
    }
  });

  it('-u 50 over many pages: about half valid', () => {
    const table = printedTable(
      run({ seed: 8, addressSpace: '4m', physMem: '16m', pageSize: '1k', count: 0 }),
    );
    const valid = table.filter((e) => e >= 2 ** 31).length;
    expect(table).toHaveLength(4096);
    expect(valid).toBeGreaterThan(4096 * 0.45);
    expect(valid).toBeLessThan(4096 * 0.55);
  });

  it("OSTEP's first question, -P 1k -a 1m -p 512m -v -n 0: 1024 entries and no questions", () => {
    const q = run({ pageSize: '1k', addressSpace: '1m', physMem: '512m', verbose: true, count: 0 });
    expect(printedTable(q)).toHaveLength(1024);
    expect(trace(q)).toEqual([]);
    expect(q).toContain('\nVirtual Address Trace\n\nFor each virtual address');
  });
});

describe('-A: the addresses to translate', () => {
  it('takes hex, decimal and binary, up to the last byte of the address space; -1 means random', () => {
    const a = run({ compute: true, addresses: '0x3fff, 0,0b10000000000001,4096' });
    expect(trace(a).map((t) => t.va)).toEqual([0x3fff, 0, 0x2001, 4096]);
    expect(trace(run({ addresses: '-1' }))).toEqual(trace(run({})));
  });

  it('refuses an address outside the address space, as OSTEP cannot translate it', () => {
    expect(refusal(() => run({ addresses: '0x100,0x4000' }))).toEqual({
      isInputError: true,
      message: '--addresses: 0x4000 (decimal 16384) is outside the address space (0 to 0x3fff, 16384 bytes)',
    });
  });
});

/** Options refused, each with the whole error it gets. */
const REFUSED: Array<[Partial<LinearExerciseOptions>, string]> = [
  [{ addressSpace: '12k' }, '--address-space: 12k is not a power of two'],
  [{ physMem: 'lots' }, "--phys-mem: 'lots' is not a size (such as 16k, 1m or 4096)"],
  [{ pageSize: '3k' }, '--page-size: 3k is not a power of two'],
  [{ pageSize: '0' }, '--page-size: 0 is not a power of two'],
  [{ pageSize: '8' }, "--page-size: 8 is not a page size vmlab's MMU has (16 bytes to 64k)"],
  [{ pageSize: '32k' }, '--page-size: 32k is larger than the address space (16k)'],
  [{ addressSpace: '128k' }, '--address-space: 128k is larger than the physical memory (64k)'],
  [{ physMem: '1g' }, '--phys-mem: 1g is too large (sizes are below 1g, as in OSTEP)'],
  [
    { addressSpace: '1m', physMem: '2m', pageSize: '16' },
    '--address-space: 1m is 65536 pages of 16 bytes; a one-level table in pages of that size holds at most 4096 entries (use a larger --page-size)',
  ],
  [
    { addressSpace: '1k', physMem: '512m', pageSize: '16' },
    '--phys-mem: 512m is 33554432 frames of 16 bytes; vmlab takes at most 4194304 (use a larger --page-size)',
  ],
  [{ usedPercent: 101 }, "--used: '101' is not a whole percentage from 0 to 100"],
  [{ usedPercent: -1 }, "--used: '-1' is not a whole percentage from 0 to 100"],
  [{ usedPercent: 2.5 }, "--used: '2.5' is not a whole percentage from 0 to 100"],
  [{ count: -1 }, "--generate: '-1' is not a count from 0 to 100000"],
  [{ addresses: '1,,2' }, "--addresses: '' is not an address (0x… hex, decimal or 0b… binary)"],
  [{ addresses: '0x1g' }, "--addresses: '0x1g' is not an address (0x… hex, decimal or 0b… binary)"],
];

describe('refused options, named in the error', () => {
  it.each(REFUSED.map(([o, message]) => [message, o] as const))('%s', (message, o) => {
    expect(refusal(() => run(o))).toEqual({ isInputError: true, message });
  });
});

describe('the paging format', () => {
  it('is one level of 32-bit entries, valid bit 31, the PFN in bits 0-30, the VA as wide as the address space', () => {
    const f = linearFormat({ vpages: 4, pageBytes: 4096 });
    expect(f.levelBits).toEqual([2]);
    expect(f.vaBits).toBe(14);
    expect(f.entryBytes).toBe(4);
    expect(f.mask.present).toEqual({ lo: 0x80000000, hi: 0 });
    expect(f.maxPfn).toBe(2 ** 31 - 1);
    expect(f.pfnShift).toBe(0);
    // One page still has a one-bit index (a format has at least one); addresses are checked first.
    expect(linearFormat({ vpages: 1, pageBytes: 4096 }).levelBits).toEqual([1]);
  });
});
