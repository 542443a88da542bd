/**
 * Paging formats: the presets' geometry and entry layouts against the architecture manuals'
 * bit positions (written out here by hand), the custom tiny format worked through by hand, and
 * compileFormat's refusals of impossible specs.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Clock } from '../kernel/hw/clock.ts';
import { resolveCostModel } from '../kernel/hw/cost.ts';
import { ACCESS_READ, ACCESS_WRITE, Mmu, MODE_KERNEL, MODE_USER } from '../kernel/hw/mmu.ts';
import {
  compileFormat,
  decodeEntry,
  type EntryFields,
  type EntryFlag,
  encodeEntry,
  entryHex,
  entryPfn,
  FormatError,
  type FormatSpec,
  levelIndex,
  type PagingFormat,
  testFlag,
} from '../kernel/hw/paging/format.ts';
import { PRESET_FORMATS, PRESET_NAMES, presetFormat } from '../kernel/hw/paging/presets.ts';
import { sv39, sv39Decode, sv39Encode } from '../kernel/hw/paging/sv39.ts';
import { x86_32, x86_32Decode, x86_32Encode } from '../kernel/hw/paging/x86_32.ts';
import { x86_64, x86_64Encode } from '../kernel/hw/paging/x86_64.ts';
import { x86_64La57, x86_64La57Decode } from '../kernel/hw/paging/x86_64_la57.ts';
import { PhysicalMemory } from '../kernel/hw/physmem.ts';
import {
  type HandFormat,
  handSv39,
  handTiny,
  handX86_32,
  handX86_64,
  handX86_64La57,
  SV,
  TINY,
  X86,
} from './helpers/pagetables.ts';

const TINY_SPEC: FormatSpec = {
  name: 'tiny',
  pageBytes: 32,
  levelBits: [5, 5],
  entryBytes: 1,
  flags: { present: 7 },
  pfn: { shift: 0, width: 7 },
  permissionScope: 'all-levels',
};

/** Each preset with its hand description and where each flag sits, as [lo mask, hi mask]. */
const X86_FLAG_BITS: Partial<Record<EntryFlag, [number, number]>> = {
  present: [X86.P, 0],
  writable: [X86.RW, 0],
  user: [X86.US, 0],
  accessed: [X86.A, 0],
  dirty: [X86.D, 0],
  global: [X86.G, 0],
};
const CASES: Array<{
  fmt: PagingFormat;
  hand: HandFormat;
  bits: Partial<Record<EntryFlag, [number, number]>>;
}> = [
  { fmt: x86_32, hand: handX86_32, bits: X86_FLAG_BITS },
  { fmt: x86_64, hand: handX86_64, bits: { ...X86_FLAG_BITS, noExecute: [0, X86.NX_HI] } },
  { fmt: x86_64La57, hand: handX86_64La57, bits: { ...X86_FLAG_BITS, noExecute: [0, X86.NX_HI] } },
  {
    fmt: sv39,
    hand: handSv39,
    bits: {
      present: [SV.V, 0],
      readable: [SV.R, 0],
      writable: [SV.W, 0],
      execute: [SV.X, 0],
      user: [SV.U, 0],
      global: [SV.G, 0],
      accessed: [SV.A, 0],
      dirty: [SV.D, 0],
    },
  },
];

