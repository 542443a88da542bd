import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resolveFormat } from '../kernel/boot/formatfile.ts';
import { PhysicalMemory } from '../kernel/hw/physmem.ts';
import { KernelPanic } from '../kernel/lib/panic.ts';
import {
  BuddyAllocator,
  type BuddyAllocOptions,
  type BuddyOptions,
  defaultReservations,
  MAX_PAGE_ORDER,
  PAGE_POISON_ALLOC,
  PAGE_POISON_FREE,
  type WatermarkCrossing,
  type WatermarkPolicy,
} from '../kernel/mm/buddy.ts';
import { memLayoutOf } from '../kernel/mm/memlayout.ts';
import {
  NIL,
  PageFrames,
  PG_ALLOCATED,
  PG_ANON,
  PG_BUDDY,
  PG_FILE,
  PG_HEAD,
  PG_LRU,
  PG_PAGETABLE,
  PG_RESERVED,
  PG_TAIL,
} from '../kernel/mm/page.ts';
import {
  defaultMinFreeKbytes,
  extfragForOrder,
  fragmentationIndex,
  lowmemReserves,
  statThreshold,
  unusableFreeIndex,
  X86_32_LOWMEM_BYTES,
  zoneSpans,
  zoneWatermarks,
} from '../kernel/mm/zone.ts';

type MachineOptions = Partial<Omit<BuddyOptions, 'memory' | 'pages'>> & {
  frames: number;
  pageBytes?: number;
};

/** A small machine: one Normal zone, nothing reserved, no watermarks, no pcp lists, unless told. */
function machine(options: MachineOptions) {
  const { frames, pageBytes = 4096, ...rest } = options;
  const memory = new PhysicalMemory({ frameCount: frames, pageBytes });
  const pages = new PageFrames(frames);
  const buddy = new BuddyAllocator({
    memory,
    pages,
    zones: 'normal',
    reserved: [],
    minFreeKbytes: 0,
    pcp: 'off',
    ...rest,
  });
  return { memory, pages, buddy };
}

/** The free lists of zone z as [order, heads] pairs for the non-empty orders. */
function lists(buddy: BuddyAllocator, z = 0): Array<[number, number[]]> {
  const out: Array<[number, number[]]> = [];
  buddy.freeListSnapshot()[z]!.forEach((heads, order) => {
    if (heads.length > 0) out.push([order, heads]);
  });
  return out;
}

function panicMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof KernelPanic) return e.message;
    throw e;
  }
  throw new Error('expected a kernel panic');
}

