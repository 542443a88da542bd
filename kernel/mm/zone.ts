/**
 * Zones: contiguous ranges of physical frames, each with its own buddy free lists and
 * watermarks, as Linux's `struct zone`. This module holds the pure parts: where the zones lie,
 * how the watermarks are derived from `min_free_kbytes` and `watermark_scale_factor`
 * (mm/page_alloc.c `__setup_per_zone_wmarks`, `calculate_min_free_kbytes`), the lowmem reserve
 * that protects lower zones from fallback allocations (`setup_per_zone_lowmem_reserve`), the
 * per-CPU vmstat threshold (mm/vmstat.c `calculate_normal_threshold`), the watermark state a
 * zone is in, and the fragmentation figures of mm/vmstat.c. The buddy allocator (buddy.ts) owns
 * the mutable per-zone state.
 *
 * A layout lists every zone type of a kernel configuration, in Linux's `enum zone_type` order,
 * populated or not (an unpopulated zone still has an entry in zoneinfo and in every
 * `protection:` array). Physical memory starts at frame 0, and each zone ends at its limit or at
 * the end of memory, whichever comes first:
 *
 *   'x86-64'      DMA < 16 MiB, DMA32 < 4 GiB, Normal above; Movable, Device (MAX_NR_ZONES 5)
 *   'x86-32'      DMA < 16 MiB, Normal < X86_32_LOWMEM_BYTES, HighMem above; Movable (4)
 *   'riscv64'     DMA32 < 4 GiB, Normal above; Movable (3)
 *   'generic'     Normal over everything; Movable (2): an architecture without DMA zones
 *   'normal'      one Normal zone, nothing else (a lab layout for allocator tests)
 *   'dma-normal'  DMA < 16 MiB, Normal above, nothing else (a lab layout)
 *
 * Movable and Device are never populated: vmlab has no `kernelcore=`/`movablecore=` and no
 * device memory.
 */

/** Largest buddy order: blocks of 2^10 frames (4 MiB with 4 KiB pages). */
export const MAX_PAGE_ORDER = 10;
/** Number of orders, and of /proc/buddyinfo columns. */
export const NR_PAGE_ORDERS = MAX_PAGE_ORDER + 1;
/** Orders above this are "costly" (Linux PAGE_ALLOC_COSTLY_ORDER); SLUB's default slub_max_order. */
export const PAGE_ALLOC_COSTLY_ORDER = 3;
/** The DMA zone spans the first 16 MiB of physical memory (ISA DMA limit, x86 MAX_DMA_PFN). */
export const DMA_ZONE_BYTES = 16 * 1024 * 1024;
/** DMA32 ends at 4 GiB (MAX_DMA32_PFN on x86-64 and riscv64). */
export const DMA32_ZONE_BYTES = 4 * 1024 * 1024 * 1024;
/**
 * x86-32's lowmem limit, Linux's MAXMEM = VMALLOC_END - PAGE_OFFSET - __VMALLOC_RESERVE with
 * PAGE_OFFSET 0xc0000000, a 128 MiB vmalloc reserve and VMALLOC_END 0xff7fe000 (two guard pages
 * below PKMAP_BASE 0xff800000, as 32-bit boot logs print it): 0x377fe000 bytes, 887.99 MiB.
 * Frames above it are HighMem.
 */
export const X86_32_LOWMEM_BYTES = 0xff7fe000 - 0xc0000000 - 128 * 1024 * 1024;

export type ZoneName = 'DMA' | 'DMA32' | 'Normal' | 'HighMem' | 'Movable' | 'Device';
export type ZoneLayout = 'x86-64' | 'x86-32' | 'riscv64' | 'generic' | 'normal' | 'dma-normal';

/**
 * How Linux treats a zone type:
 *   lowmemReserveRatio   sysctl_lowmem_reserve_ratio's default (0: no reserve kept)
 *   lowmem               counted in lowmem_pages and given a share of min_free_kbytes; the
 *                        others (HighMem, Movable) get min = managed / 1024 clamped to [32, 128]
 *   vmstatSuffix         the `pgalloc_<suffix>` / `allocstall_<suffix>` key of /proc/vmstat
 */
export interface ZoneType {
  readonly lowmemReserveRatio: number;
  readonly lowmem: boolean;
  readonly vmstatSuffix: string;
}

