/**
 * PageTables: real tables in physical frames, built lazily, for every preset format and a tiny
 * custom one. The MMU's hardware walk agrees with the entries the kernel writes; walks, pruning
 * and teardown account for every table frame; running out of frames fails cleanly.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Clock } from '../kernel/hw/clock.ts';
import { resolveCostModel } from '../kernel/hw/cost.ts';
import { ACCESS_READ, ACCESS_WRITE, Mmu, MODE_USER } from '../kernel/hw/mmu.ts';
import { compileFormat, type PagingFormat } from '../kernel/hw/paging/format.ts';
import { PRESET_FORMATS } from '../kernel/hw/paging/presets.ts';
import { PhysicalMemory } from '../kernel/hw/physmem.ts';
import { KernelPanic } from '../kernel/lib/panic.ts';
import { BuddyAllocator } from '../kernel/mm/buddy.ts';
import { PageFrames, PG_PAGETABLE } from '../kernel/mm/page.ts';
import { PageTables, type TableFrames } from '../kernel/mm/pagetable.ts';
import { PTE_READ, PTE_WRITE, PteCodec } from '../kernel/mm/pte.ts';

const tiny = compileFormat({
  name: 'tiny',
  pageBytes: 64,
  levelBits: [3, 3, 2],
  entryBytes: 1,
  flags: { present: 7, writable: 6, user: 5, accessed: 4 },
  pfn: { shift: 0, width: 4 },
  permissionScope: 'all-levels',
});

const FORMATS: Array<[string, PagingFormat]> = [...Object.entries(PRESET_FORMATS), ['tiny', tiny]];

function machine(fmt: PagingFormat, wantFrames = 16) {
  const frames = Math.min(wantFrames, fmt.maxPfn + 1); // as buildMachine: every frame addressable
  const mem = new PhysicalMemory({ frameCount: frames, pageBytes: fmt.pageBytes });
  const pages = new PageFrames(frames);
  const buddy = new BuddyAllocator({
    memory: mem,
    pages,
    zones: 'normal',
    reserved: [],
    minFreeKbytes: 0,
    pcp: 'off',
  });
  const pte = new PteCodec(fmt);
  let budget = Number.POSITIVE_INFINITY;
  const order = (bytes: number): number => Math.max(0, Math.ceil(Math.log2(bytes / fmt.pageBytes)));
  const source: TableFrames = {
    allocTable: (bytes) => {
      if (budget <= 0) return -1;
      budget--;
      return buddy.alloc(order(bytes), { owner: PG_PAGETABLE, contents: 'zeroed', watermark: 'none' });
    },
    freeTable: (pfn, bytes) => buddy.free(pfn, order(bytes)),
  };
  const clock = new Clock({ hz: 1e9 });
  const mmu = new Mmu(mem, fmt, {
    tlb: { entries: 16, ways: 4, replacement: 'lru' },
    cost: resolveCostModel(),
    clock,
  });
  return {
    mem,
    pages,
    buddy,
    pte,
    mmu,
    source,
    setBudget: (n: number) => {
      budget = n;
    },
    count: (t: PageTables) => t.countTables((pfn) => pages.has(pfn, PG_PAGETABLE)),
  };
}

/** A few page-aligned user addresses spread over the format's address space. */
function addresses(fmt: PagingFormat, seed: number, n: number): number[] {
  const pagesInVa = Math.min(fmt.vpnCount, 2 ** 40);
  const vpns = fc.sample(fc.integer({ min: 0, max: pagesInVa - 1 }), { seed, numRuns: n });
  return [...new Set(vpns)].sort((a, b) => a - b).map((v) => v * fmt.pageBytes);
}