describe('boot', () => {
  it('lists a 64-frame machine as one order-6 block', () => {
    const { buddy } = machine({ frames: 64 });
    expect(lists(buddy)).toEqual([[6, [0]]]);
    expect(buddy.freePages()).toBe(64);
    buddy.checkInvariants();
  });

  it('splits a frame count that is not a multiple of 1024 into maximal aligned blocks', () => {
    const { buddy } = machine({ frames: 1000 });
    expect(lists(buddy)).toEqual([
      [3, [992]],
      [5, [960]],
      [6, [896]],
      [7, [768]],
      [8, [512]],
      [9, [0]],
    ]);
  });

  it('caps blocks at MAX_PAGE_ORDER', () => {
    const { buddy } = machine({ frames: 3000 });
    expect(lists(buddy)).toEqual([
      [3, [2992]],
      [4, [2976]],
      [5, [2944]],
      [7, [2816]],
      [8, [2560]],
      [9, [2048]],
      [10, [0, 1024]],
    ]);
    expect(buddy.freePages()).toBe(3000);
  });

  it('carves reservations out of the free lists and flags them PG_RESERVED', () => {
    const { buddy, pages } = machine({
      frames: 64,
      reserved: [
        { label: 'firmware', firstPfn: 0, frames: 3 },
        { label: 'kernel image', firstPfn: 10, frames: 1 },
      ],
    });
    expect(lists(buddy)).toEqual([
      [0, [3, 11]],
      [1, [8]],
      [2, [4, 12]],
      [4, [16]],
      [5, [32]],
    ]);
    for (const pfn of [0, 1, 2, 10]) expect(pages.flags[pfn]).toBe(PG_RESERVED);
    expect(buddy.zone(0).managedPages).toBe(60);
    expect(buddy.zone(0).presentPages).toBe(64);
    buddy.checkInvariants();
  });

  it('reserves firmware and a kernel image by default', () => {
    expect(defaultReservations(262144, 4096)).toEqual([
      { label: 'firmware', firstPfn: 0, frames: 16 },
      { label: 'kernel image', firstPfn: 256, frames: 512 },
    ]);
    expect(defaultReservations(256, 256)).toEqual([
      { label: 'firmware', firstPfn: 0, frames: 4 },
      { label: 'kernel image', firstPfn: 4, frames: 16 },
    ]);
    const memory = new PhysicalMemory({ frameCount: 8192, pageBytes: 4096 });
    const buddy = new BuddyAllocator({ memory, pages: new PageFrames(8192) });
    expect(buddy.reserved.map((r) => r.label)).toEqual(['firmware', 'kernel image']);
    expect(buddy.managedPages()).toBe(8192 - 16 - 512);
  });

  it('rejects overlapping or out-of-range reservations', () => {
    expect(() =>
      machine({
        frames: 64,
        reserved: [
          { label: 'a', firstPfn: 0, frames: 4 },
          { label: 'b', firstPfn: 3, frames: 2 },
        ],
      }),
    ).toThrow(RangeError);
    expect(() => machine({ frames: 64, reserved: [{ label: 'a', firstPfn: 60, frames: 5 }] })).toThrow(
      RangeError,
    );
    expect(() => machine({ frames: 64, reserved: [{ label: 'a', firstPfn: -1, frames: 1 }] })).toThrow(
      RangeError,
    );
  });

  it("lays out x86-64's zones: DMA below 16 MiB, DMA32 below 4 GiB, then Normal, Movable, Device", () => {
    const small = machine({ frames: 4096, zones: 'x86-64' }).buddy;
    expect(small.zones().map((z) => [z.name, z.startPfn, z.endPfn])).toEqual([
      ['DMA', 0, 4096],
      ['DMA32', 4096, 4096],
      ['Normal', 4096, 4096],
      ['Movable', 4096, 4096],
      ['Device', 4096, 4096],
    ]);
    expect(small.zoneIndexOf(4095)).toBe(0);
    const big = machine({ frames: 5120, zones: 'x86-64' }).buddy;
    expect(big.zones().map((z) => [z.name, z.startPfn, z.endPfn])).toEqual([
      ['DMA', 0, 4096],
      ['DMA32', 4096, 5120],
      ['Normal', 5120, 5120],
      ['Movable', 5120, 5120],
      ['Device', 5120, 5120],
    ]);
    expect(lists(big, 1)).toEqual([[10, [4096]]]);
    expect([big.zoneIndexOf(0), big.zoneIndexOf(4095), big.zoneIndexOf(4096), big.zoneIndexOf(5119)]).toEqual(
      [0, 0, 1, 1],
    );
    expect(panicMessage(() => big.zoneIndexOf(5120))).toBe('zoneIndexOf: frame 5120 out of range');
    // The default layout is x86-64's.
    expect(new BuddyAllocator({ memory: big.memory, pages: new PageFrames(5120) }).zones()[1]!.name).toBe(
      'DMA32',
    );
  });

  it('puts Normal above 4 GiB on x86-64, HighMem above low memory on x86-32, DMA32 first on riscv64', () => {
    const GiB = 1024 * 1024 * 1024;
    const frames = (bytes: number): number => bytes / 4096;
    expect(zoneSpans(frames(6 * GiB), 4096, 'x86-64')).toEqual([
      { name: 'DMA', startPfn: 0, endPfn: 4096 },
      { name: 'DMA32', startPfn: 4096, endPfn: 1048576 },
      { name: 'Normal', startPfn: 1048576, endPfn: 1572864 },
      { name: 'Movable', startPfn: 1572864, endPfn: 1572864 },
      { name: 'Device', startPfn: 1572864, endPfn: 1572864 },
    ]);
    // MAXMEM = 0xff7fe000 - 0xc0000000 - 128 MiB = 0x377fe000: frame 0x377fe = 227326.
    expect(X86_32_LOWMEM_BYTES).toBe(0x377fe000);
    expect(zoneSpans(frames(GiB), 4096, 'x86-32')).toEqual([
      { name: 'DMA', startPfn: 0, endPfn: 4096 },
      { name: 'Normal', startPfn: 4096, endPfn: 227326 },
      { name: 'HighMem', startPfn: 227326, endPfn: 262144 },
      { name: 'Movable', startPfn: 262144, endPfn: 262144 },
    ]);
    expect(zoneSpans(frames(64 * 1024 * 1024), 4096, 'riscv64')).toEqual([
      { name: 'DMA32', startPfn: 0, endPfn: 16384 },
      { name: 'Normal', startPfn: 16384, endPfn: 16384 },
      { name: 'Movable', startPfn: 16384, endPfn: 16384 },
    ]);
    expect(zoneSpans(100, 256, 'generic').map((z) => z.name)).toEqual(['Normal', 'Movable']);
  });

  it('follows the paging format: each preset gets its architecture, a custom format the generic one', () => {
    const layout = (format: string): string => memLayoutOf(resolveFormat(format)).zones;
    expect(['x86-64', 'x86-64-la57', 'x86-32', 'sv39'].map(layout)).toEqual([
      'x86-64',
      'x86-64',
      'x86-32',
      'riscv64',
    ]);
    expect(layout('test/fixtures/formats/leaf-only.yaml')).toBe('generic');
  });

  it('never merges buddies across a zone boundary (64 KiB pages: DMA ends at frame 256)', () => {
    const { buddy } = machine({ frames: 1024, pageBytes: 65536, zones: 'dma-normal' });
    expect(lists(buddy, 0)).toEqual([[8, [0]]]);
    expect(lists(buddy, 1)).toEqual([
      [8, [256]],
      [9, [512]],
    ]);
    const boot = buddy.freeListSnapshot();
    const held: number[] = [];
    for (;;) {
      const pfn = buddy.alloc(0, { watermark: 'none' }); // DMA's lowmem reserve (768 / 256) too
      if (pfn < 0) break;
      held.push(pfn);
    }
    expect(held).toHaveLength(1024);
    for (const pfn of held) buddy.free(pfn, 0);
    buddy.checkInvariants();
    expect(buddy.freeListSnapshot()).toEqual(boot);
  });
});

