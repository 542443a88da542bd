/**
 * The TLB: geometry and set indexing, replacement, ASIDs and global entries, invalidation,
 * split instruction and data TLBs, and the MMU's hit/miss counts against textbook
 * set-associative cache simulations written here.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Clock } from '../kernel/hw/clock.ts';
import { resolveCostModel } from '../kernel/hw/cost.ts';
import {
  ACCESS_EXECUTE,
  ACCESS_READ,
  Mmu,
  type MmuOptions,
  MODE_KERNEL,
  MODE_USER,
} from '../kernel/hw/mmu.ts';
import { x86_32 } from '../kernel/hw/paging/x86_32.ts';
import { x86_64 } from '../kernel/hw/paging/x86_64.ts';
import { PhysicalMemory } from '../kernel/hw/physmem.ts';
import {
  TLB_DIRTY,
  TLB_GLOBAL,
  TLB_READABLE,
  TLB_USER,
  TLB_WRITABLE,
  Tlb,
  type TlbConfig,
  type TlbReplacement,
} from '../kernel/hw/tlb.ts';
import { HandPageTables, handX86_32, handX86_64, X86 } from './helpers/pagetables.ts';

const R = TLB_READABLE;

function tlb(entries: number, ways: number, replacement: TlbReplacement = 'lru', seed?: number): Tlb {
  return new Tlb({ entries, ways, replacement, seed });
}

/** The VPNs cached, sorted. */
function cached(t: Tlb): number[] {
  return t
    .dump()
    .map((e) => e.vpn)
    .sort((a, b) => a - b);
}

describe('geometry', () => {
  it('direct-mapped, set-associative and fully associative', () => {
    const direct = tlb(8, 1);
    const setAssoc = tlb(8, 2);
    const full = tlb(8, 8);
    expect([direct.sets, setAssoc.sets, full.sets]).toEqual([8, 4, 1]);
    // vpns 0, 8, 16 share set 0 of the direct-mapped TLB and of the 4-set TLB.
    for (const t of [direct, setAssoc, full]) for (const v of [0, 8, 16]) t.insert(v, 0, v, R);
    expect(cached(direct)).toEqual([16]);
    expect(cached(setAssoc)).toEqual([8, 16]);
    expect(cached(full)).toEqual([0, 8, 16]);
    // The fully associative TLB holds any 8 pages at once.
    for (const v of [1000, 3, 77, 2 ** 30, 5]) full.insert(v, 0, 1, R);
    expect(full.validCount()).toBe(8);
    expect(full.evictions).toBe(0);
    full.insert(6, 0, 1, R);
    expect(full.evictions).toBe(1);
    for (const t of [direct, setAssoc, full]) t.checkInvariants();
  });

  it('puts vpn v in set v mod sets, for power-of-two and other set counts', () => {
    const shapes: Array<[number, number]> = [
      [16, 4],
      [12, 2],
      [15, 5],
      [7, 1],
      [64, 64],
      [48, 3],
    ];
    for (const [entries, ways] of shapes) {
      const t = tlb(entries, ways);
      const sets = entries / ways;
      for (const vpn of [0, 1, 5, 6, 13, 1023, 2 ** 20 + 3, 2 ** 36 - 1, 2 ** 41 + 7]) {
        expect(t.setOf(vpn), `${entries}/${ways} vpn ${vpn}`).toBe(vpn % sets);
        const slot = t.insert(vpn, 0, 1, R);
        expect(Math.floor(slot / ways)).toBe(vpn % sets);
        expect(t.lookup(vpn, 0)).toBe(slot);
        t.checkInvariants();
      }
    }
  });

  it('refuses impossible configurations', () => {
    const bad: TlbConfig[] = [
      { entries: 0, ways: 1, replacement: 'lru' },
      { entries: 65537, ways: 1, replacement: 'lru' },
      { entries: 16, ways: 3, replacement: 'lru' },
      { entries: 16, ways: 0, replacement: 'lru' },
      { entries: 2.5, ways: 1, replacement: 'lru' },
      { entries: 16, ways: 4, replacement: 'LRU' as never },
    ];
    for (const config of bad) expect(() => new Tlb(config), JSON.stringify(config)).toThrow(RangeError);
  });
});

