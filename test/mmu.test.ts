/**
 * The MMU: translation for every preset against page tables written by hand
 * (test/helpers/pagetables.ts), accessed and dirty bits in memory, every fault kind, the
 * page-fault handler's retry and its counting, loads and stores of every width, the cost model,
 * and the software-managed TLB.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Clock } from '../kernel/hw/clock.ts';
import { type CostModel, DEFAULT_COST_MODEL, resolveCostModel } from '../kernel/hw/cost.ts';
import {
  ACCESS_EXECUTE,
  ACCESS_READ,
  ACCESS_WRITE,
  Mmu,
  type MmuFault,
  type MmuOptions,
  MODE_KERNEL,
  MODE_USER,
  PageFaultError,
} from '../kernel/hw/mmu.ts';
import { presetFormat } from '../kernel/hw/paging/presets.ts';
import { PhysicalMemory } from '../kernel/hw/physmem.ts';
import { TLB_DIRTY, TLB_EXECUTABLE, TLB_READABLE, TLB_USER, TLB_WRITABLE } from '../kernel/hw/tlb.ts';
import {
  type EntryBits,
  HAND_PRESETS,
  type HandFormat,
  HandPageTables,
  handSv39,
  handX86_32,
  handX86_64,
  handX86_64La57,
  SV,
  X86,
} from './helpers/pagetables.ts';

const FRAMES = 256;
const DATA = 200; // data frames from here; tables from frame 2, root in frame 1

function machine(hand: HandFormat, options: Partial<MmuOptions> = {}) {
  const fmt = presetFormat(hand.name)!;
  const mem = new PhysicalMemory({ frameCount: FRAMES, pageBytes: hand.pageBytes });
  const clock = new Clock({ hz: 1e9 });
  const mmu = new Mmu(mem, fmt, {
    tlb: { entries: 16, ways: 4, replacement: 'lru' },
    cost: resolveCostModel(),
    clock,
    ...options,
  });
  const pt = new HandPageTables(mem, hand, 1, 2);
  mmu.switchAddressSpace(1, 0);
  return { mem, mmu, clock, pt, fmt };
}

/**
 * One address per preset with a different, non-zero index at every level, written out from the
 * manuals' splits (x86-32 10/10/12; sv39 9/9/9/12; x86-64 9/9/9/9/12; LA57 9/9/9/9/9/12).
 */
const DEEP_VA: Record<string, number> = {
  'x86-32': 0x302 * 2 ** 22 + 0x2bc * 2 ** 12 + 0x123, // 0xc0abc123
  sv39: 3 * 2 ** 30 + 0x1a5 * 2 ** 21 + 0x44 * 2 ** 12 + 0xabc,
  'x86-64': 0x101 * 2 ** 39 + 7 * 2 ** 30 + 0x1ff * 2 ** 21 + 0x55 * 2 ** 12 + 0x9,
  'x86-64-la57': 21 * 2 ** 48 + 0x101 * 2 ** 39 + 7 * 2 ** 30 + 0x1ff * 2 ** 21 + 0x55 * 2 ** 12 + 0x9,
};

const X86_HANDS = [handX86_32, handX86_64, handX86_64La57];
const named = (hands: readonly HandFormat[]) => hands.map((h) => [h.name, h] as const);

/** An x86 pointer or leaf with these low bits (P always set). */
const x86Bits = (lo: number, hi = 0): EntryBits => ({ lo: X86.P | lo, hi });
const ALL_X86 = X86.RW | X86.US;

function faultOf(mmu: Mmu): MmuFault {
  return { ...mmu.fault };
}