describe('split and merge', () => {
  it('splits the order-6 block down to order 0, one buddy per order', () => {
    const { buddy } = machine({ frames: 64 });
    expect(buddy.alloc(0)).toBe(0);
    expect(lists(buddy)).toEqual([
      [0, [1]],
      [1, [2]],
      [2, [4]],
      [3, [8]],
      [4, [16]],
      [5, [32]],
    ]);
    buddy.checkInvariants();
  });

  it('merges buddies back step by step', () => {
    const { buddy } = machine({ frames: 64 });
    expect(buddy.alloc(0)).toBe(0);
    expect(buddy.alloc(0)).toBe(1);
    expect(buddy.alloc(1)).toBe(2);
    expect(buddy.alloc(2)).toBe(4);
    expect(lists(buddy)).toEqual([
      [3, [8]],
      [4, [16]],
      [5, [32]],
    ]);
    buddy.free(1, 0);
    expect(lists(buddy)).toEqual([
      [0, [1]],
      [3, [8]],
      [4, [16]],
      [5, [32]],
    ]);
    buddy.free(0, 0); // merges with 1 into order 1 at 0; its buddy 2 is held
    expect(lists(buddy)).toEqual([
      [1, [0]],
      [3, [8]],
      [4, [16]],
      [5, [32]],
    ]);
    buddy.free(2, 1); // 0+2 -> order 2 at 0; buddy 4 held
    expect(lists(buddy)).toEqual([
      [2, [0]],
      [3, [8]],
      [4, [16]],
      [5, [32]],
    ]);
    buddy.free(4, 2); // cascades all the way up
    expect(lists(buddy)).toEqual([[6, [0]]]);
    buddy.checkInvariants();
  });

  it('takes the smallest block that fits before splitting a larger one', () => {
    const { buddy } = machine({ frames: 64 });
    buddy.alloc(0); // leaves 1 (o0), 2 (o1), 4 (o2) ...
    expect(buddy.alloc(2)).toBe(4);
    expect(buddy.alloc(1)).toBe(2);
    expect(buddy.alloc(3)).toBe(8);
  });

  it('marks heads and tails with the owner flag and links tails to their head', () => {
    const { buddy, pages } = machine({ frames: 64 });
    const pfn = buddy.alloc(2, { owner: PG_ANON });
    expect(pages.flags[pfn]).toBe(PG_ANON | PG_HEAD);
    expect(pages.order[pfn]).toBe(2);
    expect(pages.refcount[pfn]).toBe(1);
    for (let t = pfn + 1; t < pfn + 4; t++) {
      expect(pages.flags[t]).toBe(PG_ANON | PG_TAIL);
      expect(pages.compoundHead[t]).toBe(pfn);
    }
    expect(buddy.pagesOwnedBy(PG_ANON)).toBe(4);
    buddy.setOwnerType(pfn, PG_FILE);
    expect(pages.flags[pfn + 3]).toBe(PG_FILE | PG_TAIL);
    expect(buddy.pagesOwnedBy(PG_ANON)).toBe(0);
    expect(buddy.pagesOwnedBy(PG_FILE)).toBe(4);
    buddy.checkInvariants();
    buddy.free(pfn, 2);
    expect(pages.compoundHead[pfn + 1]).toBe(NIL);
    expect(buddy.pagesOwnedBy(PG_FILE)).toBe(0);
    buddy.checkInvariants();
  });

  it('counts page-table frames for PageTables', () => {
    const { buddy } = machine({ frames: 64 });
    const a = buddy.alloc(0, { owner: PG_PAGETABLE, contents: 'zeroed' });
    buddy.alloc(0, { owner: PG_PAGETABLE });
    buddy.alloc(0);
    expect(buddy.pagesOwnedBy(PG_PAGETABLE)).toBe(2);
    expect(buddy.pagesOwnedBy(PG_ALLOCATED)).toBe(1);
    buddy.free(a, 0);
    expect(buddy.pagesOwnedBy(PG_PAGETABLE)).toBe(1);
  });

  it('serves the DMA zone only when asked, and Normal first otherwise', () => {
    const { buddy } = machine({ frames: 8192, zones: 'dma-normal' });
    expect(buddy.alloc(0)).toBe(4096);
    expect(buddy.alloc(0, { zone: 'dma' })).toBe(0);
    expect(machine({ frames: 64 }).buddy.alloc(0, { zone: 'dma' })).toBe(-1);
  });

  it('falls back to DMA when Normal is exhausted', () => {
    const { buddy } = machine({ frames: 4096 + 8, zones: 'dma-normal' });
    expect(buddy.alloc(3)).toBe(4096);
    expect(buddy.alloc(3)).toBe(0);
  });
});

