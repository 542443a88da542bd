/**
 * The buddy page allocator: blocks of 2^order physical frames, order 0..MAX_PAGE_ORDER, one
 * free list per zone and order, splitting on allocation and merging with the buddy on free
 * (Linux mm/page_alloc.c, without per-CPU lists or migrate types).
 *
 * Frame ownership (struct page flags, see page.ts):
 *   - a free block: its head frame carries exactly PG_BUDDY and `order`; the other frames of
 *     the block carry no flags (they belong to the block through its head);
 *   - an allocated block: every frame carries the owner flag given at allocation (PG_ALLOCATED
 *     unless told otherwise); with order > 0 the head also has PG_HEAD and the others PG_TAIL
 *     with compoundHead = head; the head holds `order` and refcount 1;
 *   - reserved frames (firmware, kernel image) carry PG_RESERVED and are never handed out.
 *
 * Free lists are doubly linked through PageFrames.next/prev; their heads live in a typed array:
 *   freeHead[z * NR_PAGE_ORDERS + o]   first free block of order o in zone z, or NIL
 *   nrFree[z * NR_PAGE_ORDERS + o]     == length of that list
 *   zoneFree[z]                        == Σ_o nrFree[z, o] * 2^o
 * and every listed block is aligned: head % 2^o == 0, wholly inside its zone, and never next to
 * a free buddy of the same order (they would have merged).
 *
 * Per-CPU page lists (option `pcp`, 'on' by default; the machine has one CPU): as in Linux, a
 * freed order-0 page is first parked on its zone's pcp list (flag PG_PCP) and order-0 requests
 * are served from that list, refilled `batch` pages at a time from the buddy lists; when the list
 * reaches `high` pages, its `batch` oldest pages go back to the buddy lists, merging. Pages on a
 * pcp list are free but, as in Linux, not counted in the zone's free pages nor in
 * /proc/buddyinfo. drainPcp() returns them all (drain_all_pages); an allocation that would fail
 * drains the lists and retries once before reporting the shortage. With pcp 'off' every free
 * merges at once, which is what a lab tracing splits and merges by hand wants.
 *
 * Watermarks and failure policy. Each zone has min/low/high watermarks and a lowmem reserve
 * (zone.ts). An allocation may use the zones up to the top one (all of them; 'dma': DMA only)
 * and takes from a zone only while that leaves it more than its mark plus its lowmem reserve
 * against that top zone (Linux's __zone_watermark_ok with lowmem_reserve[highest_zoneidx]). By
 * default the mark is `min`, so an allocation fails (returns -1) when every zone is at its min
 * and reserve, and the caller can enter direct reclaim and retry; `watermark: 'min-half'` (Linux
 * ALLOC_HIGH, for atomic requests) may go down to min/2 and `watermark: 'none'`
 * (ALLOC_NO_WATERMARKS, for reclaim itself) may take the last page, reserve or not. Whenever a
 * zone's free count crosses a watermark plus its reserve against the top zone, the allocator
 * updates the zone's WatermarkState and tells the listeners registered with onWatermarkCrossing
 * (kswapd wakes on 'below-low', sleeps on 'above-high', as Linux's pgdat_balanced checks
 * high + lowmem_reserve).
 *
 * Poisoning (option `poison`, 'off' by default): with 'poison' every frame freed is filled with
 * PAGE_POISON_FREE (0xaa) and every frame handed out without zeroing with PAGE_POISON_ALLOC
 * (0x5a); 'strict' also checks, on allocation, that a previously freed frame still holds 0xaa
 * throughout (a write after free panics). Poisoning materializes the frames it writes, so it
 * costs host memory: use it on small machines and in tests. Zeroing (contents: 'zeroed') is
 * real and cheap in every mode: the frame's backing is released and reads zeros.
 */
import type { PhysicalMemory } from '../hw/physmem.ts';
import { panic } from '../lib/panic.ts';
import {
  NIL,
  type PageFrames,
  PG_ALLOCATED,
  PG_ANON,
  PG_BUDDY,
  PG_FILE,
  PG_HEAD,
  PG_LOCKED,
  PG_LRU,
  PG_OWNER_MASK,
  PG_PAGETABLE,
  PG_PCP,
  PG_RESERVED,
  PG_SLAB,
  PG_TAIL,
  PG_WRITEBACK,
} from './page.ts';
import {
  DEFAULT_WATERMARK_SCALE_FACTOR,
  defaultMinFreeKbytes,
  lowmemPages,
  lowmemReserves,
  MAX_PAGE_ORDER,
  MAX_WATERMARK_SCALE_FACTOR,
  NR_PAGE_ORDERS,
  statThreshold,
  type WatermarkState,
  type Watermarks,
  type WatermarkTunables,
  watermarkStateOf,
  type ZoneLayout,
  type ZoneName,
  type ZoneSize,
  type ZoneSpan,
  zoneSpans,
  zoneWatermarks,
} from './zone.ts';

export { MAX_PAGE_ORDER, NR_PAGE_ORDERS } from './zone.ts';

/** Byte written over every freed frame when poisoning (Linux PAGE_POISON). */
export const PAGE_POISON_FREE = 0xaa;
/** Byte written over every frame handed out unzeroed when poisoning. */
export const PAGE_POISON_ALLOC = 0x5a;

export type PoisonMode = 'off' | 'poison' | 'strict';
/** How far below the min watermark an allocation may take a zone (see the module comment). */
export type WatermarkPolicy = 'min' | 'min-half' | 'none';
/**
 * 'normal': the top zone first, then down to DMA (the zonelist of GFP_KERNEL and of user
 * pages; vmlab does not keep kernel allocations out of HighMem); 'dma': the DMA zone only
 * (GFP_DMA).
 */
export type ZonePreference = 'normal' | 'dma';
/** 'zeroed' really zeroes the frames (__GFP_ZERO); 'uninitialized' leaves what was there. */
export type PageContents = 'uninitialized' | 'zeroed';
/** Whether order-0 pages go through per-CPU page lists. */
export type PcpMode = 'on' | 'off';

