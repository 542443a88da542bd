/**
 * kmalloc: general-purpose kernel memory in Linux's size classes. Requests up to
 * KMALLOC_MAX_CACHE_SIZE bytes come from the smallest kmalloc-<size> slab cache that fits
 * (powers of two from 8 to 8192 plus 96 and 192, as Linux has); larger ones get a buddy block of
 * order ceil(log2(pages)) directly, flagged PG_ALLOCATED | PG_LARGE_KMALLOC on its head, which is
 * how kfree tells the two apart. Large blocks count as SUnreclaim in /proc/meminfo, as in Linux.
 *
 * Return values: a physical address; -1 when memory is short (or the request exceeds the
 * largest buddy block); ZERO_SIZE_PTR for a request of 0 bytes, a distinguished value that is
 * never a physical address and that kfree accepts and ignores (Linux returns (void *)16).
 * kfree(-1), like kfree(NULL), does nothing.
 */
import { panic } from '../lib/panic.ts';
import type { BuddyAllocator, WatermarkPolicy } from './buddy.ts';
import { PG_ALLOCATED, PG_LARGE_KMALLOC, PG_SLAB, PG_TAIL } from './page.ts';
import type { KmemCache, ObjectContents, SlabAllocator } from './slab.ts';
import { MAX_PAGE_ORDER } from './zone.ts';

/** The kmalloc size classes, in the order Linux creates their caches. */
export const KMALLOC_SIZES: readonly number[] = [
  8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
];
/** Largest request served by a slab cache (KMALLOC_MAX_CACHE_SIZE with 4 KiB pages). */
export const KMALLOC_MAX_CACHE_SIZE = 8192;
/** What kmalloc(0) returns: not an address, accepted (and ignored) by kfree. */
export const ZERO_SIZE_PTR = -16;

export interface KmallocOptions {
  readonly contents?: ObjectContents;
  readonly watermark?: WatermarkPolicy;
}

/** Linux's cache name for a size class: kmalloc-96, kmalloc-512, kmalloc-1k, kmalloc-8k. */
export function kmallocCacheName(size: number): string {
  return size >= 1024 ? `kmalloc-${size / 1024}k` : `kmalloc-${size}`;
}

/** Index in KMALLOC_SIZES of the smallest class holding `size` bytes (1..8192). */
export function kmallocSizeClass(size: number): number {
  return CLASS_OF_SIZE[size]!;
}

const CLASS_OF_SIZE = (() => {
  const table = new Uint8Array(KMALLOC_MAX_CACHE_SIZE + 1);
  let c = 0;
  for (let size = 1; size <= KMALLOC_MAX_CACHE_SIZE; size++) {
    while (KMALLOC_SIZES[c]! < size) c++;
    table[size] = c;
  }
  return table;
})();

export class Kmalloc {
  readonly slab: SlabAllocator;
  readonly buddy: BuddyAllocator;
  /** One cache per size class, indexed like KMALLOC_SIZES. */
  readonly caches: readonly KmemCache[];
  /** Frames held by large (buddy-backed) kmalloc blocks. */
  largePages = 0;
  private readonly pageBytes: number;

  /** Creates the kmalloc caches in `slab`. */
  constructor(slab: SlabAllocator) {
    this.slab = slab;
    this.buddy = slab.buddy;
    this.pageBytes = slab.buddy.pageBytes;
    this.caches = KMALLOC_SIZES.map((size) => slab.createCache(kmallocCacheName(size), size));
  }

  /**
   * Allocate `size` bytes of kernel memory and return the physical address, -1 on shortage or
   * a size beyond the largest buddy block, ZERO_SIZE_PTR for 0. Panics ('kmalloc:') on a size
   * that is not a non-negative integer.
   */
  kmalloc(size: number, options?: KmallocOptions): number {
    if (size <= KMALLOC_MAX_CACHE_SIZE && size >= 1 && Number.isInteger(size)) {
      return this.caches[CLASS_OF_SIZE[size]!]!.alloc(options);
    }
    if (size === 0) return ZERO_SIZE_PTR;
    if (!Number.isInteger(size) || size < 0) panic(`kmalloc: size ${size} is not a byte count`);
    return this.kmallocLarge(size, options);
  }