describe('replacement', () => {
  /** A 4-way single set: fill 1..4, touch 1 and 2, then insert 5 and 6. */
  function run(replacement: TlbReplacement, seed = 1): number[] {
    const t = tlb(4, 4, replacement, seed);
    for (const v of [1, 2, 3, 4]) t.insert(v, 0, v, R);
    t.lookup(1, 0);
    t.lookup(2, 0);
    t.insert(5, 0, 5, R);
    t.insert(6, 0, 6, R);
    t.checkInvariants();
    return cached(t);
  }

  it('lru evicts the least recently used way', () => {
    expect(run('lru')).toEqual([1, 2, 5, 6]);
  });

  it('fifo evicts the oldest fill, however recently used', () => {
    expect(run('fifo')).toEqual([3, 4, 5, 6]);
  });

  it('rewriting a cached page fills in place and evicts nothing', () => {
    for (const rep of ['lru', 'fifo', 'random'] as const) {
      const t = tlb(2, 2, rep);
      t.insert(1, 0, 1, R);
      t.insert(2, 0, 2, R);
      const slot = t.probe(1, 0);
      expect(t.insert(1, 0, 9, R | TLB_WRITABLE)).toBe(slot);
      expect(t.pfn[slot]).toBe(9);
      expect(t.evictions).toBe(0);
      expect(t.fills).toBe(3);
    }
    // For lru the rewrite counts as a use; for fifo the entry keeps its age.
    const lru = tlb(2, 2, 'lru');
    const fifo = tlb(2, 2, 'fifo');
    for (const t of [lru, fifo]) {
      t.insert(1, 0, 1, R);
      t.insert(2, 0, 2, R);
      t.insert(1, 0, 1, R);
      t.insert(3, 0, 3, R);
    }
    expect(cached(lru)).toEqual([1, 3]);
    expect(cached(fifo)).toEqual([2, 3]);
  });

  it('probe does not refresh lru age; lookup does', () => {
    const t = tlb(2, 2, 'lru');
    t.insert(1, 0, 1, R);
    t.insert(2, 0, 2, R);
    t.probe(1, 0);
    t.insert(3, 0, 3, R);
    expect(cached(t)).toEqual([2, 3]);
  });

  it('random fills empty ways first, evicts within the set, and is deterministic for a seed', () => {
    const sequence = (seed: number) => {
      const t = tlb(8, 4, 'random', seed);
      const evicted: number[] = [];
      for (let v = 0; v < 200; v += 2) {
        // even vpns only: all in set 0 of 2 sets
        const before = new Set(cached(t));
        t.insert(v, 0, 1, R);
        const after = new Set(cached(t));
        for (const old of before) if (!after.has(old)) evicted.push(old);
        if (v < 8) expect(t.evictions).toBe(0); // 4 empty ways first
        t.checkInvariants();
      }
      expect(t.dump().every((e) => e.set === 0)).toBe(true);
      return evicted;
    };
    const a = sequence(42);
    expect(a).toHaveLength(96);
    expect(sequence(42)).toEqual(a);
    expect(sequence(43)).not.toEqual(a);
    // Not simply FIFO or LRU in disguise: some victim is not the oldest entry.
    const fifoOrder = Array.from({ length: 96 }, (_, i) => 2 * i);
    expect(a).not.toEqual(fifoOrder);
  });
});

/** A textbook set-associative cache of VPNs: each set a list, most recent last. */
class TextbookCache {
  readonly sets: number[][];
  misses = 0;
  hits = 0;
  constructor(
    readonly nSets: number,
    readonly ways: number,
    readonly policy: 'lru' | 'fifo',
  ) {
    this.sets = Array.from({ length: nSets }, () => []);
  }
  reference(vpn: number): void {
    const set = this.sets[vpn % this.nSets]!;
    const i = set.indexOf(vpn);
    if (i >= 0) {
      this.hits++;
      if (this.policy === 'lru') {
        set.splice(i, 1);
        set.push(vpn);
      }
      return;
    }
    this.misses++;
    if (set.length === this.ways) set.shift();
    set.push(vpn);
  }
}