/** The owner flags an allocation may give its frames. */
const ALLOCATABLE_OWNERS = PG_ALLOCATED | PG_SLAB | PG_PAGETABLE | PG_ANON | PG_FILE;
/** A frame with one of these is still in use (its list links belong to an LRU, or I/O runs). */
const BUSY_FLAGS = PG_LRU | PG_LOCKED | PG_WRITEBACK;

export interface BuddyAllocOptions {
  /** Owner flag set on every frame of the block: one of PG_ALLOCATED (default), PG_SLAB,
   *  PG_PAGETABLE, PG_ANON, PG_FILE. */
  readonly owner?: number;
  readonly contents?: PageContents;
  readonly zone?: ZonePreference;
  readonly watermark?: WatermarkPolicy;
}

/** A range of frames reserved at boot: never allocated, flagged PG_RESERVED. */
export interface ReservedRange {
  readonly label: string;
  readonly firstPfn: number;
  readonly frames: number;
}

export interface BuddyOptions {
  readonly memory: PhysicalMemory;
  readonly pages: PageFrames;
  /** Zone layout (zone.ts); default 'x86-64' (the machine passes its architecture's). */
  readonly zones?: ZoneLayout;
  /** Frames reserved at boot; default defaultReservations(). Ranges must not overlap. */
  readonly reserved?: readonly ReservedRange[];
  /** vm.min_free_kbytes; default Linux's sqrt rule (zone.ts defaultMinFreeKbytes). */
  readonly minFreeKbytes?: number;
  /** vm.watermark_scale_factor, 1..3000; default 10. */
  readonly watermarkScaleFactor?: number;
  readonly poison?: PoisonMode;
  /** Per-CPU page lists; default 'on'. */
  readonly pcp?: PcpMode;
  /** Pages moved per pcp refill or drain; default Linux's zone_batchsize. high = 6 * batch. */
  readonly pcpBatch?: number;
}

/** A change of a zone's watermark state, reported to onWatermarkCrossing listeners. */
export interface WatermarkCrossing {
  readonly zoneIndex: number;
  readonly zone: ZoneName;
  readonly from: WatermarkState;
  readonly to: WatermarkState;
  readonly freePages: number;
}

export type WatermarkListener = (crossing: WatermarkCrossing) => void;

/** Read-only description of one zone, for /proc renderers and reclaim. */
export interface ZoneView {
  readonly index: number;
  readonly name: ZoneName;
  readonly startPfn: number;
  readonly endPfn: number;
  /** endPfn - startPfn. */
  readonly spannedPages: number;
  /** Frames present in the span (all of them: memory has no holes); 0: the zone is unpopulated. */
  readonly presentPages: number;
  /** present - reserved: the frames the buddy allocator manages. */
  readonly managedPages: number;
  readonly freePages: number;
  readonly watermarks: Watermarks;
  /** Free pages against the watermarks plus lowmemReserve[top zone] (see the module comment). */
  readonly state: WatermarkState;
  /** nr_free per order 0..MAX_PAGE_ORDER. */
  readonly nrFree: readonly number[];
  /**
   * lowmem_reserve against each zone of the layout (zoneinfo's `protection:`): an allocation
   * that may use zones up to j leaves this zone more than its mark + lowmemReserve[j] free.
   */
  readonly lowmemReserve: readonly number[];
  /** The per-CPU vmstat threshold (zoneinfo's `vm stats threshold`; 1 CPU). */
  readonly statThreshold: number;
  /** Pages on the zone's per-CPU list, and its high and batch marks (all 0 with pcp 'off'). */
  readonly pcpCount: number;
  readonly pcpHigh: number;
  readonly pcpBatch: number;
}

const INT32_MAX = 0x7fffffff;
const NO_OPTIONS: BuddyAllocOptions = Object.freeze({});
const STATES: readonly WatermarkState[] = ['below-min', 'below-low', 'below-high', 'above-high'];
const KIB = 1024;

/**
 * The default boot reservations: "firmware" over the first 64 KiB and a "kernel image" of
 * 2 MiB at 1 MiB (right after the firmware on machines under 4 MiB), each shrunk on small
 * machines to at most 1/64 and 1/16 of the frames.
 */
export function defaultReservations(frameCount: number, pageBytes: number): ReservedRange[] {
  const firmwareFrames = Math.min(
    Math.ceil((64 * KIB) / pageBytes),
    Math.max(1, Math.floor(frameCount / 64)),
  );
  const kernelFrames = Math.min(
    Math.ceil((2 * KIB * KIB) / pageBytes),
    Math.max(1, Math.floor(frameCount / 16)),
  );
  const oneMiB = Math.ceil((KIB * KIB) / pageBytes);
  const roomy = frameCount * pageBytes >= 4 * KIB * KIB;
  const kernelStart = roomy ? Math.max(oneMiB, firmwareFrames) : firmwareFrames;
  const ranges: ReservedRange[] = [{ label: 'firmware', firstPfn: 0, frames: firmwareFrames }];
  if (kernelStart + kernelFrames <= frameCount) {
    ranges.push({ label: 'kernel image', firstPfn: kernelStart, frames: kernelFrames });
  }
  return ranges;
}

export class BuddyAllocator {
  readonly memory: PhysicalMemory;
  readonly pages: PageFrames;
  readonly pageBytes: number;
  readonly frameCount: number;
  readonly poison: PoisonMode;
  readonly pcp: PcpMode;
  readonly reserved: readonly ReservedRange[];
  readonly zoneCount: number;
  /** Index of the DMA zone, or -1 when the layout has none. */
  readonly dmaZone: number;

  /** Pages handed out per zone since boot (vmstat pgalloc_<zone>). */
  readonly pgalloc: Float64Array;
  /** Pages freed since boot (vmstat pgfree). */
  pgfree = 0;
  /** Allocation requests that returned -1. */
  allocFailures = 0;

  // struct page columns, cached for the fast paths
  private readonly flags: Uint32Array;
  private readonly order: Uint8Array;
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly refcount: Int32Array;
  private readonly mapcount: Int32Array;
  private readonly owner: Int32Array;
  private readonly priv: Float64Array;
  private readonly index: Float64Array;
  private readonly inuse: Int32Array;
  private readonly compoundHead: Int32Array;

