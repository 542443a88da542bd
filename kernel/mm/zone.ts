/**
 * Zones: contiguous ranges of physical frames, each with its own buddy free lists and
 * watermarks, as Linux's `struct zone`. This module holds the pure parts: where the zones lie,
 * how the watermarks are derived from `min_free_kbytes` and `watermark_scale_factor`
 * (mm/page_alloc.c `__setup_per_zone_wmarks`, `calculate_min_free_kbytes`), the watermark
 * state a zone is in, and the fragmentation figures of mm/vmstat.c. The buddy allocator
 * (buddy.ts) owns the mutable per-zone state.
 *
 * Zone layouts:
 *   'normal'      one zone, Normal, over all memory (handy for small lab machines)
 *   'dma-normal'  DMA over the first 16 MiB, Normal over the rest (Normal may be empty)
 *   'auto'        'dma-normal' when memory is larger than 16 MiB, else 'normal'
 */

/** Largest buddy order: blocks of 2^10 frames (4 MiB with 4 KiB pages). */
export const MAX_PAGE_ORDER = 10;
/** Number of orders, and of /proc/buddyinfo columns. */
export const NR_PAGE_ORDERS = MAX_PAGE_ORDER + 1;
/** Orders above this are "costly" (Linux PAGE_ALLOC_COSTLY_ORDER); SLUB's default slub_max_order. */
export const PAGE_ALLOC_COSTLY_ORDER = 3;
/** The DMA zone spans the first 16 MiB of physical memory (ISA DMA limit). */
export const DMA_ZONE_BYTES = 16 * 1024 * 1024;

export type ZoneName = 'DMA' | 'Normal';
export type ZoneLayout = 'auto' | 'normal' | 'dma-normal';

/** A zone's frame range: startPfn <= pfn < endPfn; spanned = endPfn - startPfn. */
export interface ZoneSpan {
  readonly name: ZoneName;
  readonly startPfn: number;
  readonly endPfn: number;
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

/**
 * The zones of a machine of `frameCount` frames of `pageBytes` bytes, in Linux order (DMA
 * first). Never returns an empty list; a zone may be empty (startPfn === endPfn) only as the
 * Normal zone of 'dma-normal' on a machine of 16 MiB or less.
 */
export function zoneSpans(frameCount: number, pageBytes: number, layout: ZoneLayout): ZoneSpan[] {
  const sizeBytes = frameCount * pageBytes;
  const effective = layout === 'auto' ? (sizeBytes > DMA_ZONE_BYTES ? 'dma-normal' : 'normal') : layout;
  if (effective === 'normal') return [{ name: 'Normal', startPfn: 0, endPfn: frameCount }];
  const dmaEnd = Math.min(frameCount, Math.floor(DMA_ZONE_BYTES / pageBytes));
  return [
    { name: 'DMA', startPfn: 0, endPfn: dmaEnd },
    { name: 'Normal', startPfn: dmaEnd, endPfn: frameCount },
  ];
}

/**
 * Linux's default min_free_kbytes (calculate_min_free_kbytes): int_sqrt(lowmem_kbytes * 16),
 * clamped to [128, 262144]. vmlab adds one cap: at most 1/16 of low memory, which only bites
 * below 4 MiB of managed memory, so that tiny lab machines keep most of their frames usable.
 */
export function defaultMinFreeKbytes(lowmemManagedPages: number, pageBytes: number): number {
  const lowmemKbytes = Math.floor((lowmemManagedPages * pageBytes) / 1024);
  const linux = Math.min(262144, Math.max(128, Math.floor(Math.sqrt(lowmemKbytes * 16))));
  return Math.min(linux, Math.floor(lowmemKbytes / 16));
}

/**
 * Watermarks per zone as __setup_per_zone_wmarks computes them (no highmem zones here):
 *   pages_min = min_free_kbytes in pages, split over zones in proportion to managed pages
 *   min   = pages_min * managed / Σ managed
 *   dist  = max(min / 4, managed * watermark_scale_factor / 10000)
 *   low   = min + dist,  high = low + dist,  promo = high + dist
 * All divisions round down, as the kernel's integer arithmetic does.
 */
export function zoneWatermarks(
  managedPages: readonly number[],
  tunables: WatermarkTunables,
  pageBytes: number,
): Watermarks[] {
  const pagesMin = Math.floor((tunables.minFreeKbytes * 1024) / pageBytes);
  let lowmemPages = 0;
  for (const m of managedPages) lowmemPages += m;
  return managedPages.map((managed) => {
    const min = lowmemPages === 0 ? 0 : Math.floor((pagesMin * managed) / lowmemPages);
    const dist = Math.max(Math.floor(min / 4), Math.floor((managed * tunables.watermarkScaleFactor) / 10000));
    return { min, low: min + dist, high: min + 2 * dist, promo: min + 3 * dist };
  });
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