/** An x86-32 machine with pages 0..63 mapped (data frames 100..163); user read/write. */
function x86_32Machine(options: Partial<MmuOptions> & { tlb: TlbConfig }) {
  const mem = new PhysicalMemory({ frameCount: 256, pageBytes: 4096 });
  const pt = new HandPageTables(mem, handX86_32, 1, 2);
  for (let p = 0; p < 64; p++) pt.map(p * 4096, 100 + p);
  const mmu = new Mmu(mem, x86_32, { cost: resolveCostModel(), clock: new Clock({ hz: 1e9 }), ...options });
  mmu.switchAddressSpace(1, 0);
  return { mem, pt, mmu };
}

describe('the MMU against a textbook set-associative cache (property)', () => {
  const shapes = fc.constantFrom<[number, number]>(
    [8, 1],
    [8, 2],
    [8, 8],
    [16, 4],
    [12, 2],
    [15, 5],
    [6, 3],
    [1, 1],
  );
  const refs = fc.array(fc.record({ page: fc.integer({ min: 0, max: 63 }), write: fc.boolean() }), {
    minLength: 1,
    maxLength: 400,
  });

  for (const policy of ['lru', 'fifo'] as const) {
    it(`${policy}: misses and hits equal the model's, for reads and writes`, () => {
      fc.assert(
        fc.property(refs, shapes, (sequence, [entries, ways]) => {
          const { mmu } = x86_32Machine({ tlb: { entries, ways, replacement: policy } });
          const model = new TextbookCache(entries / ways, ways, policy);
          for (const { page, write } of sequence) {
            const va = page * 4096 + (page % 7);
            if (write) mmu.store8(va, page);
            else expect(mmu.load8(va)).toBe(mmu.mem.read8((100 + page) * 4096 + (page % 7)));
            model.reference(page);
          }
          expect(mmu.dtlb.misses).toBe(model.misses);
          expect(mmu.dtlb.hits).toBe(model.hits);
          expect(mmu.accesses).toBe(sequence.length);
          expect(mmu.faults).toBe(0);
          // Same contents too: every set holds exactly the model's pages.
          expect(cached(mmu.dtlb)).toEqual(model.sets.flat().sort((a, b) => a - b));
          mmu.dtlb.checkInvariants();
        }),
        { seed: 99, numRuns: 150 },
      );
    });
  }
});

describe('a second-level TLB against two textbook caches (property)', () => {
  const refs = fc.array(fc.record({ page: fc.integer({ min: 0, max: 63 }), write: fc.boolean() }), {
    minLength: 1,
    maxLength: 400,
  });
  const shapes = fc.constantFrom<[number, number, number, number]>(
    [4, 1, 16, 4],
    [8, 2, 24, 12],
    [4, 4, 8, 2],
    [2, 1, 32, 32],
  );

  it('the first level misses as alone; the second sees exactly its misses; walks are its misses', () => {
    fc.assert(
      fc.property(refs, shapes, (sequence, [entries, ways, stlbEntries, stlbWays]) => {
        const { mmu } = x86_32Machine({
          tlb: { entries, ways, replacement: 'lru' },
          stlb: { entries: stlbEntries, ways: stlbWays },
        });
        const l1 = new TextbookCache(entries / ways, ways, 'lru');
        const l2 = new TextbookCache(stlbEntries / stlbWays, stlbWays, 'lru');
        let dirtyAssists = 0;
        const dirty = new Set<number>(); // pages whose PTE has D set
        for (const { page, write } of sequence) {
          const va = page * 4096 + (page % 7);
          if (write) mmu.store8(va, page);
          else expect(mmu.load8(va)).toBe(mmu.mem.read8((100 + page) * 4096 + (page % 7)));
          const l1Misses = l1.misses;
          const l2Misses = l2.misses;
          l1.reference(page);
          if (l1.misses !== l1Misses) l2.reference(page);
          const walked = l2.misses !== l2Misses;
          // The first write to a page found in a TLB (so cached clean) walks again to set D, and
          // that walk refreshes the second level too: an uncounted reference there.
          if (write && !dirty.has(page) && !walked) {
            dirtyAssists++;
            const [h, m] = [l2.hits, l2.misses];
            l2.reference(page);
            [l2.hits, l2.misses] = [h, m];
          }
          if (write) dirty.add(page);
        }
        expect(mmu.dtlb.misses).toBe(l1.misses);
        expect(mmu.dtlb.hits).toBe(l1.hits);
        expect(mmu.stlb!.hits).toBe(l2.hits);
        expect(mmu.stlb!.misses).toBe(l2.misses);
        expect(mmu.dirtyAssists).toBe(dirtyAssists);
        expect(mmu.walks).toBe(l2.misses + dirtyAssists);
        expect(mmu.stlbLookups).toBe(l1.misses);
        expect(cached(mmu.dtlb)).toEqual(l1.sets.flat().sort((a, b) => a - b));
        expect(cached(mmu.stlb!)).toEqual(l2.sets.flat().sort((a, b) => a - b));
        mmu.dtlb.checkInvariants();
        mmu.stlb!.checkInvariants();
      }),
      { seed: 7, numRuns: 150 },
    );
  });
});