export const ZONE_TYPES: Readonly<Record<ZoneName, ZoneType>> = {
  DMA: { lowmemReserveRatio: 256, lowmem: true, vmstatSuffix: 'dma' },
  DMA32: { lowmemReserveRatio: 256, lowmem: true, vmstatSuffix: 'dma32' },
  Normal: { lowmemReserveRatio: 32, lowmem: true, vmstatSuffix: 'normal' },
  HighMem: { lowmemReserveRatio: 0, lowmem: false, vmstatSuffix: 'high' },
  Movable: { lowmemReserveRatio: 0, lowmem: false, vmstatSuffix: 'movable' },
  Device: { lowmemReserveRatio: 0, lowmem: true, vmstatSuffix: 'device' },
};

/** SWAP_CLUSTER_MAX and the cap of a highmem or movable zone's min watermark. */
const CAPPED_MIN_FLOOR = 32;
const CAPPED_MIN_CEILING = 128;

/**
 * A zone's frame range: startPfn <= pfn < endPfn; spanned = endPfn - startPfn. An unpopulated
 * zone has startPfn === endPfn, both at the end of the zone below it, so that the spans of a
 * layout tile [0, frameCount) in order.
 */
export interface ZoneSpan {
  readonly name: ZoneName;
  readonly startPfn: number;
  readonly endPfn: number;
}

/** A zone's name and managed pages: what the watermark and reserve arithmetic reads. */
export interface ZoneSize {
  readonly name: ZoneName;
  readonly managedPages: number;
}

/** Watermarks of one zone, in pages: min <= low <= high <= promo. */
export interface Watermarks {
  readonly min: number;
  readonly low: number;
  readonly high: number;
  readonly promo: number;
}

/** Tunables of the watermark computation (Linux vm.min_free_kbytes, vm.watermark_scale_factor). */
export interface WatermarkTunables {
  /** Memory kept free below the min watermark, summed over zones, in KiB. */
  readonly minFreeKbytes: number;
  /** Distance between watermarks in 1/10000 of a zone's managed memory (Linux default 10, max 3000). */
  readonly watermarkScaleFactor: number;
}

export const DEFAULT_WATERMARK_SCALE_FACTOR = 10;
export const MAX_WATERMARK_SCALE_FACTOR = 3000;

/**
 * Where a zone's free pages stand against its watermarks (Linux's zone_watermark_ok semantics:
 * a zone is "above" a mark while free > mark):
 *   'above-high'   free > high         kswapd may sleep
 *   'below-high'   low < free <= high  kswapd, once woken, keeps reclaiming
 *   'below-low'    min < free <= low   kswapd should be woken
 *   'below-min'    free <= min         ordinary allocations fail here: direct reclaim
 */
export type WatermarkState = 'above-high' | 'below-high' | 'below-low' | 'below-min';

/** Where each zone of a layout starts and ends, in [start, end) frame bounds by limit in bytes. */
const LAYOUTS: Readonly<Record<ZoneLayout, ReadonlyArray<readonly [ZoneName, number]>>> = {
  'x86-64': [
    ['DMA', DMA_ZONE_BYTES],
    ['DMA32', DMA32_ZONE_BYTES],
    ['Normal', Infinity],
    ['Movable', 0],
    ['Device', 0],
  ],
  'x86-32': [
    ['DMA', DMA_ZONE_BYTES],
    ['Normal', X86_32_LOWMEM_BYTES],
    ['HighMem', Infinity],
    ['Movable', 0],
  ],
  riscv64: [
    ['DMA32', DMA32_ZONE_BYTES],
    ['Normal', Infinity],
    ['Movable', 0],
  ],
  generic: [
    ['Normal', Infinity],
    ['Movable', 0],
  ],
  normal: [['Normal', Infinity]],
  'dma-normal': [
    ['DMA', DMA_ZONE_BYTES],
    ['Normal', Infinity],
  ],
};

/**
 * The zones of a machine of `frameCount` frames of `pageBytes` bytes, every zone type of the
 * layout in Linux order (see the module comment); a zone past the end of memory, or one vmlab
 * never populates (limit 0: Movable, Device), is empty. Never returns an empty list.
 */