describe('watermarks', () => {
  it('derives min/low/high/promo as __setup_per_zone_wmarks does', () => {
    const { buddy } = machine({ frames: 4096, minFreeKbytes: 1024 });
    expect(buddy.zone(0).watermarks).toEqual({ min: 256, low: 320, high: 384, promo: 448 });
  });

  it("uses Linux's sqrt rule for the default min_free_kbytes", () => {
    expect(defaultMinFreeKbytes(262144, 4096)).toBe(4096); // 1 GiB -> 4 MiB
    expect(defaultMinFreeKbytes(4096, 4096)).toBe(512); // 16 MiB -> 512 kB
    expect(defaultMinFreeKbytes(64 * 1024 * 1024, 4096)).toBe(65536); // 256 GiB
    expect(defaultMinFreeKbytes(1 << 30, 4096)).toBe(262144); // clamped
    expect(defaultMinFreeKbytes(256, 1024)).toBe(16); // 256 kB machine: capped at 1/16
    const memory = new PhysicalMemory({ frameCount: 4096, pageBytes: 4096 });
    const buddy = new BuddyAllocator({ memory, pages: new PageFrames(4096), zones: 'normal', reserved: [] });
    expect(buddy.watermarkTunables()).toEqual({ minFreeKbytes: 512, watermarkScaleFactor: 10 });
    expect(buddy.zone(0).watermarks).toEqual({ min: 128, low: 160, high: 192, promo: 224 });
  });

  it('splits min_free_kbytes over zones by managed pages', () => {
    const { buddy } = machine({
      frames: 8192,
      zones: 'dma-normal',
      minFreeKbytes: 1024,
      reserved: [{ label: 'firmware', firstPfn: 0, frames: 96 }],
    });
    expect(buddy.zone(0).watermarks).toEqual({ min: 126, low: 157, high: 188, promo: 219 });
    expect(buddy.zone(1).watermarks).toEqual({ min: 129, low: 161, high: 193, promo: 225 });
  });

  it('spaces the marks by watermark_scale_factor when that is larger than min/4', () => {
    const zones = [{ name: 'Normal', managedPages: 4096 }] as const;
    expect(zoneWatermarks(zones, { minFreeKbytes: 64, watermarkScaleFactor: 1000 }, 4096)).toEqual([
      { min: 16, low: 425, high: 834, promo: 1243 },
    ]);
    expect(() => machine({ frames: 64, watermarkScaleFactor: 0 })).toThrow(RangeError);
    expect(() => machine({ frames: 64, watermarkScaleFactor: 3001 })).toThrow(RangeError);
    expect(() => machine({ frames: 64, minFreeKbytes: -1 })).toThrow(RangeError);
  });

  it('caps the min watermark of HighMem and Movable at managed / 1024 in [32, 128]', () => {
    // pages_min 1024, lowmem_pages 3568 + 200000 (HighMem and Movable are not lowmem).
    const zones = [
      { name: 'DMA', managedPages: 3568 },
      { name: 'Normal', managedPages: 200000 },
      { name: 'HighMem', managedPages: 300000 },
      { name: 'Movable', managedPages: 0 },
    ] as const;
    expect(zoneWatermarks(zones, { minFreeKbytes: 4096, watermarkScaleFactor: 10 }, 4096)).toEqual([
      { min: 17, low: 21, high: 25, promo: 29 }, // 1024 * 3568 / 203568 = 17; dist max(4, 3)
      { min: 1006, low: 1257, high: 1508, promo: 1759 }, // dist max(1006 / 4, 200)
      { min: 128, low: 505, high: 882, promo: 1259 }, // share 1509; min 292 capped; dist max(377, 300)
      { min: 32, low: 32, high: 32, promo: 32 }, // empty: min 32, dist 0
    ]);
  });

  it('computes lowmem_reserve as setup_per_zone_lowmem_reserve (ratios 256, 256, 32)', () => {
    // A 16 GiB x86-64 machine's managed pages; Linux's zoneinfo shows these protection arrays.
    const zones = [
      { name: 'DMA', managedPages: 3840 },
      { name: 'DMA32', managedPages: 720640 },
      { name: 'Normal', managedPages: 3331584 },
      { name: 'Movable', managedPages: 0 },
      { name: 'Device', managedPages: 0 },
    ] as const;
    expect(lowmemReserves(zones)).toEqual([
      [0, 2815, 15829, 15829, 15829], // 720640 / 256, (720640 + 3331584) / 256
      [0, 0, 13014, 13014, 13014], // 3331584 / 256
      [0, 0, 0, 0, 0], // nothing above Normal is managed
      [0, 0, 0, 0, 0], // ratio 0
      [0, 0, 0, 0, 0],
    ]);
    // A zone with no managed pages keeps no reserve.
    expect(lowmemReserves([zones[0], { name: 'DMA32', managedPages: 0 }, zones[2]])[1]).toEqual([0, 0, 0]);
  });

  it('keeps the lowmem reserve of DMA from fallback allocations, not from GFP_DMA ones', () => {
    // DMA 4096 frames, DMA32 2560: DMA's reserve against the top zone is 2560 / 256 = 10.
    const { buddy } = machine({ frames: 4096 + 2560, zones: 'x86-64' });
    expect(buddy.zone(0).lowmemReserve).toEqual([0, 10, 10, 10, 10]);
    let n = 0;
    while (buddy.alloc(0) >= 0) n++;
    expect(n).toBe(2560 + 4086); // DMA32 to its last page (min 0), DMA down to its reserve
    expect(buddy.zone(0).freePages).toBe(10);
    expect(buddy.zone(0).state).toBe('below-min'); // 10 <= min 0 + reserve 10
    expect(buddy.alloc(0, { zone: 'dma' })).toBeGreaterThanOrEqual(0); // GFP_DMA's top zone is DMA
    expect(buddy.alloc(0, { watermark: 'min-half' })).toBe(-1);
    expect(buddy.alloc(0, { watermark: 'none' })).toBeGreaterThanOrEqual(0);
    buddy.checkInvariants();
  });

  it("derives the vm stats threshold as calculate_normal_threshold's table", () => {
    const MiB = 256; // 4 KiB pages
    expect(statThreshold(100 * MiB, 4096)).toBe(2); // 1 CPU, < 128 MiB
    expect(statThreshold(950 * MiB, 4096)).toBe(8); // 1 CPU, 0.9-1 GB
    expect(statThreshold(100 * MiB, 4096, 2)).toBe(4); // 2 CPUs, < 128 MiB
    expect(statThreshold(950 * MiB, 4096, 2)).toBe(16);
    expect(statThreshold(3 * 1024 * MiB, 4096, 2)).toBe(24); // 2-4 GB
    expect(statThreshold(12 * 1024 * MiB, 4096, 4)).toBe(48); // 8-16 GB
    expect(statThreshold(100 * MiB, 4096, 16)).toBe(10);
    expect(statThreshold(16 * 1024 * MiB, 4096, 1024)).toBe(125); // capped
    expect(statThreshold(0, 4096)).toBe(2);
  });

  it('fails ordinary allocations at min, lets min-half go to min/2 and none take the rest', () => {
    const { buddy } = machine({ frames: 256, minFreeKbytes: 128 }); // min = 32 pages
    const count = (watermark?: WatermarkPolicy): number => {
      let n = 0;
      while (buddy.alloc(0, watermark ? { watermark } : {}) >= 0) n++;
      return n;
    };
    expect(buddy.zone(0).watermarks.min).toBe(32);
    expect(count()).toBe(224);
    expect(buddy.freePages()).toBe(32);
    expect(count('min-half')).toBe(16);
    expect(count('none')).toBe(16);
    expect(buddy.freePages()).toBe(0);
    expect(buddy.alloc(0, { watermark: 'none' })).toBe(-1);
    expect(buddy.allocFailures).toBe(4);
    buddy.checkInvariants();
  });

  it('checks the watermark against the whole block: free - 2^order must stay >= min', () => {
    const { buddy } = machine({ frames: 64, minFreeKbytes: 64 }); // min = 16
    expect(buddy.alloc(5)).toBe(0); // 64 - 32 = 32 >= 16
    expect(buddy.alloc(5)).toBe(-1); // 32 - 32 < 16
    expect(buddy.alloc(4)).toBe(32); // 32 - 16 = 16 >= 16
    expect(buddy.alloc(0)).toBe(-1);
  });

  it('reports every crossing to listeners and keeps a pollable state', () => {
    const { buddy } = machine({ frames: 256, minFreeKbytes: 128 }); // 32 / 40 / 48
    const seen: WatermarkCrossing[] = [];
    const stop = buddy.onWatermarkCrossing((c) => seen.push(c));
    expect(buddy.watermarkState(0)).toBe('above-high');
    const held: number[] = [];
    for (;;) {
      const pfn = buddy.alloc(0, { watermark: 'none' });
      if (pfn < 0) break;
      held.push(pfn);
    }
    expect(buddy.watermarkState(0)).toBe('below-min');
    expect(seen.map((c) => [c.from, c.to, c.freePages])).toEqual([
      ['above-high', 'below-high', 48],
      ['below-high', 'below-low', 40],
      ['below-low', 'below-min', 32],
    ]);
    seen.length = 0;
    for (const pfn of held.reverse()) buddy.free(pfn, 0);
    expect(seen.map((c) => [c.zone, c.to, c.freePages])).toEqual([
      ['Normal', 'below-low', 33],
      ['Normal', 'below-high', 41],
      ['Normal', 'above-high', 49],
    ]);
    stop();
    buddy.alloc(8, { watermark: 'none' });
    expect(seen).toHaveLength(3);
    expect(buddy.watermarkState(0)).toBe('below-min');
    buddy.checkInvariants();
  });

  it('recomputes the marks on a sysctl write and reports the change', () => {
    const { buddy } = machine({ frames: 256 });
    const seen: string[] = [];
    buddy.onWatermarkCrossing((c) => seen.push(`${c.from}->${c.to}`));
    buddy.tuneWatermarks({ minFreeKbytes: 1024 }); // min 256 pages: all of memory
    expect(buddy.zone(0).watermarks.min).toBe(256);
    expect(seen).toEqual(['above-high->below-min']);
    expect(buddy.alloc(0)).toBe(-1);
    expect(buddy.alloc(0, { watermark: 'none' })).toBe(0);
  });

  it('returns -1 for a fragmented request although pages are free', () => {
    const { buddy } = machine({ frames: 16 });
    const held = Array.from({ length: 16 }, () => buddy.alloc(0));
    for (let i = 0; i < 16; i += 2) buddy.free(held[i]!, 0);
    expect(buddy.freePages()).toBe(8);
    expect(buddy.alloc(1)).toBe(-1);
    expect(buddy.alloc(0)).toBeGreaterThanOrEqual(0);
  });
});