describe('address-space identifiers', () => {
  /** Two x86-64 address spaces: ASID 1 (root 1) maps 0x1000 to frame 50, ASID 2 (root 20) to 60. */
  function twoSpaces(asidBits: number) {
    const mem = new PhysicalMemory({ frameCount: 128, pageBytes: 4096 });
    const a = new HandPageTables(mem, handX86_64, 1, 2);
    const b = new HandPageTables(mem, handX86_64, 20, 21);
    a.map(0x1000, 50);
    b.map(0x1000, 60);
    // A kernel page, global, at the same place in both.
    const global = { leaf: { lo: X86.P | X86.RW | X86.G } };
    a.map(0x4000_0000, 70, global);
    b.map(0x4000_0000, 70, global);
    const mmu = new Mmu(mem, x86_64, {
      tlb: { entries: 16, ways: 4, replacement: 'lru' },
      cost: resolveCostModel(),
      clock: new Clock({ hz: 1e9 }),
      asidBits,
    });
    return { mem, mmu };
  }

  it('with ASIDs, switching back and forth keeps each space entries: hits after the switch back', () => {
    const { mmu } = twoSpaces(8);
    mmu.switchAddressSpace(1, 1);
    expect(mmu.translate(0x1000, ACCESS_READ, MODE_USER)).toBe(50 * 4096);
    mmu.switchAddressSpace(20, 2);
    expect(mmu.translate(0x1000, ACCESS_READ, MODE_USER)).toBe(60 * 4096);
    expect(mmu.dtlb.misses).toBe(2);
    for (let i = 0; i < 3; i++) {
      mmu.switchAddressSpace(1, 1);
      expect(mmu.translate(0x1000, ACCESS_READ, MODE_USER)).toBe(50 * 4096);
      mmu.switchAddressSpace(20, 2);
      expect(mmu.translate(0x1000, ACCESS_READ, MODE_USER)).toBe(60 * 4096);
    }
    expect(mmu.dtlb.misses).toBe(2);
    expect(mmu.dtlb.hits).toBe(6);
    expect(mmu.dtlb.flushes).toBe(0);
    expect(mmu.addressSpaceSwitches).toBe(8);
    mmu.dtlb.checkInvariants();
  });

  it('without ASIDs, a switch flushes: the same page misses again', () => {
    const { mmu } = twoSpaces(0);
    mmu.switchAddressSpace(1, 0);
    mmu.translate(0x1000, ACCESS_READ, MODE_USER);
    mmu.switchAddressSpace(20, 0);
    expect(mmu.translate(0x1000, ACCESS_READ, MODE_USER)).toBe(60 * 4096);
    mmu.switchAddressSpace(1, 0);
    expect(mmu.translate(0x1000, ACCESS_READ, MODE_USER)).toBe(50 * 4096);
    expect(mmu.dtlb.misses).toBe(3);
    expect(mmu.dtlb.hits).toBe(0);
    expect(mmu.dtlb.flushes).toBe(3);
    // The ASID argument is ignored without ASIDs.
    mmu.switchAddressSpace(1, 5);
    expect(mmu.asid).toBe(0);
  });

  it('global entries survive a flushing switch and match any ASID', () => {
    for (const asidBits of [0, 8]) {
      const { mmu } = twoSpaces(asidBits);
      mmu.switchAddressSpace(1, asidBits ? 1 : 0);
      expect(mmu.translate(0x4000_0000, ACCESS_READ, MODE_KERNEL)).toBe(70 * 4096);
      mmu.switchAddressSpace(20, asidBits ? 2 : 0);
      expect(mmu.translate(0x4000_0008, ACCESS_READ, MODE_KERNEL)).toBe(70 * 4096 + 8);
      expect(mmu.dtlb.misses).toBe(1);
      expect(mmu.dtlb.hits).toBe(1);
      mmu.flushTlb();
      expect(mmu.dtlb.validCount()).toBe(0);
    }
  });

  it('refuses an ASID wider than asidBits', () => {
    const { mmu } = twoSpaces(4);
    expect(() => mmu.switchAddressSpace(1, 16)).toThrow(RangeError);
    expect(() => mmu.switchAddressSpace(1, -1)).toThrow(RangeError);
    mmu.switchAddressSpace(1, 15);
    expect(mmu.asid).toBe(15);
    const mem = new PhysicalMemory({ frameCount: 4, pageBytes: 4096 });
    const make = (asidBits: number) =>
      new Mmu(mem, x86_64, {
        tlb: { entries: 4, ways: 1, replacement: 'lru' },
        cost: resolveCostModel(),
        clock: new Clock({ hz: 1 }),
        asidBits,
      });
    expect(() => make(17)).toThrow(RangeError);
    expect(() => make(-1)).toThrow(RangeError);
  });

  it('Tlb: global entries survive flushNonGlobal and invalidateAsid, not flushAll', () => {
    const t = tlb(8, 8);
    t.insert(7, 1, 3, R | TLB_GLOBAL);
    t.insert(8, 1, 4, R | TLB_USER);
    t.insert(9, 2, 5, R | TLB_USER);
    expect(t.lookup(7, 9)).toBeGreaterThanOrEqual(0);
    expect(t.lookup(8, 2)).toBe(-1);
    t.invalidateAsid(1);
    expect(cached(t)).toEqual([7, 9]);
    t.flushNonGlobal();
    expect(cached(t)).toEqual([7]);
    t.flushAll();
    expect(t.validCount()).toBe(0);
    expect(t.flushes).toBe(2);
    expect(t.invalidations).toBe(1);
  });

  it('Tlb: invalidatePage drops one page of one ASID (or the global entry of the page)', () => {
    const t = tlb(8, 2);
    t.insert(5, 1, 1, R);
    t.insert(5, 2, 2, R);
    t.insert(6, 1, 3, R | TLB_GLOBAL);
    expect(t.invalidatePage(5, 1)).toBe(true);
    expect(t.lookup(5, 1)).toBe(-1);
    expect(t.lookup(5, 2)).toBeGreaterThanOrEqual(0);
    expect(t.invalidatePage(5, 1)).toBe(false);
    expect(t.invalidatePage(6, 3)).toBe(true);
    expect(t.lookup(6, 1)).toBe(-1);
    t.checkInvariants();
  });

  it('Mmu.invalidatePage defaults to the current ASID; invalidateAsid drops one space', () => {
    const { mmu } = twoSpaces(8);
    mmu.switchAddressSpace(1, 1);
    mmu.translate(0x1000, ACCESS_READ, MODE_USER);
    mmu.switchAddressSpace(20, 2);
    mmu.translate(0x1000, ACCESS_READ, MODE_USER);
    mmu.invalidatePage(0x1fff); // ASID 2's page 1
    expect(mmu.dtlb.probe(1, 2)).toBe(-1);
    expect(mmu.dtlb.probe(1, 1)).toBeGreaterThanOrEqual(0);
    mmu.translate(0x1000, ACCESS_READ, MODE_USER);
    mmu.invalidateAsid(1);
    expect(mmu.dtlb.probe(1, 1)).toBe(-1);
    expect(mmu.dtlb.probe(1, 2)).toBeGreaterThanOrEqual(0);
    mmu.invalidatePage(0x1000, 2);
    expect(mmu.dtlb.validCount()).toBe(0);
  });

  it('regression: a global fill replaces the per-ASID entries of its page', () => {
    // It used to leave (vpn 7, ASID 2) beside the global vpn 7, and lookups depended on slot order.
    const t = tlb(4, 4);
    t.insert(7, 2, 1, R | TLB_USER);
    t.insert(7, 1, 3, R | TLB_GLOBAL);
    expect(t.validCount()).toBe(1);
    expect(t.pfn[t.lookup(7, 2)]).toBe(3);
    t.checkInvariants();
    // A per-ASID fill over a global entry takes its slot.
    t.insert(7, 2, 4, R);
    expect(t.validCount()).toBe(1);
    expect(t.lookup(7, 1)).toBe(-1);
    t.checkInvariants();
  });
});