export function zoneSpans(frameCount: number, pageBytes: number, layout: ZoneLayout): ZoneSpan[] {
  const spans: ZoneSpan[] = [];
  let start = 0;
  for (const [name, limitBytes] of LAYOUTS[layout]) {
    const limit = limitBytes === Infinity ? frameCount : Math.floor(limitBytes / pageBytes);
    const end = limitBytes === 0 ? start : Math.max(start, Math.min(frameCount, limit));
    spans.push({ name, startPfn: start, endPfn: end });
    start = end;
  }
  return spans;
}

/**
 * Linux's default min_free_kbytes (calculate_min_free_kbytes): int_sqrt(lowmem_kbytes * 16),
 * clamped to [128, 262144], where low memory is the managed pages of the zones GFP_USER may use
 * (DMA, DMA32, Normal: not HighMem or Movable). vmlab adds one cap: at most 1/16 of low memory,
 * which only bites below 4 MiB of managed memory, so that tiny lab machines keep most of their
 * frames usable.
 */
export function defaultMinFreeKbytes(lowmemManagedPages: number, pageBytes: number): number {
  const lowmemKbytes = Math.floor((lowmemManagedPages * pageBytes) / 1024);
  const linux = Math.min(262144, Math.max(128, Math.floor(Math.sqrt(lowmemKbytes * 16))));
  return Math.min(linux, Math.floor(lowmemKbytes / 16));
}

/** Managed pages of the lowmem zones (ZoneType.lowmem): Linux's lowmem_pages. */
export function lowmemPages(zones: readonly ZoneSize[]): number {
  let pages = 0;
  for (const z of zones) if (ZONE_TYPES[z.name].lowmem) pages += z.managedPages;
  return pages;
}

/**
 * Watermarks per zone as __setup_per_zone_wmarks computes them:
 *   pages_min = min_free_kbytes in pages
 *   share = pages_min * managed / lowmem_pages          (lowmem_pages: see lowmemPages)
 *   min   = share for a lowmem zone; clamp(managed / 1024, 32, 128) for HighMem and Movable
 *   dist  = max(share / 4, managed * watermark_scale_factor / 10000)
 *   low   = min + dist,  high = low + dist,  promo = high + dist
 * All divisions round down, as the kernel's integer arithmetic does. So an empty Movable zone
 * has min = low = high = promo = 32, as Linux's zoneinfo shows it.
 */
export function zoneWatermarks(
  zones: readonly ZoneSize[],
  tunables: WatermarkTunables,
  pageBytes: number,
): Watermarks[] {
  const pagesMin = Math.floor((tunables.minFreeKbytes * 1024) / pageBytes);
  const lowmem = lowmemPages(zones);
  return zones.map(({ name, managedPages: managed }) => {
    const share = lowmem === 0 ? 0 : Math.floor((pagesMin * managed) / lowmem);
    const min = ZONE_TYPES[name].lowmem
      ? share
      : Math.min(CAPPED_MIN_CEILING, Math.max(CAPPED_MIN_FLOOR, Math.floor(managed / 1024)));
    const dist = Math.max(
      Math.floor(share / 4),
      Math.floor((managed * tunables.watermarkScaleFactor) / 10000),
    );
    return { min, low: min + dist, high: min + 2 * dist, promo: min + 3 * dist };
  });
}

/**
 * Each zone's lowmem_reserve array (zoneinfo's `protection:`), as setup_per_zone_lowmem_reserve
 * computes it: for zone i and every higher zone j,
 *   lowmem_reserve[i][j] = (managed[i+1] + … + managed[j]) / lowmem_reserve_ratio[i]
 * and 0 for j <= i, for a zone whose ratio is 0, or for a zone with no managed pages. An
 * allocation that may use zones up to j must leave zone i more than min + lowmem_reserve[i][j]
 * pages free to take from it, so a fallback cannot eat the lower zones.
 */
export function lowmemReserves(zones: readonly ZoneSize[]): number[][] {
  return zones.map((zone, i) => {
    const ratio = ZONE_TYPES[zone.name].lowmemReserveRatio;
    const clear = ratio === 0 || zone.managedPages === 0;
    const reserve = new Array<number>(zones.length).fill(0);
    let upper = 0;
    for (let j = i + 1; j < zones.length; j++) {
      upper += zones[j]!.managedPages;
      reserve[j] = clear ? 0 : Math.floor(upper / ratio);
    }
    return reserve;
  });
}