describe('translation against hand-built walks', () => {
  it('the deep addresses split as intended', () => {
    expect(DEEP_VA['x86-32']).toBe(0xc0abc123);
    for (const hand of HAND_PRESETS) {
      const va = DEEP_VA[hand.name]!;
      expect(va).toBeLessThan(hand.vaLimit);
      for (let l = 0; l < hand.levels; l++) expect(hand.index(va, l)).toBeGreaterThan(0);
    }
  });

  it.each(named(HAND_PRESETS))('%s: a deep address through every level', (_n, hand) => {
    const { mmu, mem, pt } = machine(hand);
    const va = DEEP_VA[hand.name]!;
    pt.map(va, DATA + 7);
    const pa = (DATA + 7) * 4096 + (va % 4096);
    expect(pt.expectedPa(va)).toBe(pa);
    expect(mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(pa);
    mem.write32(pa, 0xfeedf00d);
    expect(mmu.load32(va)).toBe(0xfeedf00d);
    mmu.store16(va + 2, 0x1234);
    expect(mem.read32(pa)).toBe(0x1234f00d);
    // One walk for the read (it cached the page clean), one dirty assist for the store.
    expect(mmu.walks).toBe(2);
    expect(mmu.dirtyAssists).toBe(1);
    expect(mmu.walkMemoryRefs).toBe(2 * hand.levels);
  });

  it.each(named(HAND_PRESETS))(
    '%s: random mappings translate as the hand walk says (property)',
    (_n, hand) => {
      const va = fc.oneof(
        fc.integer({ min: 0, max: hand.vaLimit - 1 }),
        fc.integer({ min: 0, max: 2 ** 24 }),
        fc.integer({ min: 0, max: 2 ** 16 }).map((d) => hand.vaLimit - 1 - d),
      );
      fc.assert(
        fc.property(
          fc.uniqueArray(va, { minLength: 1, maxLength: 8, selector: (a) => Math.floor(a / 4096) }),
          fc.array(va, { maxLength: 12 }),
          (mapped, probes) => {
            const { mmu, pt } = machine(hand);
            for (const [i, a] of mapped.entries()) pt.map(a, DATA + i);
            for (let round = 0; round < 2; round++) {
              for (const a of [...mapped, ...probes]) {
                const want = pt.expectedPa(a);
                const got = mmu.translate(a, ACCESS_READ, MODE_USER);
                expect(got).toBe(want);
                if (want < 0) expect(mmu.fault.kind).toBe('not-present');
              }
            }
          },
        ),
        { seed: 17, numRuns: 60 },
      );
    },
  );
});

describe('accessed and dirty bits', () => {
  it.each(named(X86_HANDS))(
    '%s: a read sets A at every level; a write sets D only in the leaf',
    (_n, hand) => {
      const { mmu, pt } = machine(hand);
      const va = DEEP_VA[hand.name]!;
      pt.map(va, DATA);
      const last = hand.levels - 1;
      for (let l = 0; l <= last; l++) expect(pt.entryAt(va, l)[0] & (X86.A | X86.D)).toBe(0);
      mmu.load8(va);
      for (let l = 0; l <= last; l++) {
        expect(pt.entryAt(va, l)[0] & X86.A, `A at level ${l}`).toBe(X86.A);
        expect(pt.entryAt(va, l)[0] & X86.D, `D at level ${l}`).toBe(0);
      }
      mmu.store8(va, 1);
      for (let l = 0; l < last; l++) expect(pt.entryAt(va, l)[0] & X86.D, `D at level ${l}`).toBe(0);
      expect(pt.entryAt(va, last)[0] & X86.D).toBe(X86.D);
      // The frame number and other bits are untouched.
      expect(hand.pfnOf(...pt.entryAt(va, last))).toBe(DATA);
      expect(pt.entryAt(va, last)[0] & 0xfff).toBe(X86.P | X86.RW | X86.US | X86.A | X86.D);
    },
  );

  it('sv39: A and D only in the leaf; the pointers stay exactly as written', () => {
    const { mmu, pt } = machine(handSv39);
    const va = DEEP_VA.sv39!;
    pt.map(va, DATA);
    const before = [pt.entryAt(va, 0), pt.entryAt(va, 1)];
    mmu.load8(va);
    expect(pt.entryAt(va, 2)[0] & (SV.A | SV.D)).toBe(SV.A);
    mmu.store8(va, 1);
    expect(pt.entryAt(va, 2)[0] & 0xff).toBe(SV.V | SV.R | SV.W | SV.U | SV.A | SV.D);
    expect([pt.entryAt(va, 0), pt.entryAt(va, 1)]).toEqual(before);
  });

  it.each(named(HAND_PRESETS))('%s: a write hitting a clean TLB entry makes a dirty assist', (_n, hand) => {
    const { mmu, pt } = machine(hand);
    const va = DEEP_VA[hand.name]!;
    pt.map(va, DATA);
    const last = hand.levels - 1;
    const D = hand.name === 'sv39' ? SV.D : X86.D;
    mmu.load8(va); // miss, walk 1: cached clean
    expect(pt.entryAt(va, last)[0] & D).toBe(0);
    mmu.store8(va + 1, 9); // TLB hit, but clean: walk 2 sets D
    expect(pt.entryAt(va, last)[0] & D).toBe(D);
    expect(mmu.dirtyAssists).toBe(1);
    expect(mmu.walks).toBe(2);
    mmu.store8(va + 2, 9); // now cached dirty: no walk
    mmu.load8(va + 3);
    expect(mmu.walks).toBe(2);
    expect(mmu.dirtyAssists).toBe(1);
    expect(mmu.accesses).toBe(4);
    expect(mmu.dtlb.misses).toBe(1);
    expect(mmu.dtlb.hits).toBe(3);
    expect(mmu.faults).toBe(0);
  });

  it('a leaf already dirty is cached dirty by a read: the write needs no assist', () => {
    const { mmu, pt } = machine(handX86_64);
    pt.map(0x7000, DATA, { leaf: x86Bits(ALL_X86 | X86.D) });
    mmu.load8(0x7000);
    mmu.store8(0x7000, 1);
    expect(mmu.dirtyAssists).toBe(0);
    expect(mmu.walks).toBe(1);
  });

  it('a write that misses sets A and D in one walk', () => {
    const { mmu, pt } = machine(handX86_32);
    pt.map(0x40_1000, DATA);
    mmu.store32(0x40_1000, 5);
    expect(pt.entryAt(0x40_1000, 1)[0] & (X86.A | X86.D)).toBe(X86.A | X86.D);
    expect(pt.entryAt(0x40_1000, 0)[0] & (X86.A | X86.D)).toBe(X86.A);
    expect(mmu.walks).toBe(1);
    expect(mmu.dirtyAssists).toBe(0);
  });
});

describe('faults', () => {
  it.each(named(HAND_PRESETS))('%s: not present at each level, reported at that level', (_n, hand) => {
    const va = DEEP_VA[hand.name]!;
    for (let level = 0; level < hand.levels; level++) {
      const { mmu, pt } = machine(hand);
      pt.map(va, DATA);
      const [lo, hi] = pt.entryAt(va, level);
      pt.setEntry(va, level, [(lo & ~1) >>> 0, hi]); // bit 0 is P on x86 and V on Sv39
      expect(mmu.translate(va, ACCESS_WRITE, MODE_USER)).toBe(-1);
      expect(faultOf(mmu)).toEqual({
        kind: 'not-present',
        reason: undefined,
        level,
        va,
        access: ACCESS_WRITE,
        mode: MODE_USER,
      });
      expect(mmu.walkMemoryRefs).toBe(level + 1);
      expect(mmu.faults).toBe(1);
      // Nothing was cached, and no accessed bit was set anywhere.
      expect(mmu.dtlb.validCount()).toBe(0);
      expect(pt.entryAt(va, 0)[0] & (hand.name === 'sv39' ? SV.A : X86.A)).toBe(0);
    }
  });

  it.each(named(X86_HANDS))(
    '%s: write to read-only when RW is clear at any level, user or kernel',
    (_n, hand) => {
      const va = DEEP_VA[hand.name]!;
      const last = hand.levels - 1;
      for (let level = 0; level <= last; level++) {
        const { mmu, pt } = machine(hand);
        const upper = Array.from({ length: last }, (_, l) => x86Bits(l === level ? X86.US : ALL_X86));
        pt.map(va, DATA, { upper, leaf: x86Bits(level === last ? X86.US : ALL_X86) });
        expect(mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(DATA * 4096 + (va % 4096));
        for (const mode of [MODE_USER, MODE_KERNEL] as const) {
          expect(mmu.translate(va, ACCESS_WRITE, mode)).toBe(-1);
          expect(faultOf(mmu)).toMatchObject({
            kind: 'protection',
            reason: 'write-to-read-only',
            level: last,
            mode,
            access: ACCESS_WRITE,
          });
        }
        // The refused write set no dirty bit.
        expect(pt.entryAt(va, last)[0] & X86.D).toBe(0);
      }
    },
  );

  it.each(named(X86_HANDS))(
    '%s: user to kernel when U/S is clear at any level; the kernel may',
    (_n, hand) => {
      const va = DEEP_VA[hand.name]!;
      const last = hand.levels - 1;
      for (let level = 0; level <= last; level++) {
        const { mmu, pt } = machine(hand);
        const upper = Array.from({ length: last }, (_, l) => x86Bits(l === level ? X86.RW : ALL_X86));
        pt.map(va, DATA, { upper, leaf: x86Bits(level === last ? X86.RW : ALL_X86) });
        for (const access of [ACCESS_READ, ACCESS_WRITE, ACCESS_EXECUTE] as const) {
          expect(mmu.translate(va, access, MODE_USER)).toBe(-1);
          expect(faultOf(mmu)).toMatchObject({ kind: 'protection', reason: 'user-to-kernel', level: last });
          expect(mmu.translate(va, access, MODE_KERNEL)).toBe(DATA * 4096 + (va % 4096));
        }
      }
    },
  );

  it.each(named(HAND_PRESETS))(
    '%s: the kernel may use user pages but not write read-only ones',
    (_n, hand) => {
      const { mmu, pt } = machine(hand);
      const va = DEEP_VA[hand.name]!;
      const readOnlyUser = hand.name === 'sv39' ? { lo: SV.V | SV.R | SV.U } : x86Bits(X86.US);
      pt.map(va, DATA, { leaf: readOnlyUser });
      pt.map(va + 4096, DATA + 1);
      expect(mmu.translate(va, ACCESS_READ, MODE_KERNEL)).toBe(DATA * 4096 + (va % 4096));
      expect(mmu.translate(va + 4096, ACCESS_WRITE, MODE_KERNEL)).toBe((DATA + 1) * 4096 + (va % 4096));
      expect(mmu.translate(va, ACCESS_WRITE, MODE_KERNEL)).toBe(-1);
      expect(faultOf(mmu)).toMatchObject({
        kind: 'protection',
        reason: 'write-to-read-only',
        mode: MODE_KERNEL,
      });
      // The same through a kernel-mode store (the cached entry refuses too).
      mmu.setMode(MODE_KERNEL);
      expect(() => mmu.store8(va, 1)).toThrow(PageFaultError);
    },
  );

  it.each(named([handX86_64, handX86_64La57]))('%s: NX at any level forbids execution only', (_n, hand) => {
    const va = DEEP_VA[hand.name]!;
    const last = hand.levels - 1;
    for (let level = 0; level <= last; level++) {
      const { mmu, pt } = machine(hand);
      const nx = (l: number) => (l === level ? X86.NX_HI : 0);
      const upper = Array.from({ length: last }, (_, l) => x86Bits(ALL_X86, nx(l)));
      pt.map(va, DATA, { upper, leaf: x86Bits(ALL_X86, nx(last)) });
      expect(mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(DATA * 4096 + (va % 4096));
      expect(mmu.translate(va, ACCESS_WRITE, MODE_USER)).toBe(DATA * 4096 + (va % 4096));
      for (const mode of [MODE_USER, MODE_KERNEL] as const) {
        expect(mmu.translate(va, ACCESS_EXECUTE, mode)).toBe(-1);
        expect(faultOf(mmu)).toMatchObject({ kind: 'protection', reason: 'execute-no-execute', level: last });
      }
    }
  });

  it('x86-32 has no NX bit: every present page executes', () => {
    const { mmu, pt } = machine(handX86_32);
    pt.map(0x1000, DATA, { leaf: x86Bits(X86.US) });
    expect(mmu.translate(0x1000, ACCESS_EXECUTE, MODE_USER)).toBe(DATA * 4096);
  });

  it('sv39: user to kernel only from the leaf U bit; pointers carry no U', () => {
    const { mmu, pt } = machine(handSv39);
    const va = DEEP_VA.sv39!;
    pt.map(va, DATA); // pointers are V only (U clear): still a user page
    pt.map(va + 4096, DATA + 1, { leaf: { lo: SV.V | SV.R | SV.W } });
    expect(mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(DATA * 4096 + (va % 4096));
    expect(mmu.translate(va + 4096, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(faultOf(mmu)).toMatchObject({ kind: 'protection', reason: 'user-to-kernel', level: 2 });
    expect(mmu.translate(va + 4096, ACCESS_WRITE, MODE_KERNEL)).toBe((DATA + 1) * 4096 + (va % 4096));
  });

  it('sv39: write needs W, execute needs X, and a read of an execute-only page faults', () => {
    const { mmu, pt } = machine(handSv39);
    pt.map(0x1000, DATA, { leaf: { lo: SV.V | SV.R | SV.U } });
    pt.map(0x2000, DATA + 1, { leaf: { lo: SV.V | SV.X | SV.U } });
    pt.map(0x3000, DATA + 2, { leaf: { lo: SV.V | SV.R | SV.W | SV.U } });
    expect(mmu.translate(0x1000, ACCESS_WRITE, MODE_USER)).toBe(-1);
    expect(mmu.fault.reason).toBe('write-to-read-only');
    expect(mmu.translate(0x1000, ACCESS_EXECUTE, MODE_USER)).toBe(-1);
    expect(mmu.fault.reason).toBe('execute-no-execute');
    expect(mmu.translate(0x3000, ACCESS_EXECUTE, MODE_KERNEL)).toBe(-1);
    expect(mmu.fault.reason).toBe('execute-no-execute');
    expect(mmu.translate(0x2000, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(faultOf(mmu)).toMatchObject({ kind: 'protection', reason: 'read-not-readable', level: 2 });
    expect(mmu.translate(0x2000, ACCESS_EXECUTE, MODE_USER)).toBe((DATA + 1) * 4096);
    // Cached as execute-only: a read still faults, from the TLB entry this time.
    expect(mmu.translate(0x2004, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(mmu.fault.reason).toBe('read-not-readable');
  });

  it.each(named([handX86_64, handX86_64La57]))('%s: bits 46..51 are reserved at every level', (_n, hand) => {
    const va = DEEP_VA[hand.name]!;
    for (let level = 0; level < hand.levels; level++) {
      for (let bit = 46; bit <= 51; bit++) {
        const { mmu, pt } = machine(hand);
        pt.map(va, DATA);
        const [lo, hi] = pt.entryAt(va, level);
        pt.setEntry(va, level, [lo, (hi | (1 << (bit - 32))) >>> 0]);
        expect(mmu.translate(va, ACCESS_READ, MODE_KERNEL)).toBe(-1);
        expect(faultOf(mmu)).toMatchObject({ kind: 'reserved', level });
      }
    }
    // Bits 52..62 are available to software and bit 63 is NX: not reserved.
    const { mmu, pt } = machine(hand);
    pt.map(va, DATA, { leaf: x86Bits(ALL_X86, 0x7ff00000) });
    expect(mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(DATA * 4096 + (va % 4096));
  });

  it.each(named([handX86_64, handX86_64La57]))(
    '%s: PS above the leaf is reserved; in the leaf it is PAT',
    (_n, hand) => {
      const va = DEEP_VA[hand.name]!;
      const last = hand.levels - 1;
      for (let level = 0; level < last; level++) {
        const { mmu, pt } = machine(hand);
        const upper = Array.from({ length: last }, (_, l) => x86Bits(ALL_X86 | (l === level ? X86.PS : 0)));
        pt.map(va, DATA, { upper });
        expect(mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(-1);
        expect(faultOf(mmu)).toMatchObject({ kind: 'reserved', level });
      }
      const { mmu, pt } = machine(hand);
      pt.map(va, DATA, { leaf: x86Bits(ALL_X86 | X86.PS) });
      expect(mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(DATA * 4096 + (va % 4096));
    },
  );

  it('x86-32 runs with PSE clear: PS in a directory entry is ignored', () => {
    const { mmu, pt } = machine(handX86_32);
    pt.map(0x40_2000, DATA, { upper: [x86Bits(ALL_X86 | X86.PS)] });
    expect(mmu.translate(0x40_2000, ACCESS_READ, MODE_USER)).toBe(DATA * 4096);
  });

  it('sv39: bits 54..63 are reserved at every level', () => {
    const va = DEEP_VA.sv39!;
    for (let level = 0; level < 3; level++) {
      for (const bit of [54, 58, 61, 63]) {
        const { mmu, pt } = machine(handSv39);
        pt.map(va, DATA);
        const [lo, hi] = pt.entryAt(va, level);
        pt.setEntry(va, level, [lo, (hi | (2 ** (bit - 32))) >>> 0]);
        expect(mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(-1);
        expect(faultOf(mmu)).toMatchObject({ kind: 'reserved', level });
      }
    }
  });

  it('sv39: W without R, a leaf above the last level and a pointer at the last level are reserved', () => {
    const va = DEEP_VA.sv39!;
    let m = machine(handSv39);
    m.pt.map(va, DATA, { leaf: { lo: SV.V | SV.W | SV.U } });
    expect(m.mmu.translate(va, ACCESS_WRITE, MODE_USER)).toBe(-1);
    expect(faultOf(m.mmu)).toMatchObject({ kind: 'reserved', level: 2 });
    expect(m.mmu.translate(va, ACCESS_READ, MODE_KERNEL)).toBe(-1);
    expect(m.mmu.fault.kind).toBe('reserved');
    for (const level of [0, 1]) {
      // A superpage (R set above the last level) is not modelled.
      m = machine(handSv39);
      const upper = [0, 1].map((l) => ({ lo: l === level ? SV.V | SV.R | SV.U : SV.V }));
      m.pt.map(va, DATA, { upper });
      expect(m.mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(-1);
      expect(faultOf(m.mmu)).toMatchObject({ kind: 'reserved', level });
      // W without R above the last level: reserved there too.
      m = machine(handSv39);
      m.pt.map(va, DATA, { upper: [0, 1].map((l) => ({ lo: l === level ? SV.V | SV.W : SV.V })) });
      expect(m.mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(-1);
      expect(faultOf(m.mmu)).toMatchObject({ kind: 'reserved', level });
    }
    m = machine(handSv39);
    m.pt.map(va, DATA, { leaf: { lo: SV.V } }); // R = W = X = 0 at the last level
    expect(m.mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(faultOf(m.mmu)).toMatchObject({ kind: 'reserved', level: 2 });
  });

  it.each(named(HAND_PRESETS))('%s: a frame beyond installed memory is a bus fault', (_n, hand) => {
    const va = DEEP_VA[hand.name]!;
    let m = machine(hand);
    m.pt.map(va, FRAMES); // the first frame past the end
    expect(m.mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(faultOf(m.mmu)).toMatchObject({ kind: 'bus', level: hand.levels - 1 });
    // A table pointer beyond memory: the read of the next level's entry fails.
    m = machine(hand);
    m.pt.map(va, DATA);
    const [lo, hi] = m.pt.entryAt(va, 0);
    const bits = { lo: lo & 0x1ff, hi: hi & 0x80000000 }; // keep the flags, drop the frame
    m.pt.setEntry(va, 0, hand.entry(FRAMES + 5, bits));
    expect(m.mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(faultOf(m.mmu)).toMatchObject({ kind: 'bus', level: 1 });
    // A root register beyond memory.
    m = machine(hand);
    m.mmu.switchAddressSpace(FRAMES, 0);
    expect(m.mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(faultOf(m.mmu)).toMatchObject({ kind: 'bus', level: 0 });
  });

  it.each(named(HAND_PRESETS))(
    '%s: an address of more than vaBits bits is an address-size fault',
    (_n, hand) => {
      const { mmu, pt } = machine(hand);
      pt.map(0, DATA);
      for (const va of [hand.vaLimit, hand.vaLimit + 4096, 2 ** 60, -1, -4096, Number.NaN]) {
        expect(mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(-1);
        expect(mmu.fault.kind).toBe('address-size');
        expect(mmu.fault.level).toBe(0);
      }
      expect(mmu.walkMemoryRefs).toBe(0);
      expect(mmu.translate(hand.vaLimit - 1, ACCESS_READ, MODE_USER)).toBe(-1);
      expect(mmu.fault.kind).toBe('not-present');
    },
  );

  it('regression: a negative address never hits the TLB entry of the top page (x86-32 wraparound)', () => {
    // va -1 used to give vpn (-1 >>> 12) = 0xfffff: a cached top page answered for it.
    const { mmu, mem, pt } = machine(handX86_32);
    pt.map(0xffff_f000, DATA);
    mem.write8(DATA * 4096 + 0xfff, 0x99);
    expect(mmu.translate(0xffff_ffff, ACCESS_READ, MODE_USER)).toBe(DATA * 4096 + 0xfff);
    expect(mmu.load8(0xffff_ffff)).toBe(0x99);
    expect(mmu.translate(-1, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(mmu.fault.kind).toBe('address-size');
    expect(() => mmu.load8(-1)).toThrow(PageFaultError);
    expect(mmu.fault).toMatchObject({ kind: 'address-size', va: -1 });
    expect(() => mmu.store8(-4096, 1)).toThrow(PageFaultError);
    expect(mem.read8(DATA * 4096)).toBe(0);
  });

  it('without a handler an access throws a PageFaultError holding a copy of the fault', () => {
    const { mmu } = machine(handX86_64);
    let err: unknown;
    try {
      mmu.store32(0x1234, 1);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PageFaultError);
    const pf = err as PageFaultError;
    expect(pf.fault).toEqual({
      kind: 'not-present',
      reason: undefined,
      level: 0,
      va: 0x1234,
      access: ACCESS_WRITE,
      mode: MODE_USER,
    });
    expect(pf.fault).not.toBe(mmu.fault);
    expect(pf.message).toBe('unhandled page fault: not-present at level 0, write of 0x1234 in user mode');
  });
});

describe('the page-fault handler', () => {
  it('maps the page on demand; the access retries: 1 access, 1 TLB miss, 2 walks', () => {
    const { mmu, mem, pt, clock } = machine(handX86_64);
    const seen: MmuFault[] = [];
    mmu.setFaultHandler((f) => {
      seen.push({ ...f });
      pt.map(f.va, DATA);
    });
    const va = DEEP_VA['x86-64']!;
    mmu.store32(va, 0xabcdef);
    expect(seen).toEqual([
      { kind: 'not-present', reason: undefined, level: 0, va, access: ACCESS_WRITE, mode: MODE_USER },
    ]);
    expect(mem.read32(DATA * 4096 + (va % 4096))).toBe(0xabcdef);
    expect(mmu.accesses).toBe(1);
    expect(mmu.dtlb.misses).toBe(1);
    expect(mmu.dtlb.hits).toBe(0);
    expect(mmu.walks).toBe(2);
    expect(mmu.faults).toBe(1);
    // 1 lookup + 1 data access, 1 entry read by the failed walk, the fault entry, 4 by the retry.
    const c = DEFAULT_COST_MODEL;
    expect(clock.now).toBe(c.tlbLookupCycles + c.memoryAccessCycles * 6 + c.faultEntryCycles);
    // The retry set A and D like any walk.
    expect(pt.entryAt(va, 3)[0] & (X86.A | X86.D)).toBe(X86.A | X86.D);
    // The next access to the page hits.
    expect(mmu.load32(va)).toBe(0xabcdef);
    expect(mmu.dtlb.hits).toBe(1);
  });

  it('a protection fault from a cached entry drops it; the handler fixes the entry and the retry walks', () => {
    const { mmu, mem, pt } = machine(handX86_32);
    pt.map(0x5000, DATA, { leaf: x86Bits(X86.US) }); // read-only
    const kinds: string[] = [];
    mmu.setFaultHandler((f) => {
      kinds.push(`${f.kind}/${f.reason}`);
      expect(mmu.dtlb.probe(0x5, 0)).toBe(-1); // the refusing entry is gone
      pt.map(f.va, DATA + 1); // copy-on-write, in spirit: a new writable frame
    });
    mmu.load8(0x5000); // cached read-only
    mmu.store8(0x5001, 7);
    expect(kinds).toEqual(['protection/write-to-read-only']);
    expect(mem.read8((DATA + 1) * 4096 + 1)).toBe(7);
    expect(mmu.accesses).toBe(2);
    expect(mmu.dtlb.misses).toBe(1);
    expect(mmu.dtlb.hits).toBe(1);
    expect(mmu.walks).toBe(2); // the fault itself walked nothing
  });

  it('regression: a dirty assist whose walk faults drops the stale clean entry', () => {
    const { mmu, pt } = machine(handX86_64);
    pt.map(0x9000, DATA);
    mmu.load8(0x9000); // cached writable, clean
    // The kernel clears the PTE without invalidating (the TLB still holds the page).
    pt.setEntry(0x9000, 3, [0, 0]);
    let probeInHandler = 0;
    mmu.setFaultHandler((f) => {
      expect(f).toMatchObject({ kind: 'not-present', level: 3 });
      probeInHandler = mmu.dtlb.probe(9, 0);
      pt.map(f.va, DATA + 2);
    });
    mmu.store8(0x9000, 1);
    expect(probeInHandler).toBe(-1);
    expect(mmu.translate(0x9000, ACCESS_READ, MODE_USER)).toBe((DATA + 2) * 4096);
  });

  it('a handler that throws abandons the access; the fault is counted once', () => {
    const { mmu } = machine(handSv39);
    mmu.setFaultHandler(() => {
      throw new Error('SIGSEGV');
    });
    expect(() => mmu.load8(0x1000)).toThrow('SIGSEGV');
    expect(mmu.faults).toBe(1);
    expect(mmu.accesses).toBe(1);
  });
});

describe('loads and stores of every width', () => {
  /** Two adjacent virtual pages on frames far apart (DATA + 5 then DATA + 1). */
  function twoPages() {
    const m = machine(handX86_64);
    m.pt.map(0x10_000, DATA + 5);
    m.pt.map(0x11_000, DATA + 1);
    return m;
  }

  it('little-endian within a page', () => {
    const { mmu, mem } = twoPages();
    const pa = (DATA + 5) * 4096;
    mmu.store8(0x10_010, 0x1ab);
    expect(mem.read8(pa + 0x10)).toBe(0xab);
    mmu.store16(0x10_020, 0xbeef);
    expect([mem.read8(pa + 0x20), mem.read8(pa + 0x21)]).toEqual([0xef, 0xbe]);
    expect(mmu.load16(0x10_020)).toBe(0xbeef);
    mmu.store32(0x10_030, 0xcafebabe);
    expect(mem.read32(pa + 0x30)).toBe(0xcafebabe);
    expect(mmu.load32(0x10_030)).toBe(0xcafebabe);
    mmu.store64(0x10_040, 0x1f_0000_0000_0001);
    expect(mem.read64Big(pa + 0x40)).toBe(0x1f_0000_0000_0001n);
    expect(mmu.load64(0x10_040)).toBe(0x1f_0000_0000_0001);
    mmu.store64(0x10_048, -2);
    expect(mem.read64Big(pa + 0x48)).toBe(0xffff_ffff_ffff_fffen);
    expect(mmu.load8(0x10_010)).toBe(0xab);
  });

  it('accesses straddling two pages land in both frames', () => {
    const { mmu, mem } = twoPages();
    const end = (DATA + 5) * 4096 + 4096; // just past the first page's frame
    const next = (DATA + 1) * 4096;
    mmu.store16(0x10_fff, 0x2211);
    expect([mem.read8(end - 1), mem.read8(next)]).toEqual([0x11, 0x22]);
    expect(mmu.load16(0x10_fff)).toBe(0x2211);
    mmu.store32(0x10_ffe, 0x44332211);
    expect([mem.read8(end - 2), mem.read8(end - 1), mem.read8(next), mem.read8(next + 1)]).toEqual([
      0x11, 0x22, 0x33, 0x44,
    ]);
    expect(mmu.load32(0x10_ffe)).toBe(0x44332211);
    mmu.store64(0x10_ffb, 0x07060504030201); // bytes 01 .. 07 00; 5 in the first page
    expect(mem.read8(end - 5)).toBe(0x01);
    expect(mem.read8(end - 1)).toBe(0x05);
    expect(mem.read8(next)).toBe(0x06);
    expect(mem.read8(next + 1)).toBe(0x07);
    expect(mem.read8(next + 2)).toBe(0x00);
    expect(mmu.load64(0x10_ffb)).toBe(0x07060504030201);
    mmu.store64(0x10_ffc, -1);
    expect(mmu.load32(0x10_ffc)).toBe(0xffffffff);
    expect(mmu.load32(0x11_000)).toBe(0xffffffff);
    // The frame that follows the first page's frame is untouched.
    expect(mem.isFrameUntouched(DATA + 6)).toBe(true);
  });

  it('ranges translate once per page touched', () => {
    const { mmu, mem } = twoPages();
    const src = Uint8Array.from({ length: 300 }, (_, i) => i & 0xff);
    const before = mmu.accesses;
    mmu.storeBytes(0x10_f00, src); // 256 bytes in page 0x10, 44 in page 0x11
    expect(mmu.accesses - before).toBe(2);
    expect(mem.read8((DATA + 5) * 4096 + 0xf00)).toBe(0);
    expect(mem.read8((DATA + 5) * 4096 + 0xfff)).toBe(255);
    expect(mem.read8((DATA + 1) * 4096)).toBe(0);
    expect(mem.read8((DATA + 1) * 4096 + 43)).toBe(43);
    const dst = new Uint8Array(310).fill(0xee);
    mmu.loadBytes(0x10_f00, dst, 5, 300);
    expect([...dst.subarray(5, 305)]).toEqual([...src]);
    expect(dst[4]).toBe(0xee);
    expect(dst[305]).toBe(0xee);
    mmu.fillBytes(0x10_ffe, 4, 0x5a);
    mmu.fillBytes(0x10_000, 0, 1); // zero length: nothing
    expect(mmu.accesses - before).toBe(2 + 2 + 2);
    // A scalar load across the boundary goes byte by byte: 4 accesses.
    expect(mmu.load32(0x10_ffe)).toBe(0x5a5a5a5a);
    expect(mmu.accesses - before).toBe(2 + 2 + 2 + 4);
  });

  it('fetch8 is an execute access', () => {
    const { mmu, pt, mem } = machine(handX86_64);
    pt.map(0x1000, DATA, { leaf: x86Bits(ALL_X86, X86.NX_HI) });
    pt.map(0x2000, DATA + 1);
    mem.write8((DATA + 1) * 4096 + 3, 0x90);
    expect(mmu.fetch8(0x2003)).toBe(0x90);
    expect(mmu.load8(0x1000)).toBe(0);
    expect(() => mmu.fetch8(0x1000)).toThrow(PageFaultError);
    expect(mmu.fault).toMatchObject({
      kind: 'protection',
      reason: 'execute-no-execute',
      access: ACCESS_EXECUTE,
    });
  });
});

describe('the cost model', () => {
  const COST: CostModel = resolveCostModel({
    tlbLookupCycles: 3,
    memoryAccessCycles: 50,
    faultEntryCycles: 7000,
    tlbRefillTrapCycles: 900,
    lineCopyCycles: 5,
  });

  it('charges a hit tlbLookup + memoryAccess, and a miss one memoryAccess more per level', () => {
    for (const hand of HAND_PRESETS) {
      const { mmu, pt, clock } = machine(hand, { cost: COST });
      pt.map(0x3000, DATA);
      mmu.load8(0x3000);
      expect(clock.now, hand.name).toBe(3 + 50 + hand.levels * 50);
      mmu.load8(0x3001);
      expect(clock.now, hand.name).toBe(3 + 50 + hand.levels * 50 + (3 + 50));
    }
  });

  it('charges a walk that stops early only for the entries it read, and the fault entry', () => {
    const { mmu, pt, clock } = machine(handX86_64, { cost: COST });
    pt.map(0x3000, DATA);
    // Not present at level 2 of 0x4000_0000 (PML4 entry 0 exists, PDPT entry 1 does not).
    expect(mmu.translate(0x4000_0000, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(mmu.fault.level).toBe(1);
    expect(clock.now).toBe(3 + 50 + 2 * 50); // translate calls no handler
    mmu.setFaultHandler(() => {
      throw new Error('stop');
    });
    expect(() => mmu.load8(0x4000_0000)).toThrow('stop');
    expect(clock.now).toBe(2 * (3 + 50 + 2 * 50) + 7000);
  });

  it('the effective access time of a known sequence is the textbook formula', () => {
    const { mmu, pt, clock } = machine(handX86_64, { cost: COST });
    const pages = [1, 2, 3, 4, 5];
    for (const p of pages) pt.map(p * 4096, DATA + p);
    // 12 references: first touches of 5 pages miss, the 7 repeats hit (16-entry TLB, no evictions).
    const refs = [1, 2, 1, 1, 3, 2, 4, 4, 5, 1, 3, 5];
    for (const p of refs) mmu.load8(p * 4096 + 8);
    const n = refs.length;
    const misses = 5;
    const h = (n - misses) / n;
    const tTlb = 3;
    const tMem = 50;
    const L = 4;
    // EAT = h (t_tlb + t_mem) + (1 - h) (t_tlb + (L + 1) t_mem)
    const eat = h * (tTlb + tMem) + (1 - h) * (tTlb + (L + 1) * tMem);
    expect(clock.now).toBeCloseTo(n * eat, 6);
    expect(clock.now).toBe(7 * 53 + 5 * 253);
    expect(mmu.dtlb.hits).toBe(7);
    expect(mmu.dtlb.misses).toBe(5);
  });

  it('charges range copies per 64-byte line on top of the access', () => {
    const { mmu, pt, clock } = machine(handX86_32, { cost: COST });
    pt.map(0, DATA);
    mmu.load8(0); // warm the TLB
    const t0 = clock.now;
    mmu.loadBytes(0, new Uint8Array(200)); // 1 access, ceil(200 / 64) = 4 lines
    expect(clock.now - t0).toBe(3 + 50 + 4 * 5);
  });

  it('resolveCostModel merges overrides and refuses costs that are not whole cycles', () => {
    expect(resolveCostModel()).toEqual(DEFAULT_COST_MODEL);
    expect(resolveCostModel({ memoryAccessCycles: 0 }).memoryAccessCycles).toBe(0);
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2e12]) {
      expect(() => resolveCostModel({ faultEntryCycles: bad })).toThrow(/cost\.faultEntryCycles/);
    }
  });
});

describe('the second-level TLB', () => {
  const COST: CostModel = resolveCostModel({
    tlbLookupCycles: 1,
    stlbLookupCycles: 7,
    memoryAccessCycles: 10,
  });
  /** A 4-entry direct-mapped first level in front of a 64-entry 4-way second level. */
  function stlbMachine(hand: HandFormat = handX86_64) {
    return machine(hand, {
      tlb: { entries: 4, ways: 1, replacement: 'lru' },
      stlb: { entries: 64, ways: 4 },
      cost: COST,
    });
  }
  // Pages 1 and 5 share set 1 of the direct-mapped first level: each evicts the other.
  const A = 1 * 4096;
  const B = 5 * 4096;

  it('refills the first level from the second without a walk, at the STLB lookup cost', () => {
    const { mmu, pt, clock } = stlbMachine();
    pt.map(A, DATA);
    pt.map(B, DATA + 1);
    mmu.load8(A); // L1 miss, STLB miss: walk, fills both
    mmu.load8(B); // the same; evicts A from L1 only
    expect(mmu.walks).toBe(2);
    expect(clock.now).toBe(2 * (1 + 10 + 7 + 4 * 10));
    const t0 = clock.now;
    mmu.load8(A + 8); // L1 miss, STLB hit
    expect(mmu.walks).toBe(2);
    expect(clock.now - t0).toBe(1 + 10 + 7);
    expect(mmu.dtlb.misses).toBe(3);
    expect(mmu.stlb!.hits).toBe(1);
    expect(mmu.stlb!.misses).toBe(2);
    mmu.load8(A + 16); // an L1 hit again
    expect(mmu.dtlb.hits).toBe(1);
    expect(mmu.stlb!.hits + mmu.stlb!.misses).toBe(3);
    expect(mmu.dtlb.validCount()).toBe(1); // A and B fight over one L1 set
    expect(mmu.stlb!.validCount()).toBe(2);
    mmu.dtlb.checkInvariants();
    mmu.stlb!.checkInvariants();
  });

  it('keeps a changed translation until the kernel invalidates the page, in both levels', () => {
    const { mmu, pt, mem } = stlbMachine();
    pt.map(A, DATA);
    pt.map(B, DATA + 1);
    mem.write8(DATA * 4096, 11);
    mem.write8((DATA + 2) * 4096, 22);
    expect(mmu.load8(A)).toBe(11);
    mmu.load8(B); // A leaves L1, stays in the STLB
    pt.map(A, DATA + 2); // the PTE changes, no invlpg: the STLB still has the old frame
    expect(mmu.load8(A)).toBe(11);
    mmu.invalidatePage(A);
    expect(mmu.dtlb.probe(1, 0)).toBe(-1);
    expect(mmu.stlb!.probe(1, 0)).toBe(-1);
    expect(mmu.load8(A)).toBe(22);
    expect(mmu.walks).toBe(3);
  });

  it('a write through an entry the STLB holds clean makes a dirty assist that refreshes both levels', () => {
    const { mmu, pt } = stlbMachine();
    pt.map(A, DATA);
    pt.map(B, DATA + 1);
    mmu.load8(A); // cached clean
    mmu.load8(B);
    mmu.store8(A, 1); // STLB hit, clean: walk to set D
    expect(pt.entryAt(A, 3)[0] & X86.D).toBe(X86.D);
    expect(mmu.dirtyAssists).toBe(1);
    expect(mmu.walks).toBe(3);
    mmu.load8(B);
    mmu.store8(A + 1, 2); // the STLB copy is dirty now: no walk
    expect(mmu.walks).toBe(3);
    expect(mmu.stlb!.perm[mmu.stlb!.probe(1, 0)]! & TLB_DIRTY).toBe(TLB_DIRTY);
  });

  it('a protection fault found in the STLB drops the page from both levels', () => {
    const { mmu, pt } = stlbMachine();
    pt.map(A, DATA, { leaf: x86Bits(X86.US) }); // read-only
    pt.map(B, DATA + 1);
    mmu.load8(A);
    mmu.load8(B);
    expect(mmu.translate(A, ACCESS_WRITE, MODE_USER)).toBe(-1);
    expect(faultOf(mmu)).toMatchObject({ kind: 'protection', reason: 'write-to-read-only' });
    expect(mmu.walks).toBe(2); // refused from the cached permissions
    expect(mmu.stlb!.probe(1, 0)).toBe(-1);
    expect(mmu.dtlb.probe(1, 0)).toBe(-1);
  });

  it('flushes with the first level: address-space switch without ASIDs, flushTlb, invalidateAsid', () => {
    const { mmu, pt } = stlbMachine();
    pt.map(A, DATA);
    mmu.load8(A);
    mmu.switchAddressSpace(1, 0); // asidBits 0: a CR3 write
    expect(mmu.stlb!.validCount()).toBe(0);
    mmu.load8(A);
    mmu.flushTlb();
    expect(mmu.stlb!.validCount()).toBe(0);
    const tagged = machine(handX86_64, { stlb: { entries: 64, ways: 4 }, asidBits: 8 });
    tagged.pt.map(A, DATA);
    tagged.mmu.switchAddressSpace(1, 3);
    tagged.mmu.load8(A);
    tagged.mmu.switchAddressSpace(1, 4); // tagged entries stay
    expect(tagged.mmu.stlb!.validCount()).toBe(1);
    tagged.mmu.invalidateAsid(3);
    expect(tagged.mmu.stlb!.validCount()).toBe(0);
  });

  it('serves instruction fetches too (one unified second level behind split first levels)', () => {
    const { mmu, pt } = machine(handX86_64, {
      tlb: { entries: 4, ways: 1, replacement: 'lru' },
      splitTlb: true,
      stlb: { entries: 64, ways: 4 },
    });
    pt.map(A, DATA);
    mmu.load8(A); // data walk fills the dTLB and the STLB
    mmu.fetch8(A); // iTLB miss, STLB hit
    expect(mmu.walks).toBe(1);
    expect(mmu.itlb.misses).toBe(1);
    expect(mmu.stlb!.hits).toBe(1);
  });

  it('the effective access time is the two-level textbook formula', () => {
    const { mmu, pt, clock } = stlbMachine();
    const pages = [1, 5, 9, 2];
    for (const p of pages) pt.map(p * 4096, DATA + p);
    // Pages 1, 5 and 9 fight over set 1 of L1; page 2 has set 2 to itself.
    const refs = [1, 5, 9, 2, 1, 2, 5, 9, 9, 2];
    for (const p of refs) mmu.load8(p * 4096);
    const n = refs.length;
    const h1 = mmu.dtlb.hits / n;
    const h2 = mmu.stlb!.hits / mmu.dtlb.misses;
    expect([mmu.dtlb.hits, mmu.dtlb.misses, mmu.stlb!.hits, mmu.stlb!.misses]).toEqual([3, 7, 3, 4]);
    // EAT = h (t_tlb + t_mem) + (1 - h) (t_tlb + t_stlb + t_mem + (1 - h2) L t_mem)
    const eat = h1 * (1 + 10) + (1 - h1) * (1 + 7 + 10 + (1 - h2) * 4 * 10);
    expect(clock.now).toBeCloseTo(n * eat, 6);
  });

  it('a software-managed TLB has none', () => {
    expect(() => machine(handX86_32, { tlbManagement: 'software', stlb: { entries: 64, ways: 4 } })).toThrow(
      /stlb: a software-managed TLB has no second level/,
    );
  });
});

describe('the software-managed TLB', () => {
  /** A refill handler that walks the hand tables in software and writes the TLB entry. */
  function softwareMachine(hand: HandFormat = handX86_32) {
    const m = machine(hand, { tlbManagement: 'software' });
    const calls: string[] = [];
    m.mmu.setRefillHandler((mmu, va, access) => {
      calls.push(`${va.toString(16)}/${access}`);
      const pa = m.pt.expectedPa(va);
      if (pa < 0) {
        mmu.raiseFault('not-present', hand.levels - 1);
        return false;
      }
      const dirty = access === ACCESS_WRITE ? TLB_DIRTY : 0;
      mmu.tlbWrite(
        va,
        Math.floor(pa / 4096),
        TLB_READABLE | TLB_WRITABLE | TLB_EXECUTABLE | TLB_USER | dirty,
        access,
      );
      return true;
    });
    return { ...m, calls };
  }

  it('every miss traps to the refill handler and nothing is walked', () => {
    const { mmu, pt, mem, calls, clock } = softwareMachine();
    for (let p = 0; p < 6; p++) pt.map(p * 4096, DATA + p);
    mem.write8((DATA + 2) * 4096 + 5, 0x42);
    const walkedRefs = mmu.walkMemoryRefs;
    expect(mmu.load8(2 * 4096 + 5)).toBe(0x42);
    for (let p = 0; p < 6; p++) mmu.load8(p * 4096);
    expect(mmu.dtlb.misses).toBe(6);
    expect(mmu.refillTraps).toBe(mmu.dtlb.misses);
    expect(calls).toEqual(['2005/0', '0/0', '1000/0', '3000/0', '4000/0', '5000/0']);
    expect(mmu.walks).toBe(0);
    expect(mmu.walkMemoryRefs).toBe(walkedRefs);
    expect(clock.now).toBe(7 * (1 + 10) + 6 * DEFAULT_COST_MODEL.tlbRefillTrapCycles);
  });

  it('a handler returning false after raiseFault gives a page fault', () => {
    const { mmu, pt } = softwareMachine();
    expect(mmu.translate(0x7000, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(faultOf(mmu)).toEqual({
      kind: 'not-present',
      reason: undefined,
      level: 1,
      va: 0x7000,
      access: ACCESS_READ,
      mode: MODE_USER,
    });
    let handled = 0;
    mmu.setFaultHandler((f) => {
      handled++;
      expect(f.kind).toBe('not-present');
      pt.map(f.va, DATA);
    });
    mmu.store8(0x7001, 3);
    expect(handled).toBe(1);
    expect(mmu.refillTraps).toBe(3); // translate's, the store's, the store's retry
    expect(mmu.dtlb.misses).toBe(2);
    expect(mmu.walks).toBe(0);
  });

  it('with no refill handler a miss is a tlb-miss fault', () => {
    const { mmu } = machine(handX86_32, { tlbManagement: 'software' });
    expect(mmu.translate(0x1000, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(faultOf(mmu)).toMatchObject({ kind: 'tlb-miss', level: 0, va: 0x1000 });
    expect(() => mmu.load8(0x1000)).toThrow(PageFaultError);
    expect(mmu.refillTraps).toBe(2);
  });

  it('regression: a refusal without raiseFault reports tlb-miss, not the previous fault', () => {
    const { mmu } = machine(handX86_32, { tlbManagement: 'software' });
    mmu.setRefillHandler((m, va) => {
      if (va === 0x1000) m.raiseFault('reserved', 1);
      return false;
    });
    mmu.translate(0x1000, ACCESS_READ, MODE_USER);
    expect(mmu.fault.kind).toBe('reserved');
    mmu.translate(0x2000, ACCESS_READ, MODE_USER);
    expect(faultOf(mmu)).toMatchObject({ kind: 'tlb-miss', va: 0x2000 });
  });

  it('regression: a write to a page cached clean traps to the handler instead of walking', () => {
    const { mmu, pt, calls } = softwareMachine();
    pt.map(0x3000, DATA);
    mmu.load8(0x3000); // written clean (no TLB_DIRTY on a read)
    mmu.store8(0x3000, 1); // hits a clean entry: the handler rewrites it dirty
    mmu.store8(0x3001, 2);
    expect(calls).toEqual(['3000/0', '3000/1']);
    expect(mmu.walks).toBe(0);
    expect(mmu.dirtyAssists).toBe(1);
    expect(mmu.refillTraps).toBe(2);
    expect(mmu.dtlb.misses).toBe(1);
    expect(mmu.dtlb.hits).toBe(2);
  });

  it('regression: an address wider than the format faults before any refill trap', () => {
    const { mmu, calls } = softwareMachine(handSv39);
    for (const va of [2 ** 39, -1]) {
      expect(mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(-1);
      expect(mmu.fault.kind).toBe('address-size');
    }
    expect(calls).toEqual([]);
    expect(mmu.refillTraps).toBe(0);
  });

  it('an entry written without the needed permission is a protection fault', () => {
    const { mmu } = machine(handX86_32, { tlbManagement: 'software' });
    mmu.setRefillHandler((m, va) => {
      m.tlbWrite(va, DATA, TLB_READABLE);
      return true;
    });
    expect(mmu.translate(0x1000, ACCESS_READ, MODE_KERNEL)).toBe(DATA * 4096);
    expect(mmu.translate(0x2000, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(faultOf(mmu)).toMatchObject({ kind: 'protection', reason: 'user-to-kernel' });
    expect(mmu.translate(0x3000, ACCESS_WRITE, MODE_KERNEL)).toBe(-1);
    expect(faultOf(mmu)).toMatchObject({ kind: 'protection', reason: 'write-to-read-only' });
    expect(mmu.dtlb.probe(3, 0)).toBe(-1); // the refused entry is dropped
  });
});