  // per zone and order
  private readonly freeHead: Int32Array;
  private readonly nrFree: Int32Array;
  // per zone
  private readonly zoneSpan: readonly ZoneSpan[];
  private readonly zoneStart: Int32Array;
  private readonly zoneEnd: Int32Array;
  private readonly zoneFree: Int32Array;
  private readonly zoneManaged: Int32Array;
  private readonly wmarkMin: Int32Array;
  /** lowmem_reserve[z][top zone]: what an allocation that may use every zone leaves in zone z. */
  private readonly reserveTop: Int32Array;
  private marks: Watermarks[];
  private reserves: number[][];
  private readonly zoneState: Uint8Array; // index into STATES
  /** The zone keeps its state while bandLo < free <= bandHi. */
  private readonly bandLo: Int32Array;
  private readonly bandHi: Int32Array;
  // per-CPU page lists per zone: doubly linked through next/prev, newest at the head
  private readonly pcpHead: Int32Array;
  private readonly pcpTail: Int32Array;
  /** == length of the zone's pcp list; < pcpHigh between calls. */
  private readonly pcpCount: Int32Array;
  private readonly pcpHigh: Int32Array;
  private readonly pcpBatch: Int32Array;
  private readonly pcpOn: boolean;
  private tunables: WatermarkTunables;
  private readonly listeners: WatermarkListener[] = [];
  /** Pages held per owner flag, indexed by the flag's bit number. */
  private readonly ownerPages = new Float64Array(32);

  constructor(options: BuddyOptions) {
    const { memory, pages } = options;
    if (pages.count !== memory.frameCount) {
      throw new RangeError(`BuddyAllocator: ${pages.count} struct pages for ${memory.frameCount} frames`);
    }
    this.memory = memory;
    this.pages = pages;
    this.pageBytes = memory.pageBytes;
    this.frameCount = memory.frameCount;
    this.poison = options.poison ?? 'off';
    this.pcp = options.pcp ?? 'on';
    this.pcpOn = this.pcp === 'on';
    this.flags = pages.flags;
    this.order = pages.order;
    this.next = pages.next;
    this.prev = pages.prev;
    this.refcount = pages.refcount;
    this.mapcount = pages.mapcount;
    this.owner = pages.owner;
    this.priv = pages.priv;
    this.index = pages.index;
    this.inuse = pages.inuse;
    this.compoundHead = pages.compoundHead;

    this.zoneSpan = zoneSpans(this.frameCount, this.pageBytes, options.zones ?? 'x86-64');
    const nz = this.zoneSpan.length;
    this.zoneCount = nz;
    this.dmaZone = this.zoneSpan.findIndex((z) => z.name === 'DMA');
    this.pgalloc = new Float64Array(nz);
    this.freeHead = new Int32Array(nz * NR_PAGE_ORDERS).fill(NIL);
    this.nrFree = new Int32Array(nz * NR_PAGE_ORDERS);
    this.zoneStart = Int32Array.from(this.zoneSpan, (z) => z.startPfn);
    this.zoneEnd = Int32Array.from(this.zoneSpan, (z) => z.endPfn);
    this.zoneFree = new Int32Array(nz);
    this.zoneManaged = new Int32Array(nz);
    this.wmarkMin = new Int32Array(nz);
    this.reserveTop = new Int32Array(nz);
    this.zoneState = new Uint8Array(nz);
    this.bandLo = new Int32Array(nz);
    this.bandHi = new Int32Array(nz);
    this.pcpHead = new Int32Array(nz).fill(NIL);
    this.pcpTail = new Int32Array(nz).fill(NIL);
    this.pcpCount = new Int32Array(nz);
    this.pcpHigh = new Int32Array(nz);
    this.pcpBatch = new Int32Array(nz);

    this.reserved = options.reserved ?? defaultReservations(this.frameCount, this.pageBytes);
    this.bootFrames();
    this.tunables = checkedTunables({
      minFreeKbytes:
        options.minFreeKbytes ?? defaultMinFreeKbytes(lowmemPages(this.zoneSizes()), this.pageBytes),
      watermarkScaleFactor: options.watermarkScaleFactor ?? DEFAULT_WATERMARK_SCALE_FACTOR,
    });
    this.marks = [];
    this.reserves = [];
    this.setupWatermarks();
    if (this.pcpOn) this.setupPcp(options.pcpBatch);
  }

  // ---- the fast paths ----

  /**
   * Allocate a block of 2^order frames and return its head frame number, or -1 when no allowed
   * zone can give one without going below the watermark the policy allows (a shortage: the
   * caller undoes its partial work, reclaims, retries). Never throws for a shortage; panics on
   * an order outside 0..MAX_PAGE_ORDER or an owner flag that cannot be allocated.
   */
  alloc(order: number, options: BuddyAllocOptions = NO_OPTIONS): number {
    if (order >>> 0 !== order || order > MAX_PAGE_ORDER) panic(`buddyAlloc: order ${order} out of range`);
    const owner = options.owner ?? PG_ALLOCATED;
    if ((owner & (owner - 1)) !== 0 || (owner & ALLOCATABLE_OWNERS) === 0) {
      panic(`buddyAlloc: owner flags 0x${owner.toString(16)} are not one allocatable owner`);
    }
    const policy = options.watermark;
    const size = 1 << order;
    let z = this.zoneCount - 1;
    let lowest = 0;
    if (options.zone === 'dma') {
      if (this.dmaZone < 0) return this.allocFailed();
      z = this.dmaZone;
      lowest = this.dmaZone;
    }
    const top = z;
    for (; z >= lowest; z--) {
      const free = this.zoneFree[z]!;
      const reserve = z === top ? 0 : this.reserveTop[z]!;
      if (policy === undefined || policy === 'min') {
        if (free - size < this.wmarkMin[z]! + reserve) continue;
      } else if (policy === 'min-half') {
        if (free - size < this.wmarkMin[z]! - (this.wmarkMin[z]! >> 1) + reserve) continue;
      }
      let pfn: number;
      if (order === 0 && this.pcpOn) {
        pfn = this.pcpHead[z]!;
        if (pfn === NIL) pfn = this.refillPcp(z);
        if (pfn === NIL) continue;
        const after = this.next[pfn]!;
        this.pcpHead[z] = after;
        if (after === NIL) this.pcpTail[z] = NIL;
        else this.prev[after] = NIL;
        this.pcpCount[z]!--;
      } else {
        pfn = this.takeBlock(z, order);
        if (pfn === NIL) continue;
        this.addZoneFree(z, -size);
      }
      this.prepBlock(pfn, order, owner);
      this.pgalloc[z]! += size;
      if (this.poison !== 'off' || options.contents === 'zeroed')
        this.fillNewBlock(pfn, order, options.contents);
      return pfn;
    }
    return this.allocSlow(order, options);
  }