describe.each(FORMATS)('PageTables on %s', (_name, fmt) => {
  it('builds tables lazily: one per level for the first address, none for a neighbour', () => {
    const m = machine(fmt, 64);
    const t = PageTables.create(m.mem, m.pte, m.source)!;
    expect(t.tablePages).toBe(1);
    expect(t.entryAddress(0, 'lookup')).toBe(fmt.levels === 1 ? t.root * fmt.pageBytes : -1);
    const pa = t.entryAddress(fmt.pageBytes * 3, 'create');
    expect(pa).toBeGreaterThanOrEqual(0);
    expect(t.tablePages).toBe(fmt.levels);
    expect(m.pages.has(Math.floor(pa / fmt.pageBytes), PG_PAGETABLE)).toBe(true);
    expect(t.entryAddress(fmt.pageBytes * 2, 'create')).toBe(pa - fmt.entryBytes);
    expect(t.tablePages).toBe(fmt.levels);
    expect(t.entryAddress(fmt.pageBytes * 3, 'lookup')).toBe(pa);
    expect(m.count(t)).toBe(t.tablePages);
  });

  it('the MMU walks the entries the kernel writes, and sets the accessed and dirty bits there', () => {
    const m = machine(fmt, 64);
    const t = PageTables.create(m.mem, m.pte, m.source)!;
    const vas = addresses(fmt, 11, 6);
    const frameOf = new Map<number, number>();
    vas.forEach((va, i) => {
      const pfn = (i * 7 + 3) % m.mem.frameCount;
      const pa = t.entryAddress(va, 'create');
      if (pa < 0) return; // this small machine ran out of table frames: fine
      t.write(pa, m.pte.leaf(pfn, PTE_READ | PTE_WRITE), m.pte.hi);
      frameOf.set(va, pfn);
    });
    expect(frameOf.size).toBeGreaterThan(0);
    m.mmu.switchAddressSpace(t.root, 0);
    for (const [va, pfn] of frameOf) {
      const off = Math.min(5, fmt.pageBytes - 1);
      expect(m.mmu.translate(va + off, ACCESS_READ, MODE_USER)).toBe(pfn * fmt.pageBytes + off);
      const pa = t.entryAddress(va, 'lookup');
      const lo = t.read(pa);
      expect(m.pte.isAccessed(lo, t.hi)).toBe(fmt.has.accessed);
      expect(m.pte.isDirty(lo, t.hi)).toBe(false);
      expect(m.mmu.translate(va, ACCESS_WRITE, MODE_USER)).toBe(pfn * fmt.pageBytes);
      expect(m.pte.isDirty(t.read(pa), t.hi)).toBe(fmt.has.dirty);
    }
    expect(m.count(t)).toBe(t.tablePages);
  });

  it('forEachEntry visits the non-none entries of a range in address order; pruneEmpty frees emptied tables', () => {
    const m = machine(fmt, 256);
    const free0 = m.buddy.freePages();
    const t = PageTables.create(m.mem, m.pte, m.source)!;
    const vas = addresses(fmt, 12, 12);
    const mapped: number[] = [];
    for (const va of vas) {
      const pa = t.entryAddress(va, 'create');
      if (pa < 0) continue;
      t.write(pa, m.pte.leaf(1, PTE_READ), m.pte.hi);
      mapped.push(va);
    }
    const seen: number[] = [];
    t.forEachEntry(0, 2 ** fmt.vaBits, (va, pa, lo, hi) => {
      expect(t.entryAddress(va, 'lookup')).toBe(pa);
      expect(m.pte.pfnOf(lo, hi)).toBe(1);
      seen.push(va);
    });
    expect(seen).toEqual(mapped);
    // A sub-range sees only its own entries.
    const mid = mapped[Math.floor(mapped.length / 2)]!;
    const sub: number[] = [];
    t.forEachEntry(mid, 2 ** fmt.vaBits, (va) => {
      sub.push(va);
    });
    expect(sub).toEqual(mapped.filter((va) => va >= mid));
    // Clear the upper half and prune: tables wholly inside go, the rest stay reachable.
    const before = t.tablePages;
    for (const va of sub) t.write(t.entryAddress(va, 'lookup'), 0, 0);
    const freed = t.pruneEmpty(mid, 2 ** fmt.vaBits);
    expect(t.tablePages).toBe(before - freed);
    expect(m.count(t)).toBe(t.tablePages);
    const left: number[] = [];
    t.forEachEntry(0, 2 ** fmt.vaBits, (va) => {
      left.push(va);
    });
    expect(left).toEqual(mapped.filter((va) => va < mid));
    for (const va of left) t.write(t.entryAddress(va, 'lookup'), 0, 0);
    t.destroy();
    expect(m.buddy.freePages()).toBe(free0);
    m.buddy.checkInvariants();
  });

  it('running out of table frames fails with -1 and leaks nothing', () => {
    const m = machine(fmt, 64);
    const free0 = m.buddy.freePages();
    m.setBudget(0);
    expect(PageTables.create(m.mem, m.pte, m.source)).toBeUndefined();
    m.setBudget(1);
    const t = PageTables.create(m.mem, m.pte, m.source)!;
    if (fmt.levels > 1) {
      m.setBudget(fmt.levels - 2); // one table short
      expect(t.entryAddress(0, 'create')).toBe(-1);
      expect(m.count(t)).toBe(t.tablePages);
      expect(t.tablePages).toBe(fmt.levels - 1);
      m.setBudget(1);
      expect(t.entryAddress(0, 'create')).toBeGreaterThanOrEqual(0);
      expect(t.tablePages).toBe(fmt.levels);
    }
    t.destroy();
    expect(m.buddy.freePages()).toBe(free0);
  });

  it('countTables panics on a pointer to a frame that is not a table', () => {
    if (fmt.levels === 1) return;
    const m = machine(fmt, 64);
    const t = PageTables.create(m.mem, m.pte, m.source)!;
    const pa = t.entryAddress(0, 'create');
    expect(pa).toBeGreaterThanOrEqual(0);
    const bogus = m.buddy.alloc(0, { watermark: 'none' }); // a frame not typed as a table
    t.write(t.root * fmt.pageBytes + fmt.entryBytes * 1, m.pte.pointer(bogus), m.pte.hi);
    let msg = '';
    try {
      m.count(t);
    } catch (e) {
      if (!(e instanceof KernelPanic)) throw e;
      msg = e.message;
    }
    expect(msg).toMatch(/^pageTablesCheck: frame \d+ at level 1 is not a page-table frame/);
  });
});