describe('preset geometry', () => {
  it('splits virtual addresses as the manuals do', () => {
    // [name, levels, bits per level, entry bytes, va bits, level shifts root first]
    const expected: Array<[string, number, number[], number, number, number[]]> = [
      ['x86-32', 2, [10, 10], 4, 32, [22, 12]],
      ['sv39', 3, [9, 9, 9], 8, 39, [30, 21, 12]],
      ['x86-64', 4, [9, 9, 9, 9], 8, 48, [39, 30, 21, 12]],
      ['x86-64-la57', 5, [9, 9, 9, 9, 9], 8, 57, [48, 39, 30, 21, 12]],
    ];
    expect(PRESET_NAMES).toEqual(expected.map((e) => e[0]));
    for (const [name, levels, bits, entryBytes, vaBits, shifts] of expected) {
      const fmt = presetFormat(name)!;
      expect(fmt.name).toBe(name);
      expect(fmt.pageBytes).toBe(4096);
      expect(fmt.pageShift).toBe(12);
      expect(fmt.levels).toBe(levels);
      expect([...fmt.levelBits]).toEqual(bits);
      expect(fmt.entryBytes).toBe(entryBytes);
      expect(fmt.vaBits).toBe(vaBits);
      expect([...fmt.levelShift]).toEqual(shifts);
      expect(fmt.vpnCount).toBe(2 ** (vaBits - 12));
    }
    expect(x86_32.maxPfn).toBe(2 ** 20 - 1);
    expect(x86_64.maxPfn).toBe(2 ** 34 - 1);
    expect(sv39.maxPfn).toBe(2 ** 44 - 1);
    expect(x86_32.permissionScope).toBe('all-levels');
    expect(sv39.permissionScope).toBe('leaf-only');
  });

  it('looks presets up by own name only', () => {
    expect(presetFormat('sv39')).toBe(sv39);
    expect(PRESET_FORMATS['x86-64']).toBe(x86_64);
    expect(presetFormat('x86-16')).toBeUndefined();
    expect(presetFormat('toString')).toBeUndefined();
    expect(presetFormat('__proto__')).toBeUndefined();
  });

  it.each(CASES.map((c) => [c.fmt.name, c] as const))(
    '%s: levelIndex equals the hand shifts and masks (property)',
    (_name, { fmt, hand }) => {
      const limit = Math.min(2 ** fmt.vaBits, 2 ** 53);
      fc.assert(
        fc.property(fc.integer({ min: 0, max: limit - 1 }), (va) => {
          for (let l = 0; l < fmt.levels; l++) expect(levelIndex(fmt, va, l)).toBe(hand.index(va, l));
        }),
        { seed: 3, numRuns: 200 },
      );
      // The top address: every index all ones (LA57's root index is capped by 2^53: 31).
      const top = limit - 1;
      expect(levelIndex(fmt, top, fmt.levels - 1)).toBe(2 ** fmt.levelBits[fmt.levels - 1]! - 1);
      expect(levelIndex(fmt, top, 0)).toBe(fmt.name === 'x86-64-la57' ? 31 : 2 ** fmt.levelBits[0]! - 1);
    },
  );
});