describe('per-CPU page lists', () => {
  it('parks freed order-0 pages outside the buddy lists and reuses them first', () => {
    const { buddy } = machine({ frames: 64, pcp: 'on', pcpBatch: 4 });
    const a = buddy.alloc(0);
    expect(buddy.zone(0).pcpCount).toBe(3); // a batch of 4 came over, one handed out
    expect(buddy.freePages()).toBe(60);
    buddy.free(a, 0);
    expect(buddy.pcpPages()).toBe(4);
    expect(buddy.freePages()).toBe(60); // parked pages are not free pages, as in Linux
    expect(buddy.alloc(0)).toBe(a);
    buddy.free(a, 0);
    buddy.checkInvariants();
    expect(buddy.drainPcp()).toBe(4);
    expect(lists(buddy)).toEqual([[6, [0]]]);
    buddy.checkInvariants();
  });

  it('gives a batch back when the list reaches high', () => {
    const { buddy } = machine({ frames: 64, pcp: 'on', pcpBatch: 2 }); // high 12
    const held = Array.from({ length: 20 }, () => buddy.alloc(0));
    expect(buddy.zone(0).pcpHigh).toBe(12);
    for (let i = 0; i < 11; i++) buddy.free(held[i]!, 0);
    expect(buddy.pcpPages()).toBe(11);
    buddy.free(held[11]!, 0);
    expect(buddy.pcpPages()).toBe(10);
    buddy.checkInvariants();
  });

  it('drains the lists and retries before failing', () => {
    const { buddy } = machine({ frames: 64, pcp: 'on', pcpBatch: 8 });
    const held: number[] = [];
    for (;;) {
      const pfn = buddy.alloc(0);
      if (pfn < 0) break;
      held.push(pfn);
    }
    expect(held).toHaveLength(64);
    buddy.free(held[0]!, 0);
    buddy.free(held[1]!, 0);
    expect(buddy.freePages()).toBe(0);
    expect(buddy.alloc(1)).toBe(Math.min(held[0]!, held[1]!));
    expect(buddy.pcpPages()).toBe(0);
    buddy.checkInvariants();
  });

  it("uses Linux's zone_batchsize by default", () => {
    const memory = new PhysicalMemory({ frameCount: 262144, pageBytes: 4096 });
    const buddy = new BuddyAllocator({
      memory,
      pages: new PageFrames(262144),
      zones: 'normal',
      reserved: [],
    });
    expect([buddy.zone(0).pcpBatch, buddy.zone(0).pcpHigh]).toEqual([63, 378]);
  });
});