  /** kmalloc with the memory zeroed (kzalloc). Same returns as kmalloc. */
  kzalloc(size: number, options?: { readonly watermark?: WatermarkPolicy }): number {
    return this.kmalloc(
      size,
      options?.watermark ? { contents: 'zeroed', watermark: options.watermark } : ZEROED,
    );
  }

  /**
   * Free memory from kmalloc (or from any slab cache). -1 and ZERO_SIZE_PTR are ignored. Panics
   * ('kfree:' or 'kmemCacheFree:') on an address that is not the start of a live allocation.
   */
  kfree(addr: number): void {
    if (addr === -1 || addr === ZERO_SIZE_PTR) return;
    const pfn = this.frameOf(addr, 'kfree');
    const pages = this.buddy.pages;
    const f = pages.flags[pfn]!;
    if (f & PG_SLAB) {
      const head = f & PG_TAIL ? pages.compoundHead[pfn]! : pfn;
      const cache = this.slab.cacheById(pages.owner[head]!);
      if (!cache) panic(`kfree: 0x${addr.toString(16)} is in a slab of no live cache`);
      cache.free(addr);
      return;
    }
    if ((f & PG_LARGE_KMALLOC) === 0 || addr !== pfn * this.pageBytes) {
      panic(`kfree: 0x${addr.toString(16)} is not the start of a kmalloc block`);
    }
    const order = pages.order[pfn]!;
    pages.flags[pfn] = f & ~PG_LARGE_KMALLOC;
    this.buddy.free(pfn, order);
    this.largePages -= 2 ** order;
  }

  /** Usable bytes of the allocation at addr (ksize). Panics like kfree on a bad address. */
  ksize(addr: number): number {
    const pfn = this.frameOf(addr, 'ksize');
    const pages = this.buddy.pages;
    const f = pages.flags[pfn]!;
    if (f & PG_SLAB) {
      const cache = this.slab.cacheOf(addr);
      if (!cache) panic(`ksize: 0x${addr.toString(16)} is in a slab of no live cache`);
      return cache.objectSize;
    }
    if ((f & PG_LARGE_KMALLOC) === 0 || addr !== pfn * this.pageBytes) {
      panic(`ksize: 0x${addr.toString(16)} is not the start of a kmalloc block`);
    }
    return this.pageBytes * 2 ** pages.order[pfn]!;
  }

  /** Check the large-block count against the frames flagged PG_LARGE_KMALLOC ('kmallocCheck:'). */
  checkInvariants(): void {
    const pages = this.buddy.pages;
    let large = 0;
    for (let p = 0; p < pages.count; p++) {
      if (pages.flags[p]! & PG_LARGE_KMALLOC) {
        if ((pages.flags[p]! & PG_ALLOCATED) === 0)
          panic(`kmallocCheck: large kmalloc frame ${p} is not PG_ALLOCATED`);
        large += 2 ** pages.order[p]!;
      }
    }
    if (large !== this.largePages)
      panic(`kmallocCheck: ${this.largePages} large pages counted, ${large} found`);
  }

  private kmallocLarge(size: number, options: KmallocOptions | undefined): number {
    const order = getOrderOfPages(Math.ceil(size / this.pageBytes));
    if (order > MAX_PAGE_ORDER) return -1;
    const pfn = this.buddy.alloc(order, {
      owner: PG_ALLOCATED,
      contents: options?.contents ?? 'uninitialized',
      watermark: options?.watermark ?? 'min',
    });
    if (pfn < 0) return -1;
    this.buddy.pages.flags[pfn]! |= PG_LARGE_KMALLOC;
    this.largePages += 2 ** order;
    return pfn * this.pageBytes;
  }

  private frameOf(addr: number, fn: string): number {
    if (!Number.isInteger(addr) || addr < 0 || addr >= this.buddy.memory.sizeBytes) {
      panic(`${fn}: ${addr} is not a physical address`);
    }
    return Math.floor(addr / this.pageBytes);
  }
}

const ZEROED: KmallocOptions = Object.freeze({ contents: 'zeroed' });

function getOrderOfPages(pages: number): number {
  let order = 0;
  while (2 ** order < pages) order++;
  return order;
}