describe('entry layouts', () => {
  it.each(CASES.map((c) => [c.fmt.name, c] as const))(
    '%s: encodeEntry, entryPfn and decodeEntry agree with the hand layout (property)',
    (_name, { fmt, hand, bits }) => {
      const flagNames = Object.keys(bits) as EntryFlag[];
      fc.assert(
        fc.property(fc.integer({ min: 0, max: fmt.maxPfn }), fc.subarray(flagNames), (pfn, flags) => {
          let lo = 0;
          let hi = 0;
          const fields: EntryFields = { pfn };
          for (const f of flags) {
            lo |= bits[f]![0];
            hi |= bits[f]![1];
            fields[f] = true;
          }
          const [handLo, handHi] = hand.entry(pfn, { lo, hi });
          const enc = encodeEntry(fmt, fields);
          expect(enc).toEqual({ lo: handLo, hi: handHi });
          expect(entryPfn(fmt, handLo, handHi)).toBe(pfn);
          const dec = decodeEntry(fmt, handLo, handHi);
          expect(dec.pfn).toBe(pfn);
          expect(dec.reserved).toBe(false);
          for (const f of flagNames) expect(dec[f]).toBe(flags.includes(f));
          for (const f of flagNames) {
            expect(testFlag(fmt.mask[f], handLo, handHi)).toBe(flags.includes(f));
          }
        }),
        { seed: 5, numRuns: 300 },
      );
    },
  );

  it('worked examples at the widest frame numbers', () => {
    // x86-32: frame 0xfffff, P|RW|US|A|D|G = 0x167 -> 0xfffff167
    expect(
      x86_32Encode({
        pfn: 0xfffff,
        present: true,
        writable: true,
        user: true,
        accessed: true,
        dirty: true,
        global: true,
      }),
    ).toBe(0xfffff167);
    expect(x86_32Decode(0xfffff167)).toMatchObject({
      pfn: 0xfffff,
      user: true,
      global: true,
      noExecute: false,
    });
    // x86-64: frame 2^34-1 = 0x3_ffff_ffff: low 20 bits 0xfffff at bits 12..31, high 14 bits 0x3fff
    // at bits 32..45; P|RW = 3; NX = bit 63.
    expect(x86_64Encode({ pfn: 2 ** 34 - 1, present: true, writable: true, noExecute: true })).toEqual({
      lo: 0xfffff003,
      hi: 0x80003fff,
    });
    // sv39: PPN 2^44-1: low 22 bits at 10..31 (0xfffffc00), high 22 bits at 32..53 (0x3fffff).
    expect(sv39Encode({ pfn: 2 ** 44 - 1, present: true, readable: true, execute: true })).toEqual({
      lo: 0xfffffc0b,
      hi: 0x3fffff,
    });
    expect(sv39Decode(0xfffffc0b, 0x3fffff)).toMatchObject({
      pfn: 2 ** 44 - 1,
      execute: true,
      writable: false,
    });
    // Reserved bits decode as such: x86-64 bit 46 (hi bit 14), sv39 bit 63 (hi bit 31).
    expect(x86_64La57Decode(1, 1 << 14).reserved).toBe(true);
    expect(sv39Decode(1, 0x80000000).reserved).toBe(true);
    expect(x86_64La57Decode(1, X86.NX_HI).reserved).toBe(false);
  });

  it('refuses a frame that does not fit and a flag the format lacks', () => {
    const refuse = (fmt: PagingFormat, fields: EntryFields, field: string) => {
      expect(() => encodeEntry(fmt, fields)).toThrow(FormatError);
      try {
        encodeEntry(fmt, fields);
      } catch (err) {
        expect((err as FormatError).field).toBe(field);
      }
    };
    refuse(x86_32, { pfn: 2 ** 20 }, 'pfn');
    refuse(x86_32, { pfn: -1 }, 'pfn');
    refuse(x86_32, { pfn: 1.5 }, 'pfn');
    refuse(x86_32, { pfn: 1, readable: true }, 'flags.readable');
    refuse(x86_64, { pfn: 2 ** 34 }, 'pfn');
    // execute on an NX format means "NX clear"; noExecute on an X format means "X clear".
    expect(encodeEntry(x86_64, { pfn: 1, present: true, execute: true })).toEqual({ lo: 0x1001, hi: 0 });
    expect(encodeEntry(sv39, { pfn: 1, present: true, noExecute: true })).toEqual({ lo: 0x401, hi: 0 });
  });

  it('prints entries zero-padded to their width', () => {
    expect(entryHex(x86_32, 0x1067, 0)).toBe('0x00001067');
    expect(entryHex(sv39, 0x401, 0x80000000)).toBe('0x8000000000000401');
    const tiny = compileFormat(TINY_SPEC);
    expect(entryHex(tiny, 0x89, 0)).toBe('0x89');
  });
});