describe('panics', () => {
  it('double free', () => {
    const { buddy } = machine({ frames: 64 });
    const a = buddy.alloc(0);
    buddy.alloc(0);
    buddy.free(a, 0);
    expect(panicMessage(() => buddy.free(a, 0))).toBe(`buddyFree: block ${a} is already free (double free)`);
  });

  it('double free after the block merged away', () => {
    const { buddy } = machine({ frames: 64 });
    const a = buddy.alloc(0);
    const b = buddy.alloc(0);
    buddy.free(a, 0);
    buddy.free(b, 0);
    expect(panicMessage(() => buddy.free(b, 0))).toMatch(/^buddyFree: frame 1 is not allocated/);
  });

  it('freeing a tail frame', () => {
    const { buddy } = machine({ frames: 64 });
    const a = buddy.alloc(2);
    expect(panicMessage(() => buddy.free(a + 1, 0))).toBe(
      `buddyFree: frame ${a + 1} is not the head of a block (its head is ${a})`,
    );
  });

  it('freeing with the wrong order', () => {
    const { buddy } = machine({ frames: 64 });
    const a = buddy.alloc(2);
    expect(panicMessage(() => buddy.free(a, 1))).toBe(
      `buddyFree: block ${a} has order 2, freed with order 1`,
    );
    expect(panicMessage(() => buddy.free(a, 3))).toMatch(
      /^buddyFree: block \d+ has order 2, freed with order 3/,
    );
  });

  it('freeing a reserved frame', () => {
    const { buddy } = machine({ frames: 64, reserved: [{ label: 'firmware', firstPfn: 0, frames: 1 }] });
    expect(panicMessage(() => buddy.free(0, 0))).toBe('buddyFree: frame 0 is reserved');
  });

  it('freeing outside memory, a non-integer frame, or a frame still in use', () => {
    const { buddy, pages } = machine({ frames: 64 });
    expect(panicMessage(() => buddy.free(64, 0))).toBe('buddyFree: frame 64 out of range');
    expect(panicMessage(() => buddy.free(-1, 0))).toBe('buddyFree: frame -1 out of range');
    expect(panicMessage(() => buddy.free(1.5, 0))).toBe('buddyFree: frame 1.5 out of range');
    const a = buddy.alloc(0);
    pages.mapcount[a] = 1;
    expect(panicMessage(() => buddy.free(a, 0))).toBe(`buddyFree: frame ${a} is still mapped 1 times`);
    pages.mapcount[a] = 0;
    pages.refcount[a] = 2;
    expect(panicMessage(() => buddy.free(a, 0))).toBe(`buddyFree: frame ${a} still has 2 references`);
    pages.refcount[a] = 0;
    pages.flags[a]! |= PG_LRU;
    expect(panicMessage(() => buddy.free(a, 0))).toBe(`buddyFree: frame ${a} is still on an LRU list`);
    pages.flags[a]! &= ~PG_LRU;
    buddy.free(a, 0); // a reference count of 0 (the caller dropped the last one) is fine
    buddy.checkInvariants();
  });

  it('bad orders and owners on allocation', () => {
    const { buddy } = machine({ frames: 64 });
    for (const order of [-1, 0.5, MAX_PAGE_ORDER + 1, Number.NaN]) {
      expect(panicMessage(() => buddy.alloc(order))).toBe(`buddyAlloc: order ${order} out of range`);
    }
    for (const owner of [PG_BUDDY, PG_RESERVED, PG_ANON | PG_FILE, 0]) {
      expect(panicMessage(() => buddy.alloc(0, { owner }))).toMatch(/^buddyAlloc: owner flags/);
    }
    expect(panicMessage(() => buddy.setOwnerType(0, PG_ANON))).toMatch(
      /^setOwnerType: frame 0 is not the head/,
    );
  });

  it('checkInvariants catches corrupted lists and counts', () => {
    const a = machine({ frames: 64 });
    a.buddy.alloc(0);
    a.pages.flags[40] = PG_ANON; // a frame inside free block 32 claims an owner
    expect(panicMessage(() => a.buddy.checkInvariants())).toBe(
      'buddyCheck: frame 40 inside free block 32 has flags set',
    );
    const b = machine({ frames: 64 });
    const p = b.buddy.alloc(0);
    b.pages.flags[p] = PG_ANON; // retyped behind the allocator's back: counts disagree
    expect(panicMessage(() => b.buddy.checkInvariants())).toMatch(
      /^buddyCheck: \d+ pages counted for owner bit/,
    );
    const c = machine({ frames: 64 });
    c.pages.next[0] = 0; // a cycle
    expect(panicMessage(() => c.buddy.checkInvariants())).toMatch(/^buddyCheck: /);
    const d = machine({ frames: 4 });
    const x = d.buddy.alloc(0);
    const y = d.buddy.alloc(0);
    d.buddy.free(x, 0);
    // forge an unmerged pair: list y as free next to x without merging
    d.pages.flags[y] = PG_BUDDY;
    d.pages.order[y] = 0;
    d.pages.refcount[y] = 0;
    expect(panicMessage(() => d.buddy.checkInvariants())).toMatch(/^buddyCheck: /);
  });
});