describe('checkInvariants', () => {
  it('names a vpn outside its set, a page cached twice, and a global page cached per ASID too', () => {
    let t = tlb(8, 2);
    const slot = t.insert(3, 0, 1, R);
    t.vpn[slot] = 4; // set 3 of 4 now holds vpn 4 (set 0)
    expect(() => t.checkInvariants()).toThrow(/tlbCheck: slot \d+ holds vpn 4 outside its set 3/);

    t = tlb(8, 2);
    const a = t.insert(3, 0, 1, R);
    t.insert(7, 0, 1, R); // same set, other way
    t.vpn[a + 1] = 3;
    expect(() => t.checkInvariants()).toThrow('tlbCheck: vpn 3 cached twice');

    t = tlb(8, 2);
    const g = t.insert(3, 0, 1, R | TLB_GLOBAL);
    t.insert(7, 5, 1, R);
    t.vpn[g + 1] = 3; // (3, ASID 5) beside the global 3
    expect(() => t.checkInvariants()).toThrow('tlbCheck: vpn 3 cached global and per-ASID');
  });
});

describe('split instruction and data TLBs', () => {
  it('fetch8 goes through the itlb, loads and stores through the dtlb', () => {
    const { mmu, mem } = x86_32Machine({ tlb: { entries: 8, ways: 2, replacement: 'lru' }, splitTlb: true });
    expect(mmu.itlb).not.toBe(mmu.dtlb);
    mem.write8(100 * 4096 + 1, 0xc3);
    expect(mmu.fetch8(1)).toBe(0xc3);
    expect([mmu.itlb.misses, mmu.dtlb.misses]).toEqual([1, 0]);
    mmu.load8(1);
    mmu.store8(2, 1);
    expect([mmu.itlb.misses, mmu.dtlb.misses, mmu.dtlb.hits]).toEqual([1, 1, 1]);
    mmu.fetch8(2);
    expect(mmu.itlb.hits).toBe(1);
    expect(mmu.translate(3, ACCESS_EXECUTE, MODE_USER)).toBe(100 * 4096 + 3);
    expect(mmu.itlb.hits).toBe(2);
    // Invalidation and switches reach both.
    mmu.invalidatePage(0);
    expect([mmu.itlb.validCount(), mmu.dtlb.validCount()]).toEqual([0, 0]);
    mmu.fetch8(0);
    mmu.load8(0);
    mmu.switchAddressSpace(1, 0);
    expect([mmu.itlb.validCount(), mmu.dtlb.validCount()]).toEqual([0, 0]);
    mmu.itlb.checkInvariants();
    mmu.dtlb.checkInvariants();
  });

  it('a unified TLB serves fetches and data from the same entries', () => {
    const { mmu } = x86_32Machine({ tlb: { entries: 8, ways: 2, replacement: 'lru' } });
    expect(mmu.itlb).toBe(mmu.dtlb);
    mmu.fetch8(5);
    mmu.load8(6);
    expect([mmu.dtlb.misses, mmu.dtlb.hits]).toEqual([1, 1]);
  });

  it('tlbWrite fills the itlb for an execute access', () => {
    const { mmu } = x86_32Machine({
      tlb: { entries: 8, ways: 2, replacement: 'lru' },
      splitTlb: true,
      tlbManagement: 'software',
    });
    mmu.tlbWrite(0x3000, 9, R | TLB_USER | TLB_DIRTY, ACCESS_EXECUTE);
    expect(mmu.itlb.probe(3, 0)).toBeGreaterThanOrEqual(0);
    expect(mmu.dtlb.probe(3, 0)).toBe(-1);
  });
});