  /**
   * Give back the block of 2^order frames whose head is `pfn`, merging it with its free buddies.
   * Panics (message starting 'buddyFree:') when pfn is not the head of an allocated block of
   * exactly that order: already free, a tail frame, a reserved frame, the wrong order, a frame
   * still mapped by a page table, still holding more than its own reference (refcount > 1),
   * still on an LRU list, locked or under writeback, or out of range.
   */
  free(pfn: number, order: number): void {
    if (pfn >>> 0 !== pfn || pfn >= this.frameCount) panic(`buddyFree: frame ${pfn} out of range`);
    const f = this.flags[pfn]!;
    if (
      (f & (PG_BUDDY | PG_TAIL | PG_RESERVED | BUSY_FLAGS)) !== 0 ||
      (f & ALLOCATABLE_OWNERS) === 0 ||
      this.order[pfn] !== order ||
      this.mapcount[pfn] !== 0 ||
      this.refcount[pfn]! > 1
    ) {
      this.badFree(pfn, order);
    }
    const size = 1 << order;
    this.ownerPages[31 - Math.clz32(f & PG_OWNER_MASK)]! -= size;
    if (order > 0) this.releaseTails(pfn, order);
    this.refcount[pfn] = 0;
    this.owner[pfn] = NIL;
    this.priv[pfn] = 0;
    this.index[pfn] = 0;
    this.inuse[pfn] = 0;
    if (this.poison !== 'off') this.fillFrames(pfn, size, PAGE_POISON_FREE);
    this.pgfree += size;
    let z = this.zoneCount - 1;
    while (pfn < this.zoneStart[z]!) z--;
    if (order === 0 && this.pcpOn) {
      this.flags[pfn] = PG_PCP;
      const first = this.pcpHead[z]!;
      this.prev[pfn] = NIL;
      this.next[pfn] = first;
      if (first === NIL) this.pcpTail[z] = pfn;
      else this.prev[first] = pfn;
      this.pcpHead[z] = pfn;
      if (++this.pcpCount[z]! >= this.pcpHigh[z]!) this.drainPcpZone(z, this.pcpBatch[z]!);
      return;
    }
    this.insertMerged(z, pfn, order);
    this.addZoneFree(z, size);
  }

  /**
   * Return every page parked on the per-CPU lists to the buddy lists (Linux drain_all_pages);
   * returns the number of pages moved. Afterwards the free lists and counts describe all free
   * memory.
   */
  drainPcp(): number {
    let moved = 0;
    for (let z = 0; z < this.zoneCount; z++) moved += this.drainPcpZone(z, this.pcpCount[z]!);
    return moved;
  }

  /** Pages parked on the per-CPU lists of all zones (free, but not in the buddy lists). */
  pcpPages(): number {
    let n = 0;
    for (let z = 0; z < this.zoneCount; z++) n += this.pcpCount[z]!;
    return n;
  }

  // ---- accounting and views ----

  /** Free pages in all zones. */
  freePages(): number {
    let n = 0;
    for (let z = 0; z < this.zoneCount; z++) n += this.zoneFree[z]!;
    return n;
  }

  /** Frames currently held with owner flag `ownerFlag` (e.g. PG_PAGETABLE for PageTables). */
  pagesOwnedBy(ownerFlag: number): number {
    if ((ownerFlag & (ownerFlag - 1)) !== 0 || (ownerFlag & PG_OWNER_MASK) === 0) {
      panic(`pagesOwnedBy: 0x${ownerFlag.toString(16)} is not one owner flag`);
    }
    return this.ownerPages[31 - Math.clz32(ownerFlag)]!;
  }

  /** Managed pages over all zones (MemTotal's basis). */
  managedPages(): number {
    let n = 0;
    for (let z = 0; z < this.zoneCount; z++) n += this.zoneManaged[z]!;
    return n;
  }

  /** The index of the zone frame `pfn` belongs to. Panics on a frame outside memory. */
  zoneIndexOf(pfn: number): number {
    if (pfn >>> 0 !== pfn || pfn >= this.frameCount) panic(`zoneIndexOf: frame ${pfn} out of range`);
    let z = this.zoneCount - 1;
    while (pfn < this.zoneStart[z]!) z--;
    return z;
  }

  /** The current watermark state of zone `zoneIndex` (pollable: kswapd, direct reclaim). */
  watermarkState(zoneIndex: number): WatermarkState {
    return STATES[this.zoneState[this.checkZone(zoneIndex)]!]!;
  }

  /** A snapshot of zone `zoneIndex`. */
  zone(zoneIndex: number): ZoneView {
    const z = this.checkZone(zoneIndex);
    const span = this.zoneSpan[z]!;
    const nrFree: number[] = [];
    for (let o = 0; o < NR_PAGE_ORDERS; o++) nrFree.push(this.nrFree[z * NR_PAGE_ORDERS + o]!);
    return {
      index: z,
      name: span.name,
      startPfn: span.startPfn,
      endPfn: span.endPfn,
      spannedPages: span.endPfn - span.startPfn,
      presentPages: span.endPfn - span.startPfn,
      managedPages: this.zoneManaged[z]!,
      freePages: this.zoneFree[z]!,
      watermarks: this.marks[z]!,
      state: STATES[this.zoneState[z]!]!,
      nrFree,
      lowmemReserve: this.reserves[z]!,
      statThreshold: statThreshold(this.zoneManaged[z]!, this.pageBytes),
      pcpCount: this.pcpCount[z]!,
      pcpHigh: this.pcpHigh[z]!,
      pcpBatch: this.pcpBatch[z]!,
    };
  }

  /** All zones of the layout, populated or not, in Linux order (DMA first). */
  zones(): ZoneView[] {
    const out: ZoneView[] = [];
    for (let z = 0; z < this.zoneCount; z++) out.push(this.zone(z));
    return out;
  }