/** The position of the highest set bit, 1-based; 0 for 0 (the kernel's fls). */
function fls(x: number): number {
  return x <= 0 ? 0 : Math.floor(Math.log2(x)) + 1;
}

/**
 * The per-CPU vmstat threshold of a populated zone on a machine of `cpus` CPUs (zoneinfo's
 * `vm stats threshold`), calculate_normal_threshold:
 *   mem = managed memory in 128 MiB units;  threshold = min(125, 2 * fls(cpus) * (1 + fls(mem)))
 * so 2 for a zone below 128 MiB on one CPU.
 */
export function statThreshold(managedPages: number, pageBytes: number, cpus = 1): number {
  const mem = Math.floor((managedPages * pageBytes) / 2 ** 27);
  return Math.min(125, 2 * fls(cpus) * (1 + fls(mem)));
}

/** The watermark state of a zone with `freePages` free (see WatermarkState). */
export function watermarkStateOf(freePages: number, marks: Watermarks): WatermarkState {
  if (freePages > marks.high) return 'above-high';
  if (freePages > marks.low) return 'below-high';
  if (freePages > marks.min) return 'below-low';
  return 'below-min';
}

/** mm/vmstat.c `struct contig_page_info`: free memory seen from one requested order. */
export interface ContigPageInfo {
  /** Free base pages: Σ nr_free[o] * 2^o. */
  readonly freePages: number;
  /** Free blocks of any order: Σ nr_free[o]. */
  readonly freeBlocksTotal: number;
  /** Blocks of 2^order pages that the free blocks of order >= `order` could be split into. */
  readonly freeBlocksSuitable: number;
}

/** fill_contig_page_info: the free-block summary for `suitableOrder` from per-order nr_free. */
export function contigPageInfo(nrFree: ArrayLike<number>, suitableOrder: number): ContigPageInfo {
  let freePages = 0;
  let freeBlocksTotal = 0;
  let freeBlocksSuitable = 0;
  for (let order = 0; order < nrFree.length; order++) {
    const blocks = nrFree[order]!;
    freeBlocksTotal += blocks;
    freePages += blocks * 2 ** order;
    if (order >= suitableOrder) freeBlocksSuitable += blocks * 2 ** (order - suitableOrder);
  }
  return { freePages, freeBlocksTotal, freeBlocksSuitable };
}

/**
 * Linux's __fragmentation_index (the debugfs extfrag_index), in thousandths: -1000 when an
 * allocation of `order` would succeed; otherwise 0 (failure from lack of memory) up to 1000
 * (failure from external fragmentation); 0 when nothing is free.
 *   index = 1000 - (1000 + free_pages * 1000 / 2^order) / free_blocks_total
 */
export function fragmentationIndex(nrFree: ArrayLike<number>, order: number): number {
  const info = contigPageInfo(nrFree, order);
  if (info.freeBlocksTotal === 0) return 0;
  if (info.freeBlocksSuitable > 0) return -1000;
  const requested = 2 ** order;
  return 1000 - Math.floor((1000 + Math.floor((info.freePages * 1000) / requested)) / info.freeBlocksTotal);
}

/**
 * Linux's unusable_free_index (debugfs unusable_index), in thousandths: the share of free
 * memory that sits in blocks smaller than 2^order; 1000 when nothing is free.
 */
export function unusableFreeIndex(nrFree: ArrayLike<number>, order: number): number {
  const info = contigPageInfo(nrFree, order);
  if (info.freePages === 0) return 1000;
  return Math.floor(((info.freePages - info.freeBlocksSuitable * 2 ** order) * 1000) / info.freePages);
}

/**
 * Linux's extfrag_for_order: the percentage (0..100) of free pages found in blocks smaller
 * than 2^order; 0 when nothing is free.
 */
export function extfragForOrder(nrFree: ArrayLike<number>, order: number): number {
  const info = contigPageInfo(nrFree, order);
  if (info.freePages === 0) return 0;
  return Math.floor(((info.freePages - info.freeBlocksSuitable * 2 ** order) * 100) / info.freePages);
}