describe('the custom tiny format', () => {
  it('compiles: 15-bit addresses, 32-byte pages, 5 + 5 index bits, 1-byte entries, 7-bit frames', () => {
    const tiny = compileFormat(TINY_SPEC);
    expect(tiny.vaBits).toBe(15);
    expect(tiny.pageShift).toBe(5);
    expect(tiny.levels).toBe(2);
    expect([...tiny.levelShift]).toEqual([10, 5]);
    expect(tiny.vpnCount).toBe(1024);
    expect(tiny.maxPfn).toBe(127);
    expect(tiny.has.present).toBe(true);
    expect(tiny.has.writable).toBe(false);
    expect(tiny.mask.present).toEqual({ lo: 0x80, hi: 0 });
    expect(encodeEntry(tiny, { pfn: 9, present: true })).toEqual({ lo: 0x89, hi: 0 });
    expect(entryPfn(tiny, 0xd3, 0)).toBe(0x53);
    expect(decodeEntry(tiny, 0x53, 0)).toMatchObject({ pfn: 0x53, present: false });
  });

  it('translates a hand-worked example', () => {
    /*
     * va 0x611c = 0b110_0001_0001_1100 (15 bits)
     *   directory index = va >> 10        = 0x18 = 24
     *   table index     = (va >> 5) & 31  = 0x308 & 31 = 8
     *   offset          = va & 31         = 0x1c = 28
     *   check: 24 * 1024 + 8 * 32 + 28 = 24576 + 256 + 28 = 24860 = 0x611c
     * Root table in frame 5: directory entry at pa 5 * 32 + 24 * 1 = 184, value 0x80 | 9 = 0x89
     *   (valid, table in frame 9).
     * Table in frame 9: entry at pa 9 * 32 + 8 * 1 = 296, value 0x80 | 0x53 = 0xd3
     *   (valid, data in frame 0x53 = 83).
     * Final pa = 83 * 32 + 28 = 2656 + 28 = 2684 = 0xa7c.
     */
    const tiny = compileFormat(TINY_SPEC);
    expect(levelIndex(tiny, 0x611c, 0)).toBe(24);
    expect(levelIndex(tiny, 0x611c, 1)).toBe(8);
    expect(handTiny.index(0x611c, 0)).toBe(24);
    expect(handTiny.index(0x611c, 1)).toBe(8);

    const mem = new PhysicalMemory({ frameCount: 128, pageBytes: 32 });
    expect(mem.sizeBytes).toBe(4096);
    mem.write8(184, 0x89);
    mem.write8(296, 0xd3);
    mem.write8(0xa7c, 0x42);
    const mmu = new Mmu(mem, tiny, {
      tlb: { entries: 4, ways: 1, replacement: 'lru' },
      cost: resolveCostModel(),
      clock: new Clock({ hz: 1e6 }),
    });
    mmu.switchAddressSpace(5, 0);
    expect(mmu.translate(0x611c, ACCESS_READ, MODE_USER)).toBe(0xa7c);
    expect(mmu.load8(0x611c)).toBe(0x42);
    mmu.store8(0x611d, 0x43);
    expect(mem.read8(0xa7d)).toBe(0x43);
    // No accessed or dirty bits in this format: the walk leaves the entries alone.
    expect(mem.read8(184)).toBe(0x89);
    expect(mem.read8(296)).toBe(0xd3);
    // No W or U bits: kernel and user, read and write, all pass.
    expect(mmu.translate(0x611c, ACCESS_WRITE, MODE_KERNEL)).toBe(0xa7c);

    // The neighbouring page (table index 9) has no valid entry: not present at level 1.
    expect(mmu.translate(0x611c + 32, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(mmu.fault).toMatchObject({ kind: 'not-present', level: 1 });
    // A directory index with no valid entry: not present at level 0.
    mem.write8(5 * 32 + 3, 0x09); // frame bits set but valid clear
    expect(mmu.translate(3 * 1024, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(mmu.fault).toMatchObject({ kind: 'not-present', level: 0 });
    // The widest frame number: 127 = 0x7f, entry 0xff; pa = 127 * 32 + 31 = 4095.
    mem.write8(9 * 32 + 31, 0xff);
    expect(mmu.translate(24 * 1024 + 31 * 32 + 31, ACCESS_READ, MODE_USER)).toBe(4095);
    // Addresses of 15 bits only.
    expect(mmu.translate(0x8000, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(mmu.fault.kind).toBe('address-size');
  });

  it('agrees with the hand walk for every address (exhaustive over 2^15)', () => {
    const tiny = compileFormat(TINY_SPEC);
    const mem = new PhysicalMemory({ frameCount: 128, pageBytes: 32 });
    // Root in frame 1; directory entries 0..31 valid for even indices, tables in frames 2..17;
    // table entries valid when (dir + tab) % 3 != 0, data in frame 20 + (dir * 31 + tab) % 100.
    for (let d = 0; d < 32; d += 2) {
      mem.write8(32 + d, TINY.VALID | (2 + d / 2));
      for (let t = 0; t < 32; t++) {
        if ((d + t) % 3 !== 0) mem.write8((2 + d / 2) * 32 + t, TINY.VALID | (20 + ((d * 31 + t) % 100)));
      }
    }
    const mmu = new Mmu(mem, tiny, {
      tlb: { entries: 8, ways: 2, replacement: 'fifo' },
      cost: resolveCostModel(),
      clock: new Clock({ hz: 1e6 }),
    });
    mmu.switchAddressSpace(1, 0);
    for (let va = 0; va < 2 ** 15; va++) {
      const d = va >>> 10;
      const t = (va >>> 5) & 31;
      const want = d % 2 === 0 && (d + t) % 3 !== 0 ? (20 + ((d * 31 + t) % 100)) * 32 + (va & 31) : -1;
      const got = mmu.translate(va, ACCESS_READ, MODE_USER);
      if (got !== want) expect({ va, got }).toEqual({ va, got: want });
      if (want < 0) expect(mmu.fault.level).toBe(d % 2 === 0 ? 1 : 0);
    }
  });
});

describe('compileFormat refusals', () => {
  // [what, change to the tiny spec, field named, words the message must hold]
  const refusals: Array<[string, Partial<FormatSpec>, string, string]> = [
    ['overlapping flags', { flags: { present: 7, writable: 7 } }, 'flags.writable', 'overlaps flags.present'],
    ['a pfn over a flag', { flags: { present: 6 } }, 'pfn', 'overlaps flags.present'],
    ['reserved bits over the pfn', { reservedBits: [[3, 4]] }, 'reservedBits[0]', 'overlaps pfn'],
    ['a huge-page bit over the pfn', { hugePageBit: 2 }, 'hugePageBit', 'overlaps pfn'],
    ['a flag outside the entry', { flags: { present: 8 } }, 'flags.present', 'outside'],
    ['a negative flag bit', { flags: { present: 7, user: -1 } }, 'flags.user', 'outside'],
    [
      'a pfn field outside the entry',
      { flags: { present: 0 }, pfn: { shift: 2, width: 7 } },
      'pfn',
      'outside',
    ],
    ['reserved bits outside the entry', { reservedBits: [[8, 9]] }, 'reservedBits[0]', 'outside'],
    ['an empty reserved range', { reservedBits: [[5, 4]] }, 'reservedBits[0]', 'empty'],
    ['a page size not a power of two', { pageBytes: 48 }, 'pageBytes', 'power of two'],
    ['a page size below 16', { pageBytes: 8 }, 'pageBytes', 'power of two'],
    ['a page size above 65536', { pageBytes: 131072 }, 'pageBytes', 'power of two'],
    ['a page size not an integer', { pageBytes: 32.5 }, 'pageBytes', 'power of two'],
    ['0 levels', { levelBits: [] }, 'levelBits', '0 levels'],
    ['6 levels', { levelBits: [1, 1, 1, 1, 1, 1] }, 'levelBits', '6 levels'],
    ['a level of 0 bits', { levelBits: [5, 0] }, 'levelBits[1]', '0 index bits'],
    ['virtual addresses over 57 bits', { pageBytes: 65536, levelBits: [20, 20, 2] }, 'levelBits', '58 bits'],
    ['a missing present bit', { flags: {} }, 'flags.present', 'present'],
    ['an entry of 3 bytes', { entryBytes: 3 as never }, 'entryBytes', '1, 2, 4 or 8'],
    ['a pfn field of 0 bits', { pfn: { shift: 0, width: 0 } }, 'pfn.width', '0 bits'],
    [
      'both execute and no-execute',
      { flags: { present: 7, execute: 6, noExecute: 5 }, pfn: { shift: 0, width: 5 } },
      'flags.execute',
      'not both',
    ],
    [
      'an unknown permission scope',
      { permissionScope: 'some-levels' as never },
      'permissionScope',
      'some-levels',
    ],
    ['leaf-only without R, W or X', { permissionScope: 'leaf-only' }, 'permissionScope', 'leaf-only'],
  ];
  it.each(refusals)('refuses %s, naming the field', (_what, change, field, words) => {
    let caught: unknown;
    try {
      compileFormat({ ...TINY_SPEC, ...change });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(FormatError);
    expect((caught as FormatError).field).toBe(field);
    expect((caught as FormatError).message.startsWith(`${field}: `)).toBe(true);
    expect((caught as FormatError).message).toContain(words);
  });

  it('accepts the largest and smallest legal shapes', () => {
    expect(compileFormat({ ...TINY_SPEC, pageBytes: 16, levelBits: [1] }).vaBits).toBe(5);
    const big = compileFormat({
      ...TINY_SPEC,
      pageBytes: 65536,
      levelBits: [9, 9, 9, 9, 5],
      entryBytes: 8,
      pfn: { shift: 12, width: 40 },
    });
    expect(big.vaBits).toBe(57);
    expect(big.levels).toBe(5);
  });
});