describe('poisoning and zeroing', () => {
  it('fills freed frames with 0xaa and fresh ones with 0x5a', () => {
    const { buddy, memory } = machine({ frames: 64, poison: 'poison' });
    const a = buddy.alloc(1);
    const base = a * 4096;
    expect(memory.read8(base)).toBe(PAGE_POISON_ALLOC);
    expect(memory.read8(base + 8191)).toBe(PAGE_POISON_ALLOC);
    buddy.free(a, 1);
    expect(memory.read8(base)).toBe(PAGE_POISON_FREE);
    expect(memory.read32(base + 4096)).toBe(0xaaaaaaaa);
  });

  it('zeroes for real when asked, releasing the backing', () => {
    const { buddy, memory } = machine({ frames: 64, poison: 'poison' });
    const a = buddy.alloc(0, { contents: 'zeroed' });
    expect(memory.read8(a * 4096 + 100)).toBe(0);
    expect(memory.isFrameUntouched(a)).toBe(true);
    const plain = machine({ frames: 64 });
    const b = plain.buddy.alloc(0);
    plain.memory.write32(b * 4096, 0xdeadbeef);
    plain.buddy.free(b, 0);
    expect(plain.buddy.alloc(0)).toBe(b);
    expect(plain.memory.read32(b * 4096)).toBe(0xdeadbeef); // stale data without zeroing
    plain.buddy.free(b, 0);
    expect(plain.buddy.alloc(0, { contents: 'zeroed' })).toBe(b);
    expect(plain.memory.read32(b * 4096)).toBe(0);
  });

  it('leaves memory untouched without poisoning (no host cost)', () => {
    const { buddy, memory } = machine({ frames: 64 });
    const a = buddy.alloc(3);
    buddy.free(a, 3);
    expect(memory.materializedFrames).toBe(0);
  });

  it('strict mode catches a write after free', () => {
    const { buddy, memory } = machine({ frames: 64, poison: 'strict' });
    const a = buddy.alloc(0);
    buddy.alloc(0); // keeps a from merging
    buddy.free(a, 0);
    memory.write8(a * 4096 + 17, 1);
    expect(panicMessage(() => buddy.alloc(0))).toBe(
      `buddyAlloc: frame ${a} was written after it was freed (byte 17 is 0x1)`,
    );
  });
});

describe('fragmentation figures', () => {
  it('match hand-computed Linux values', () => {
    const nrFree = [4, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0]; // 12 free pages in 7 blocks
    expect(fragmentationIndex(nrFree, 2)).toBe(-1000); // a 4-page block exists
    expect(fragmentationIndex(nrFree, 3)).toBe(643); // 1000 - (1000 + 12000/8) / 7
    expect(fragmentationIndex(nrFree, 10)).toBe(856); // 1000 - (1000 + 12000 / 1024) / 7
    expect(unusableFreeIndex(nrFree, 0)).toBe(0);
    expect(unusableFreeIndex(nrFree, 2)).toBe(666); // (12 - 4) * 1000 / 12
    expect(unusableFreeIndex(nrFree, 3)).toBe(1000);
    expect(extfragForOrder(nrFree, 1)).toBe(33); // 4 of 12 pages in blocks < 2
    expect(extfragForOrder(nrFree, 2)).toBe(66);
    const none = new Array(11).fill(0);
    expect([fragmentationIndex(none, 3), unusableFreeIndex(none, 3), extfragForOrder(none, 3)]).toEqual([
      0, 1000, 0,
    ]);
  });

  it('follow the allocator state', () => {
    const { buddy } = machine({ frames: 16 });
    const held = Array.from({ length: 16 }, () => buddy.alloc(0));
    for (let i = 0; i < 16; i += 2) buddy.free(held[i]!, 0); // 8 isolated pages
    const nrFree = buddy.zone(0).nrFree;
    expect(nrFree[0]).toBe(8);
    expect(fragmentationIndex(nrFree, 1)).toBe(1000 - Math.floor((1000 + 4000) / 8)); // 375
    expect(extfragForOrder(nrFree, 1)).toBe(100);
  });
});