  /** The current watermark tunables. */
  watermarkTunables(): WatermarkTunables {
    return this.tunables;
  }

  /**
   * Change min_free_kbytes and/or watermark_scale_factor (a sysctl write) and recompute every
   * zone's watermarks; crossings caused by the change are reported. RangeError on bad values.
   */
  tuneWatermarks(change: Partial<WatermarkTunables>): void {
    this.tunables = checkedTunables({ ...this.tunables, ...change });
    this.setupWatermarks();
  }

  /**
   * Call `listener` on every change of a zone's watermark state, after the allocation or free
   * that caused it has completed. Listeners run synchronously in registration order and should
   * only note the event (wake kswapd); returns a function that removes the listener.
   */
  onWatermarkCrossing(listener: WatermarkListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /**
   * Give the frames of an allocated block a new owner flag (a page allocated as PG_ALLOCATED
   * becoming a page table, say). Panics unless `headPfn` heads an allocated block.
   */
  setOwnerType(headPfn: number, ownerFlag: number): void {
    if ((ownerFlag & (ownerFlag - 1)) !== 0 || (ownerFlag & ALLOCATABLE_OWNERS) === 0) {
      panic(`setOwnerType: 0x${ownerFlag.toString(16)} is not one allocatable owner flag`);
    }
    if (headPfn >>> 0 !== headPfn || headPfn >= this.frameCount)
      panic(`setOwnerType: frame ${headPfn} out of range`);
    const f = this.flags[headPfn]!;
    if ((f & PG_TAIL) !== 0 || (f & ALLOCATABLE_OWNERS) === 0) {
      panic(`setOwnerType: frame ${headPfn} is not the head of an allocated block`);
    }
    const size = 1 << this.order[headPfn]!;
    const old = f & PG_OWNER_MASK;
    for (let p = headPfn; p < headPfn + size; p++) this.flags[p] = (this.flags[p]! & ~old) | ownerFlag;
    this.ownerPages[31 - Math.clz32(old)]! -= size;
    this.ownerPages[31 - Math.clz32(ownerFlag)]! += size;
  }

  /**
   * The free lists as sorted head frame numbers: result[zone][order]. Two allocators in the
   * same state give equal snapshots (list order aside), which is what tests compare.
   */
  freeListSnapshot(): number[][][] {
    const out: number[][][] = [];
    for (let z = 0; z < this.zoneCount; z++) {
      const perOrder: number[][] = [];
      for (let o = 0; o < NR_PAGE_ORDERS; o++) {
        const heads: number[] = [];
        for (let p = this.freeHead[z * NR_PAGE_ORDERS + o]!; p !== NIL; p = this.next[p]!) heads.push(p);
        perOrder.push(heads.sort((a, b) => a - b));
      }
      out.push(perOrder);
    }
    return out;
  }

  /**
   * Check every invariant of the allocator (O(frames)); panics with 'buddyCheck: ...' on the
   * first violation. Tests call it after every step.
   */
  checkInvariants(): void {
    const covered = new Uint8Array(this.frameCount);
    for (let z = 0; z < this.zoneCount; z++) {
      let free = 0;
      for (let o = 0; o < NR_PAGE_ORDERS; o++) free += this.checkFreeList(z, o, covered) * 2 ** o;
      if (free !== this.zoneFree[z])
        panic(`buddyCheck: zone ${z} counts ${this.zoneFree[z]} free, lists hold ${free}`);
      const expect = STATES.indexOf(watermarkStateOf(free, this.stateMarks(z)));
      if (this.zoneState[z] !== expect) panic(`buddyCheck: zone ${z} watermark state is stale`);
      this.checkPcpList(z, covered);
    }
    this.checkOwnedFrames(covered);
  }

  // ---- private: lists ----

  /** Pop a block of at least `order` from zone z's lists and split it down; NIL if none. */
  private takeBlock(z: number, order: number): number {
    const base = z * NR_PAGE_ORDERS;
    let o = order;
    while (o <= MAX_PAGE_ORDER && this.freeHead[base + o] === NIL) o++;
    if (o > MAX_PAGE_ORDER) return NIL;
    const pfn = this.freeHead[base + o]!;
    const after = this.next[pfn]!;
    this.freeHead[base + o] = after;
    if (after !== NIL) this.prev[after] = NIL;
    this.nrFree[base + o]!--;
    while (o > order) {
      o--;
      this.pushFree(base + o, pfn + (1 << o), o);
    }
    return pfn;
  }

  /** Put a free block at the head of list `slot`, marking its head frame PG_BUDDY. */
  private pushFree(slot: number, pfn: number, order: number): void {
    const first = this.freeHead[slot]!;
    this.flags[pfn] = PG_BUDDY;
    this.order[pfn] = order;
    this.prev[pfn] = NIL;
    this.next[pfn] = first;
    if (first !== NIL) this.prev[first] = pfn;
    this.freeHead[slot] = pfn;
    this.nrFree[slot]!++;
  }

  /** Take a free block out of the middle of list `slot`. */
  private unlinkFree(slot: number, pfn: number): void {
    const p = this.prev[pfn]!;
    const n = this.next[pfn]!;
    if (p === NIL) this.freeHead[slot] = n;
    else this.next[p] = n;
    if (n !== NIL) this.prev[n] = p;
    this.next[pfn] = NIL;
    this.prev[pfn] = NIL;
    this.flags[pfn] = 0;
    this.nrFree[slot]!--;
  }

  /** Merge the free block (pfn, order) with free buddies inside zone z and list the result. */
  private insertMerged(z: number, pfn: number, order: number): void {
    const base = z * NR_PAGE_ORDERS;
    const start = this.zoneStart[z]!;
    const end = this.zoneEnd[z]!;
    let p = pfn;
    let o = order;
    while (o < MAX_PAGE_ORDER) {
      const buddy = p ^ (1 << o);
      if (buddy < start || buddy + (1 << o) > end) break;
      if (this.flags[buddy] !== PG_BUDDY || this.order[buddy] !== o) break;
      this.unlinkFree(base + o, buddy);
      p &= buddy;
      o++;
    }
    if (p !== pfn) this.flags[pfn] = 0;
    this.pushFree(base + o, p, o);
  }

  /** Mark a block just taken from the free lists as owned by `owner`. */
  private prepBlock(pfn: number, order: number, owner: number): void {
    this.next[pfn] = NIL;
    this.prev[pfn] = NIL;
    this.order[pfn] = order;
    this.refcount[pfn] = 1;
    const size = 1 << order;
    this.ownerPages[31 - Math.clz32(owner)]! += size;
    if (order === 0) {
      this.flags[pfn] = owner;
      return;
    }
    this.flags[pfn] = owner | PG_HEAD;
    const tail = owner | PG_TAIL;
    for (let p = pfn + 1; p < pfn + size; p++) {
      this.flags[p] = tail;
      this.compoundHead[p] = pfn;
    }
  }

  /** Clear the tail frames of a block being freed, checking they belong to it. */
  private releaseTails(pfn: number, order: number): void {
    const end = pfn + (1 << order);
    for (let p = pfn + 1; p < end; p++) {
      if ((this.flags[p]! & PG_TAIL) === 0 || this.compoundHead[p] !== pfn) {
        panic(`buddyFree: frame ${p} inside block ${pfn} (order ${order}) is not one of its tails`);
      }
      this.flags[p] = 0;
      this.compoundHead[p] = NIL;
      this.refcount[p] = 0;
      this.owner[p] = NIL;
    }
  }

  /** The slow path of free(): name what is wrong and panic. */
  private badFree(pfn: number, order: number): never {
    const f = this.flags[pfn]!;
    if (f & PG_RESERVED) panic(`buddyFree: frame ${pfn} is reserved`);
    if (f & PG_BUDDY) panic(`buddyFree: block ${pfn} is already free (double free)`);
    if (f & PG_TAIL)
      panic(`buddyFree: frame ${pfn} is not the head of a block (its head is ${this.compoundHead[pfn]})`);
    if ((f & ALLOCATABLE_OWNERS) === 0)
      panic(`buddyFree: frame ${pfn} is not allocated (inside a free block?)`);
    if (f & PG_LRU) panic(`buddyFree: frame ${pfn} is still on an LRU list`);
    if (f & (PG_LOCKED | PG_WRITEBACK)) panic(`buddyFree: frame ${pfn} is locked or under writeback`);
    if (this.order[pfn] !== order) {
      panic(`buddyFree: block ${pfn} has order ${this.order[pfn]}, freed with order ${order}`);
    }
    if (this.mapcount[pfn] !== 0)
      panic(`buddyFree: frame ${pfn} is still mapped ${this.mapcount[pfn]} times`);
    panic(`buddyFree: frame ${pfn} still has ${this.refcount[pfn]} references`);
  }

  /** The slow path of alloc(): drain the per-CPU lists and retry once, then report a shortage. */
  private allocSlow(order: number, options: BuddyAllocOptions): number {
    if (this.pcpPages() > 0) {
      this.drainPcp();
      return this.alloc(order, options);
    }
    return this.allocFailed();
  }

  private allocFailed(): number {
    this.allocFailures++;
    return -1;
  }

  // ---- private: per-CPU page lists ----

  /** Linux zone_batchsize: ~0.1% of the zone or 1 MiB, /4, clamped to 2^n - 1, at least 1. */
  private setupPcp(batchOption: number | undefined): void {
    if (batchOption !== undefined && (!Number.isInteger(batchOption) || batchOption < 1)) {
      throw new RangeError(`BuddyAllocator: pcpBatch ${batchOption} must be a positive integer`);
    }
    for (let z = 0; z < this.zoneCount; z++) {
      let batch = batchOption;
      if (batch === undefined) {
        const quarter = Math.max(
          1,
          Math.floor(Math.min(this.zoneManaged[z]! >> 10, (KIB * KIB) / this.pageBytes) / 4),
        );
        batch = Math.max(1, 2 ** Math.floor(Math.log2(quarter + (quarter >> 1))) - 1);
      }
      this.pcpBatch[z] = batch;
      this.pcpHigh[z] = 6 * batch;
    }
  }

  /** Move up to `batch` order-0 pages from zone z's buddy lists to its pcp list; returns its head. */
  private refillPcp(z: number): number {
    const batch = this.pcpBatch[z]!;
    let taken = 0;
    while (taken < batch) {
      const pfn = this.takeBlock(z, 0);
      if (pfn === NIL) break;
      this.flags[pfn] = PG_PCP;
      this.order[pfn] = 0;
      this.next[pfn] = NIL;
      const last = this.pcpTail[z]!;
      this.prev[pfn] = last;
      if (last === NIL) this.pcpHead[z] = pfn;
      else this.next[last] = pfn;
      this.pcpTail[z] = pfn;
      taken++;
    }
    if (taken === 0) return NIL;
    this.pcpCount[z]! += taken;
    this.addZoneFree(z, -taken);
    return this.pcpHead[z]!;
  }

  /** Give the `count` oldest pages of zone z's pcp list back to the buddy lists; returns count moved. */
  private drainPcpZone(z: number, count: number): number {
    let moved = 0;
    while (moved < count) {
      const pfn = this.pcpTail[z]!;
      if (pfn === NIL) break;
      const before = this.prev[pfn]!;
      this.pcpTail[z] = before;
      if (before === NIL) this.pcpHead[z] = NIL;
      else this.next[before] = NIL;
      this.prev[pfn] = NIL;
      this.flags[pfn] = 0;
      this.insertMerged(z, pfn, 0);
      moved++;
    }
    if (moved === 0) return 0;
    this.pcpCount[z]! -= moved;
    this.addZoneFree(z, moved);
    return moved;
  }

  // ---- private: contents ----

  /** Zero or poison a block being handed out (strict mode checks the free poison first). */
  private fillNewBlock(pfn: number, order: number, contents: PageContents | undefined): void {
    const size = 1 << order;
    if (this.poison === 'strict') {
      for (let p = pfn; p < pfn + size; p++) this.checkFreePoison(p);
    }
    if (contents === 'zeroed') {
      for (let p = pfn; p < pfn + size; p++) this.memory.zeroFrameContents(p);
    } else {
      this.fillFrames(pfn, size, PAGE_POISON_ALLOC);
    }
  }

  private fillFrames(pfn: number, count: number, value: number): void {
    for (let p = pfn; p < pfn + count; p++) this.memory.fillFrame(p, value);
  }

  /** A free frame must read all PAGE_POISON_FREE, or be untouched since boot. */
  private checkFreePoison(pfn: number): void {
    if (this.memory.isFrameUntouched(pfn)) return;
    const bytes = this.memory.frameView(pfn);
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] !== PAGE_POISON_FREE) {
        panic(
          `buddyAlloc: frame ${pfn} was written after it was freed (byte ${i} is 0x${bytes[i]!.toString(16)})`,
        );
      }
    }
  }

  // ---- private: boot and watermarks ----

  /** Mark reservations, then list every other frame as maximal aligned free blocks. */
  private bootFrames(): void {
    const reservedMap = new Uint8Array(this.frameCount);
    for (const r of this.reserved) {
      if (!Number.isInteger(r.firstPfn) || !Number.isInteger(r.frames) || r.firstPfn < 0 || r.frames < 0) {
        throw new RangeError(`BuddyAllocator: bad reservation ${r.label} (${r.firstPfn}, ${r.frames})`);
      }
      if (r.firstPfn + r.frames > this.frameCount) {
        throw new RangeError(`BuddyAllocator: reservation ${r.label} runs past the last frame`);
      }
      for (let p = r.firstPfn; p < r.firstPfn + r.frames; p++) {
        if (reservedMap[p])
          throw new RangeError(`BuddyAllocator: reservation ${r.label} overlaps another at ${p}`);
        reservedMap[p] = 1;
      }
    }
    for (let p = 0; p < this.frameCount; p++) this.pages.reset(p);
    for (let z = 0; z < this.zoneCount; z++) {
      const start = this.zoneStart[z]!;
      const end = this.zoneEnd[z]!;
      let managed = 0;
      // Descending, so that every list's head ends up being its lowest block.
      let p = end;
      while (p > start) {
        if (reservedMap[p - 1]) {
          p--;
          this.flags[p] = PG_RESERVED;
          this.refcount[p] = 1;
          continue;
        }
        let runStart = p;
        while (runStart > start && !reservedMap[runStart - 1]) runStart--;
        managed += p - runStart;
        this.listRun(z, runStart, p);
        p = runStart;
      }
      this.zoneManaged[z] = managed;
      this.zoneFree[z] = managed;
    }
  }

  /** List the free run [from, to) of zone z as its canonical maximal aligned blocks. */
  private listRun(z: number, from: number, to: number): void {
    const blocks: Array<[number, number]> = [];
    let p = from;
    while (p < to) {
      let o = MAX_PAGE_ORDER;
      while (o > 0 && (p % (1 << o) !== 0 || p + (1 << o) > to)) o--;
      blocks.push([p, o]);
      p += 1 << o;
    }
    for (let i = blocks.length - 1; i >= 0; i--) {
      const [pfn, o] = blocks[i]!;
      this.pushFree(z * NR_PAGE_ORDERS + o, pfn, o);
    }
  }

  /** Each zone's name and managed pages, for zone.ts's arithmetic. */
  private zoneSizes(): ZoneSize[] {
    return this.zoneSpan.map((span, z) => ({ name: span.name, managedPages: this.zoneManaged[z]! }));
  }

  private setupWatermarks(): void {
    const sizes = this.zoneSizes();
    this.marks = zoneWatermarks(sizes, this.tunables, this.pageBytes);
    this.reserves = lowmemReserves(sizes);
    const top = this.zoneCount - 1;
    for (let z = 0; z < this.zoneCount; z++) {
      this.wmarkMin[z] = this.marks[z]!.min;
      this.reserveTop[z] = this.reserves[z]![top]!;
      const before = this.zoneState[z]!;
      this.setBand(z);
      if (this.zoneState[z] !== before && this.listeners.length > 0) this.report(z, before);
    }
  }

  /** The marks zone z's state is kept against: its watermarks plus its reserve against the top zone. */
  private stateMarks(z: number): Watermarks {
    const m = this.marks[z]!;
    const r = this.reserveTop[z]!;
    return r === 0 ? m : { min: m.min + r, low: m.low + r, high: m.high + r, promo: m.promo + r };
  }

  /** Recompute zone z's state and band from its free count. */
  private setBand(z: number): void {
    const m = this.stateMarks(z);
    const state = STATES.indexOf(watermarkStateOf(this.zoneFree[z]!, m));
    this.zoneState[z] = state;
    const bounds = [-1, m.min, m.low, m.high, INT32_MAX];
    this.bandLo[z] = bounds[state]!;
    this.bandHi[z] = bounds[state + 1]!;
  }

  /** Change zone z's free count by delta, noting a watermark crossing. */
  private addZoneFree(z: number, delta: number): void {
    const free = this.zoneFree[z]! + delta;
    this.zoneFree[z] = free;
    if (free <= this.bandLo[z]! || free > this.bandHi[z]!) this.watermarkCrossed(z);
  }

  /** Slow path: zone z's free count left its band. */
  private watermarkCrossed(z: number): void {
    const before = this.zoneState[z]!;
    this.setBand(z);
    if (this.zoneState[z] !== before) this.report(z, before);
  }

  private report(z: number, before: number): void {
    const crossing: WatermarkCrossing = {
      zoneIndex: z,
      zone: this.zoneSpan[z]!.name,
      from: STATES[before]!,
      to: STATES[this.zoneState[z]!]!,
      freePages: this.zoneFree[z]!,
    };
    for (const listener of [...this.listeners]) listener(crossing);
  }

  private checkZone(zoneIndex: number): number {
    if (zoneIndex >>> 0 !== zoneIndex || zoneIndex >= this.zoneCount)
      panic(`buddyZone: no zone ${zoneIndex}`);
    return zoneIndex;
  }

  // ---- private: invariant checks ----

  /** Walk one free list; returns its length. */
  private checkFreeList(z: number, o: number, covered: Uint8Array): number {
    const slot = z * NR_PAGE_ORDERS + o;
    const start = this.zoneStart[z]!;
    const end = this.zoneEnd[z]!;
    const size = 1 << o;
    let count = 0;
    let prev = NIL;
    for (let p = this.freeHead[slot]!; p !== NIL; p = this.next[p]!) {
      if (++count > this.frameCount) panic(`buddyCheck: free list zone ${z} order ${o} has a cycle`);
      if (p < start || p + size > end)
        panic(`buddyCheck: free block ${p} order ${o} is not inside zone ${z}`);
      if (p % size !== 0) panic(`buddyCheck: free block ${p} is not aligned to order ${o}`);
      if (this.flags[p] !== PG_BUDDY || this.order[p] !== o) {
        panic(
          `buddyCheck: free block ${p} on the order-${o} list has flags 0x${this.flags[p]!.toString(16)} order ${this.order[p]}`,
        );
      }
      if (this.prev[p] !== prev) panic(`buddyCheck: free block ${p} has a broken prev link`);
      for (let q = p; q < p + size; q++) {
        if (covered[q]) panic(`buddyCheck: frame ${q} is in two free blocks`);
        covered[q] = 1;
        if (q !== p && this.flags[q] !== 0)
          panic(`buddyCheck: frame ${q} inside free block ${p} has flags set`);
      }
      const buddy = p ^ size;
      if (o < MAX_PAGE_ORDER && buddy >= start && buddy + size <= end) {
        if (this.flags[buddy] === PG_BUDDY && this.order[buddy] === o) {
          panic(
            `buddyCheck: free buddies ${Math.min(p, buddy)} and ${Math.max(p, buddy)} of order ${o} are unmerged`,
          );
        }
      }
      prev = p;
    }
    if (count !== this.nrFree[slot])
      panic(`buddyCheck: zone ${z} order ${o} nr_free ${this.nrFree[slot]} != ${count}`);
    return count;
  }

  /** Walk zone z's per-CPU list: order-0 PG_PCP frames of the zone, counted, linked both ways. */
  private checkPcpList(z: number, covered: Uint8Array): void {
    let count = 0;
    let prev = NIL;
    for (let p = this.pcpHead[z]!; p !== NIL; p = this.next[p]!) {
      if (++count > this.frameCount) panic(`buddyCheck: pcp list of zone ${z} has a cycle`);
      if (p < this.zoneStart[z]! || p >= this.zoneEnd[z]!)
        panic(`buddyCheck: pcp frame ${p} is not in zone ${z}`);
      if (this.flags[p] !== PG_PCP || this.order[p] !== 0)
        panic(`buddyCheck: pcp frame ${p} is not a free order-0 page`);
      if (this.prev[p] !== prev) panic(`buddyCheck: pcp frame ${p} has a broken prev link`);
      if (covered[p]) panic(`buddyCheck: pcp frame ${p} is also in a free block`);
      covered[p] = 1;
      prev = p;
    }
    if (this.pcpTail[z] !== prev)
      panic(`buddyCheck: pcp tail of zone ${z} is ${this.pcpTail[z]}, list ends at ${prev}`);
    if (count !== this.pcpCount[z])
      panic(`buddyCheck: pcp count of zone ${z} is ${this.pcpCount[z]}, list holds ${count}`);
    if (this.pcpOn && count >= this.pcpHigh[z]!)
      panic(`buddyCheck: pcp list of zone ${z} is at or above high`);
  }

  /** Every frame not in a free block has exactly one owner; blocks are well formed. */
  private checkOwnedFrames(covered: Uint8Array): void {
    const counted = new Float64Array(32);
    let p = 0;
    while (p < this.frameCount) {
      if (covered[p]) {
        p++;
        continue;
      }
      const f = this.flags[p]!;
      const ownerBits = f & PG_OWNER_MASK;
      if (ownerBits === 0 || (ownerBits & (ownerBits - 1)) !== 0) {
        panic(
          `buddyCheck: frame ${p} has ${ownerBits === 0 ? 'no owner' : 'several owners'} (flags 0x${f.toString(16)})`,
        );
      }
      if (ownerBits === PG_BUDDY || ownerBits === PG_PCP)
        panic(`buddyCheck: free frame ${p} is on no free list`);
      if (f & PG_TAIL) panic(`buddyCheck: tail frame ${p} outside its head's block`);
      if (ownerBits === PG_RESERVED) {
        p++;
        continue;
      }
      const o = this.order[p]!;
      const size = 1 << o;
      if (p % size !== 0 || p + size > this.frameCount)
        panic(`buddyCheck: block ${p} of order ${o} is misaligned`);
      if (o > 0 && (f & PG_HEAD) === 0) panic(`buddyCheck: block ${p} of order ${o} lacks PG_HEAD`);
      for (let q = p + 1; q < p + size; q++) {
        if (
          (this.flags[q]! & PG_OWNER_MASK) !== ownerBits ||
          (this.flags[q]! & PG_TAIL) === 0 ||
          this.compoundHead[q] !== p
        ) {
          panic(`buddyCheck: frame ${q} is not a tail of block ${p}`);
        }
      }
      counted[31 - Math.clz32(ownerBits)]! += size;
      p += size;
    }
    for (let bit = 0; bit < 32; bit++) {
      if ((1 << bit) & (PG_BUDDY | PG_PCP | PG_RESERVED)) continue;
      if (counted[bit] !== this.ownerPages[bit]) {
        panic(
          `buddyCheck: ${this.ownerPages[bit]} pages counted for owner bit ${bit}, ${counted[bit]} found`,
        );
      }
    }
  }
}

function checkedTunables(t: WatermarkTunables): WatermarkTunables {
  if (!Number.isInteger(t.minFreeKbytes) || t.minFreeKbytes < 0) {
    throw new RangeError(`BuddyAllocator: minFreeKbytes ${t.minFreeKbytes} must be a non-negative integer`);
  }
  const wsf = t.watermarkScaleFactor;
  if (!Number.isInteger(wsf) || wsf < 1 || wsf > MAX_WATERMARK_SCALE_FACTOR) {
    throw new RangeError(
      `BuddyAllocator: watermarkScaleFactor ${wsf} outside 1..${MAX_WATERMARK_SCALE_FACTOR}`,
    );
  }
  return { minFreeKbytes: t.minFreeKbytes, watermarkScaleFactor: wsf };
}