// ---- property tests against a model ----

interface Op {
  kind: 'alloc' | 'free';
  order: number;
  pick: number;
  policy: WatermarkPolicy;
  zone: 'normal' | 'dma';
}

const opArb: fc.Arbitrary<Op> = fc.record({
  kind: fc.constantFrom<'alloc' | 'free'>('alloc', 'alloc', 'free'),
  order: fc.nat({ max: 5 }),
  pick: fc.nat(),
  policy: fc.constantFrom<WatermarkPolicy>('min', 'min', 'min-half', 'none'),
  zone: fc.constantFrom<'normal' | 'dma'>('normal', 'normal', 'normal', 'dma'),
});

const configArb = fc.record({
  pageBytes: fc.constantFrom(256, 4096, 16384, 65536),
  frames: fc.integer({ min: 8, max: 1400 }),
  zones: fc.constantFrom<'normal' | 'dma-normal' | 'x86-64'>('normal', 'dma-normal', 'x86-64'),
  pcp: fc.constantFrom<'on' | 'off'>('on', 'off'),
  pcpBatch: fc.integer({ min: 1, max: 6 }),
  minFreeKbytes: fc.constantFrom(0, 16, 256),
  reserveAt: fc.nat(),
  reserveFrames: fc.nat({ max: 9 }),
  poison: fc.constantFrom<'off' | 'strict'>('off', 'off', 'strict'),
});

/**
 * Could zone z satisfy (order, policy) for an allocation that may use zones up to `top` right
 * now? (The oracle for -1: the mark plus the zone's lowmem reserve against `top`.)
 */
function zoneCouldServe(
  buddy: BuddyAllocator,
  z: number,
  op: { order: number; policy: WatermarkPolicy; top: number },
): boolean {
  const { order, policy, top } = op;
  const view = buddy.zone(z);
  const min = view.watermarks.min;
  const reserve = view.lowmemReserve[top]!;
  const mark = policy === 'min' ? min + reserve : policy === 'min-half' ? min - (min >> 1) + reserve : 0;
  if (view.freePages - 2 ** order < mark) return false;
  return view.nrFree.some((n, o) => o >= order && n > 0);
}

describe('property: random allocate/free sequences against a model', () => {
  it('keeps every invariant, never hands out a frame twice, fails only when nothing fits', () => {
    fc.assert(
      fc.property(configArb, fc.array(opArb, { maxLength: 60 }), fc.nat(), (config, ops, shuffleSeed) => {
        const reserveFirst = config.reserveAt % config.frames;
        const reserveFrames = Math.min(config.reserveFrames, config.frames - reserveFirst);
        const { buddy, pages } = machine({
          frames: config.frames,
          pageBytes: config.pageBytes,
          zones: config.zones,
          pcp: config.pcp,
          pcpBatch: config.pcpBatch,
          minFreeKbytes: config.minFreeKbytes,
          poison: config.poison,
          reserved: [{ label: 'r', firstPfn: reserveFirst, frames: reserveFrames }],
        });
        buddy.checkInvariants();
        const boot = buddy.freeListSnapshot();
        const used = new Uint8Array(config.frames);
        for (let p = reserveFirst; p < reserveFirst + reserveFrames; p++) used[p] = 1;
        const live: Array<[number, number]> = [];
        for (const op of ops) {
          if (op.kind === 'free' && live.length > 0) {
            const [pfn, order] = live.splice(op.pick % live.length, 1)[0]!;
            buddy.free(pfn, order);
            for (let p = pfn; p < pfn + 2 ** order; p++) used[p] = 0;
          } else {
            const options: BuddyAllocOptions = { watermark: op.policy, zone: op.zone };
            const pfn = buddy.alloc(op.order, options);
            if (pfn < 0) {
              const noZone = op.zone === 'dma' && buddy.dmaZone < 0;
              if (!noZone) expect(buddy.pcpPages()).toBe(0);
              const top = op.zone === 'dma' ? buddy.dmaZone : buddy.zoneCount - 1;
              for (let z = 0; z < buddy.zoneCount; z++) {
                if (op.zone === 'dma' && buddy.zone(z).name !== 'DMA') continue;
                expect(zoneCouldServe(buddy, z, { order: op.order, policy: op.policy, top })).toBe(false);
              }
            } else {
              expect(pfn % 2 ** op.order).toBe(0);
              if (op.zone === 'dma') expect(buddy.zone(buddy.dmaZone).endPfn).toBeGreaterThan(pfn);
              for (let p = pfn; p < pfn + 2 ** op.order; p++) {
                expect(used[p]).toBe(0);
                used[p] = 1;
              }
              expect(pages.flags[pfn]! & PG_ALLOCATED).toBe(PG_ALLOCATED);
              live.push([pfn, op.order]);
            }
          }
          buddy.checkInvariants();
        }
        // free everything in a shuffled order: memory must merge back to the boot state exactly
        let seed = shuffleSeed;
        while (live.length > 0) {
          seed = (seed * 1103515245 + 12345) >>> 0;
          const [pfn, order] = live.splice(seed % live.length, 1)[0]!;
          buddy.free(pfn, order);
        }
        buddy.drainPcp();
        buddy.checkInvariants();
        expect(buddy.freeListSnapshot()).toEqual(boot);
        expect(buddy.freePages()).toBe(buddy.managedPages());
      }),
      { numRuns: 150, seed: 1 },
    );
  });
});
