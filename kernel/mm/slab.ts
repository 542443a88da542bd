/**
 * Slab caches in the manner of SLUB (Linux mm/slub.c): a kmem_cache hands out fixed-size
 * objects carved from slabs, which are buddy blocks of an order chosen to keep waste low.
 *
 * Objects are real: an object is a physical address inside a slab's frames, and the free list
 * of a slab lives in the free objects' own bytes in emulated memory, as SLUB keeps it. Each free
 * object holds, at `offset` from its start, an 8-byte little-endian free pointer:
 *
 *     63        53 52                                   0
 *    +------------+--------------------------------------+
 *    | tag 0x5a1  | physical address of the next free    |   all ones below the tag: end of list
 *    +------------+--------------------------------------+
 *
 * The tag catches a corrupted free list (a write after free) on allocation, and makes double
 * frees cheap to suspect; a suspected double free is confirmed by walking the slab's list.
 * `offset` is 0 (the pointer overlays the free object) unless the cache has a constructor or
 * poisoning is on: then the pointer sits in a word after the object, so that constructed state
 * and poison survive while the object is free (SLUB does the same).
 *
 * Slab metadata lives in the head frame's struct page:
 *   flags  PG_SLAB (+ PG_HEAD, with PG_SLAB|PG_TAIL tails, when order > 0)
 *   owner  the cache id           inuse  objects handed out
 *   priv   physical address of the first free object, or -1
 *   next/prev  links of the cache list the slab is on, which is a function of inuse:
 *     empty (inuse = 0) | partial (0 < inuse < objectsPerSlab) | full (inuse = objectsPerSlab)
 * Per cache:  activeObjects = Σ inuse,  totalObjects = (nrPartial + nrFull + nrEmpty) * objectsPerSlab.
 *
 * Constructors run once per object when its slab is created (Linux semantics): a freed object
 * must be back in its constructed state. Empty slabs are kept (up to minPartial, SLUB's
 * min_partial rule) to absorb the next allocations; the rest go back to the buddy allocator at
 * once, and shrink()/shrinkSlabs() give back all of them. Reclaimable caches (SLAB_RECLAIM_ACCOUNT,
 * counted in SReclaimable) may also have shrinkers that free objects under memory pressure.
 *
 * Poisoning (option `poison` of the SlabAllocator): a free object reads POISON_FREE (0x6b) with
 * POISON_END (0xa5) in its last byte, from slab creation on and after every free; 'strict'
 * checks the pattern on allocation (a write after free panics). Caches with a constructor are
 * never poisoned (it would destroy the constructed state), as in Linux.
 */
import type { PhysicalMemory } from '../hw/physmem.ts';
import { panic } from '../lib/panic.ts';
import type { BuddyAllocator, PoisonMode, WatermarkPolicy } from './buddy.ts';
import { NIL, type PageFrames, PG_HEAD, PG_SLAB, PG_TAIL } from './page.ts';
import { MAX_PAGE_ORDER, PAGE_ALLOC_COSTLY_ORDER } from './zone.ts';

/** Byte of a free, poisoned slab object (Linux POISON_FREE). */
export const POISON_FREE = 0x6b;
/** Last byte of a free, poisoned slab object (Linux POISON_END). */
export const POISON_END = 0xa5;
/** Size of the in-memory free pointer. */
export const FREE_POINTER_BYTES = 8;
/** Minimum object alignment (ARCH_SLAB_MINALIGN): the free pointer must be aligned. */
export const SLAB_MIN_ALIGN = 8;
/** Most objects one slab may hold (SLUB MAX_OBJS_PER_PAGE). */
export const MAX_OBJS_PER_PAGE = 32767;

const FP_TAG = 0x5a1;
const FP_TAG_SHIFT = 21;
const FP_ADDR_HI_MASK = 0x1fffff;
const FP_TAG_HI = (FP_TAG << FP_TAG_SHIFT) >>> 0;
const FP_END_HI = (FP_TAG_HI | FP_ADDR_HI_MASK) >>> 0;
const FP_END_LO = 0xffffffff;
const TWO_32 = 4294967296;
const TWO_31 = 2147483648;

/** SReclaimable or SUnreclaim accounting of a cache's slabs (Linux SLAB_RECLAIM_ACCOUNT). */
export type SlabReclaim = 'reclaimable' | 'unreclaimable';
/** 'zeroed' clears the object (kmem_cache_zalloc, __GFP_ZERO). */
export type ObjectContents = 'uninitialized' | 'zeroed';

export interface KmemCacheOptions {
  /** Object alignment in bytes, a power of two; at least SLAB_MIN_ALIGN (the default). */
  readonly align?: number;
  /** Runs on each object's physical address when its slab is created. */
  readonly ctor?: (objectAddr: number) => void;
  readonly reclaim?: SlabReclaim;
}

export interface KmemCacheAllocOptions {
  readonly contents?: ObjectContents;
  /** Watermark policy for a new slab's pages (buddy.ts); default 'min'. */
  readonly watermark?: WatermarkPolicy;
}

/**
 * A shrinker frees objects of a reclaimable cache under memory pressure (Linux struct shrinker):
 * count() says how many objects it could free, scan(n) frees up to n and returns how many it
 * freed. It must free through the cache, so that emptied slabs can go back to the buddy allocator.
 */
export interface SlabShrinker {
  count(): number;
  scan(nrToScan: number): number;
}

export interface SlabAllocatorOptions {
  readonly buddy: BuddyAllocator;
  /** Object poisoning; default: the buddy allocator's poison mode. */
  readonly poison?: PoisonMode;
  /** slub_min_objects; default 8 = 4 * (fls(1 CPU) + 1). */
  readonly slubMinObjects?: number;
  /** slub_max_order; default PAGE_ALLOC_COSTLY_ORDER (3). */
  readonly slubMaxOrder?: number;
}

/** Where the objects of a cache sit in a slab. */
export interface SlabGeometry {
  /** Stride between objects: the object size plus any free-pointer word, aligned. */
  readonly size: number;
  /** Byte offset of the free pointer inside each object slot. */
  readonly offset: number;
  readonly order: number;
  readonly objectsPerSlab: number;
}

/** Smallest order whose block holds `bytes` (Linux get_order). */
export function getOrder(bytes: number, pageBytes: number): number {
  let order = 0;
  while (pageBytes * 2 ** order < bytes) order++;
  return order;
}

/**
 * SLUB's calculate_order: the smallest order in [get_order(minObjects * size), maxOrder] that
 * wastes at most 1/16 of the slab (then 1/8, 1/4, 1/2); failing that, the order of one object.
 * Returns -1 when even one object does not fit in a block of MAX_PAGE_ORDER.
 */
export function calculateOrder(
  size: number,
  pageBytes: number,
  minObjectsWanted: number,
  maxOrder: number,
): number {
  const orderObjects = (order: number): number => Math.floor((pageBytes * 2 ** order) / size);
  const minObjects = Math.min(minObjectsWanted, Math.max(orderObjects(maxOrder), 1));
  const minOrder = getOrder(minObjects * size, pageBytes);
  if (orderObjects(minOrder) > MAX_OBJS_PER_PAGE) return getOrder(size * MAX_OBJS_PER_PAGE, pageBytes) - 1;
  for (let fraction = 16; fraction > 1; fraction /= 2) {
    for (let order = minOrder; order <= maxOrder; order++) {
      const slabBytes = pageBytes * 2 ** order;
      if (slabBytes % size <= slabBytes / fraction) return order;
    }
  }
  const order = getOrder(size, pageBytes);
  return order <= MAX_PAGE_ORDER ? order : -1;
}

/**
 * The layout of a cache (SLUB calculate_sizes): size rounded up to the alignment, with the free
 * pointer overlaying the object ('inside') or in a word after it ('after').
 */
export function slabGeometry(
  objectSize: number,
  options: {
    readonly align: number;
    readonly freePointer: 'inside' | 'after';
    readonly pageBytes: number;
    readonly minObjects: number;
    readonly maxOrder: number;
  },
): SlabGeometry {
  const roundUp = (n: number, a: number): number => Math.ceil(n / a) * a;
  let size = roundUp(Math.max(objectSize, FREE_POINTER_BYTES), SLAB_MIN_ALIGN);
  let offset = 0;
  if (options.freePointer === 'after') {
    offset = size;
    size += FREE_POINTER_BYTES;
  }
  size = roundUp(size, options.align);
  const order = calculateOrder(size, options.pageBytes, options.minObjects, options.maxOrder);
  const objectsPerSlab = order < 0 ? 0 : Math.floor((options.pageBytes * 2 ** order) / size);
  return { size, offset, order, objectsPerSlab };
}

/** A kmem_cache: fixed-size objects in slabs (see the module comment for its invariants). */
export class KmemCache {
  readonly id: number;
  readonly name: string;
  /** The size the creator asked for (Linux object_size). */
  readonly objectSize: number;
  /** Stride of objects in a slab (Linux size): what /proc/slabinfo shows as <objsize>. */
  readonly size: number;
  readonly align: number;
  /** Offset of the free pointer within an object slot. */
  readonly offset: number;
  readonly order: number;
  readonly objectsPerSlab: number;
  readonly reclaim: SlabReclaim;
  /** Empty slabs kept for reuse before further ones go back to the buddy allocator. */
  readonly minPartial: number;
  readonly ctor: ((objectAddr: number) => void) | undefined;
  readonly poison: PoisonMode;

  /** Objects handed out: Σ inuse over the cache's slabs. */
  activeObjects = 0;
  nrPartial = 0;
  nrFull = 0;
  nrEmpty = 0;
  /** Allocations that found no memory for a new slab. */
  allocFailures = 0;

  private partialHead = NIL;
  private fullHead = NIL;
  private emptyHead = NIL;
  private live = true;
  private readonly slabBytes: number;
  private readonly pageBytes: number;
  private readonly pageShift: number;
  private readonly memory: PhysicalMemory;
  private readonly buddy: BuddyAllocator;
  private readonly flags: Uint32Array;
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly owner: Int32Array;
  private readonly inuse: Int32Array;
  private readonly priv: Float64Array;
  private readonly compoundHead: Int32Array;
  private readonly cacheName: (id: number) => string;

  /** Created by SlabAllocator.createCache; not meant to be constructed directly. */
  constructor(init: {
    id: number;
    name: string;
    objectSize: number;
    align: number;
    geometry: SlabGeometry;
    reclaim: SlabReclaim;
    ctor: ((objectAddr: number) => void) | undefined;
    poison: PoisonMode;
    buddy: BuddyAllocator;
    cacheName: (id: number) => string;
  }) {
    this.id = init.id;
    this.name = init.name;
    this.objectSize = init.objectSize;
    this.align = init.align;
    this.size = init.geometry.size;
    this.offset = init.geometry.offset;
    this.order = init.geometry.order;
    this.objectsPerSlab = init.geometry.objectsPerSlab;
    this.reclaim = init.reclaim;
    this.ctor = init.ctor;
    this.poison = init.poison;
    this.minPartial = Math.min(10, Math.max(5, Math.floor(Math.log2(this.size) / 2)));
    this.buddy = init.buddy;
    this.memory = init.buddy.memory;
    this.pageBytes = init.buddy.pageBytes;
    this.pageShift = Math.log2(this.pageBytes);
    this.slabBytes = this.pageBytes * 2 ** this.order;
    const pages: PageFrames = init.buddy.pages;
    this.flags = pages.flags;
    this.next = pages.next;
    this.prev = pages.prev;
    this.owner = pages.owner;
    this.inuse = pages.inuse;
    this.priv = pages.priv;
    this.compoundHead = pages.compoundHead;
    this.cacheName = init.cacheName;
  }

  /** Slabs of the cache (partial, full and empty). */
  get nrSlabs(): number {
    return this.nrPartial + this.nrFull + this.nrEmpty;
  }

  /** Object slots in all slabs. */
  get totalObjects(): number {
    return this.nrSlabs * this.objectsPerSlab;
  }

  /** Frames held by the cache's slabs. */
  get pages(): number {
    return this.nrSlabs * 2 ** this.order;
  }

  /**
   * Allocate one object and return its physical address, or -1 when no slab has a free object
   * and the buddy allocator cannot give a new slab (a shortage; never throws for it). Panics if
   * the cache was destroyed or its free list is corrupt.
   */
  alloc(options?: KmemCacheAllocOptions): number {
    let slab = this.partialHead;
    if (slab === NIL) {
      slab = this.emptyHead !== NIL ? this.reuseEmptySlab() : this.grow(options);
      if (slab === NIL) return -1;
    }
    const obj = this.priv[slab]!;
    this.priv[slab] = this.takeFreePointer(obj + this.offset, obj);
    if (++this.inuse[slab]! === this.objectsPerSlab) this.moveSlab(slab, 'partial', 'full');
    this.activeObjects++;
    if (this.poison !== 'off' || options !== undefined) this.prepareObject(obj, options);
    return obj;
  }

  /**
   * Return the object at `addr` to the cache. Panics (message starting 'kmemCacheFree:') when
   * addr is not the start of an object of this cache or the object is already free.
   */
  free(addr: number): void {
    const head = this.slabOf(addr);
    const slabOffset = addr - head * this.pageBytes;
    if (slabOffset % this.size !== 0 || slabOffset >= this.objectsPerSlab * this.size) {
      panic(`kmemCacheFree: 0x${addr.toString(16)} is not the start of an object of ${this.name}`);
    }
    const fp = addr + this.offset;
    if (this.looksFree(fp)) this.checkNotFree(head, addr);
    if (this.poison !== 'off') this.poisonObject(addr);
    this.writeFreePointer(fp, this.priv[head]!);
    this.priv[head] = addr;
    const inuse = --this.inuse[head]!;
    if (inuse === this.objectsPerSlab - 1) this.moveSlab(head, 'full', 'partial');
    if (inuse === 0) this.slabEmptied(head);
    this.activeObjects--;
  }

  /** Give every empty slab back to the buddy allocator (kmem_cache_shrink); returns frames freed. */
  shrink(): number {
    let freed = 0;
    while (this.emptyHead !== NIL) freed += this.discardSlab(this.emptyHead, 'empty');
    return freed;
  }

  /** True when addr lies in one of this cache's slabs (not necessarily at an object start). */
  owns(addr: number): boolean {
    const pfn = this.frameOfChecked(addr);
    if (pfn < 0 || (this.flags[pfn]! & PG_SLAB) === 0) return false;
    const head = this.flags[pfn]! & PG_TAIL ? this.compoundHead[pfn]! : pfn;
    return this.owner[head] === this.id;
  }

  /** Whether the cache is still registered (not destroyed). */
  get isLive(): boolean {
    return this.live;
  }

  /**
   * Check the cache's invariants; panics with 'kmemCacheCheck: ...'. `seenHeads`, when given,
   * collects the head frame of every slab visited (the registry's cross-check).
   */
  checkInvariants(seenHeads?: Uint8Array): void {
    let inuseSum = 0;
    inuseSum += this.checkList(this.partialHead, 'partial', this.nrPartial, seenHeads);
    inuseSum += this.checkList(this.fullHead, 'full', this.nrFull, seenHeads);
    inuseSum += this.checkList(this.emptyHead, 'empty', this.nrEmpty, seenHeads);
    if (inuseSum !== this.activeObjects) {
      panic(
        `kmemCacheCheck: ${this.name} counts ${this.activeObjects} active objects, slabs hold ${inuseSum}`,
      );
    }
  }

  /** @internal Registry use: mark destroyed after its slabs are gone. */
  retire(): void {
    if (this.activeObjects !== 0) {
      panic(`kmemCacheDestroy: cache ${this.name} still has ${this.activeObjects} objects`);
    }
    this.shrink();
    this.live = false;
  }

  // ---- private: slabs and lists ----

  /** Allocate and format a new slab; it goes on the partial list. NIL on shortage. */
  private grow(options: KmemCacheAllocOptions | undefined): number {
    if (!this.live) panic(`kmemCacheAlloc: cache ${this.name} was destroyed`);
    const watermark = options?.watermark;
    const slab = this.buddy.alloc(this.order, watermark ? { owner: PG_SLAB, watermark } : SLAB_PAGES);
    if (slab < 0) {
      this.allocFailures++;
      return NIL;
    }
    this.owner[slab] = this.id;
    this.inuse[slab] = 0;
    const base = slab * this.pageBytes;
    const n = this.objectsPerSlab;
    for (let i = 0; i < n; i++) {
      const obj = base + i * this.size;
      if (this.poison !== 'off') this.poisonObject(obj);
      this.writeFreePointer(obj + this.offset, i + 1 < n ? obj + this.size : -1);
    }
    this.priv[slab] = base;
    if (this.ctor) for (let i = 0; i < n; i++) this.ctor(base + i * this.size);
    this.pushSlab(slab, 'partial');
    return slab;
  }

  private reuseEmptySlab(): number {
    const slab = this.emptyHead;
    this.moveSlab(slab, 'empty', 'partial');
    return slab;
  }

  /** A slab's last object came back: keep it as empty, or give it back beyond minPartial. */
  private slabEmptied(slab: number): void {
    if (this.nrEmpty < this.minPartial) this.moveSlab(slab, 'partial', 'empty');
    else this.discardSlab(slab, 'partial');
  }

  private discardSlab(slab: number, list: SlabList): number {
    this.unlinkSlab(slab, list);
    this.owner[slab] = NIL;
    this.buddy.free(slab, this.order);
    return 2 ** this.order;
  }

  private moveSlab(slab: number, from: SlabList, to: SlabList): void {
    this.unlinkSlab(slab, from);
    this.pushSlab(slab, to);
  }

  private pushSlab(slab: number, list: SlabList): void {
    const first = list === 'partial' ? this.partialHead : list === 'full' ? this.fullHead : this.emptyHead;
    this.prev[slab] = NIL;
    this.next[slab] = first;
    if (first !== NIL) this.prev[first] = slab;
    if (list === 'partial') {
      this.partialHead = slab;
      this.nrPartial++;
    } else if (list === 'full') {
      this.fullHead = slab;
      this.nrFull++;
    } else {
      this.emptyHead = slab;
      this.nrEmpty++;
    }
  }

  private unlinkSlab(slab: number, list: SlabList): void {
    const p = this.prev[slab]!;
    const n = this.next[slab]!;
    if (n !== NIL) this.prev[n] = p;
    if (p !== NIL) this.next[p] = n;
    else if (list === 'partial') this.partialHead = n;
    else if (list === 'full') this.fullHead = n;
    else this.emptyHead = n;
    this.next[slab] = NIL;
    this.prev[slab] = NIL;
    if (list === 'partial') this.nrPartial--;
    else if (list === 'full') this.nrFull--;
    else this.nrEmpty--;
  }

  /** The head frame of the slab holding addr, after checking it is one of ours. */
  private slabOf(addr: number): number {
    const pfn = this.frameOfChecked(addr);
    if (pfn < 0)
      panic(`kmemCacheFree: 0x${Number.isFinite(addr) ? addr.toString(16) : addr} is not a physical address`);
    const f = this.flags[pfn]!;
    if ((f & PG_SLAB) === 0)
      panic(`kmemCacheFree: 0x${addr.toString(16)} is not in a slab (freeing to ${this.name})`);
    const head = f & PG_TAIL ? this.compoundHead[pfn]! : pfn;
    if (this.owner[head] !== this.id) {
      panic(
        `kmemCacheFree: object 0x${addr.toString(16)} belongs to ${this.cacheName(this.owner[head]!)}, not ${this.name}`,
      );
    }
    return head;
  }

  private frameOfChecked(addr: number): number {
    if (!Number.isInteger(addr) || addr < 0 || addr >= this.memory.sizeBytes) return -1;
    return addr < TWO_31 ? addr >>> this.pageShift : Math.floor(addr / this.pageBytes);
  }

  // ---- private: the in-memory free pointer ----

  /** The free pointer at fp (object obj); `fn` names the caller in a corruption panic. */
  private readFreePointer(fp: number, obj: number, fn: string): number {
    const pfn = fp < TWO_31 ? fp >>> this.pageShift : Math.floor(fp / this.pageBytes);
    const off = fp - pfn * this.pageBytes;
    const lo = this.memory.frameRead32(pfn, off);
    const hi = this.memory.frameRead32(pfn, off + 4);
    if (hi >>> FP_TAG_SHIFT !== FP_TAG) {
      panic(`${fn}: free list of ${this.name} corrupt at object 0x${obj.toString(16)} (written after free?)`);
    }
    if (hi === FP_END_HI && lo === FP_END_LO) return -1;
    return (hi & FP_ADDR_HI_MASK) * TWO_32 + lo;
  }

  /** Read the free pointer of an object being handed out and wipe its tag (see looksFree). */
  private takeFreePointer(fp: number, obj: number): number {
    const next = this.readFreePointer(fp, obj, 'kmemCacheAlloc');
    const pfn = fp < TWO_31 ? fp >>> this.pageShift : Math.floor(fp / this.pageBytes);
    this.memory.frameWrite32(pfn, fp - pfn * this.pageBytes + 4, 0);
    return next;
  }

  private writeFreePointer(fp: number, nextObj: number): void {
    const pfn = fp < TWO_31 ? fp >>> this.pageShift : Math.floor(fp / this.pageBytes);
    const off = fp - pfn * this.pageBytes;
    if (nextObj < 0) {
      this.memory.frameWrite32(pfn, off, FP_END_LO);
      this.memory.frameWrite32(pfn, off + 4, FP_END_HI);
      return;
    }
    this.memory.frameWrite32(pfn, off, nextObj >>> 0);
    this.memory.frameWrite32(pfn, off + 4, (FP_TAG_HI | Math.floor(nextObj / TWO_32)) >>> 0);
  }

  private looksFree(fp: number): boolean {
    const pfn = fp < TWO_31 ? fp >>> this.pageShift : Math.floor(fp / this.pageBytes);
    return this.memory.frameRead32(pfn, fp - pfn * this.pageBytes + 4) >>> FP_TAG_SHIFT === FP_TAG;
  }

  /** Slow path of free(): the pointer slot looks like a free pointer; panic if addr is free. */
  private checkNotFree(head: number, addr: number): void {
    let steps = 0;
    for (let p = this.priv[head]!; p !== -1; p = this.readFreePointer(p + this.offset, p, 'kmemCacheFree')) {
      if (p === addr) panic(`kmemCacheFree: double free of 0x${addr.toString(16)} in ${this.name}`);
      if (++steps > this.objectsPerSlab) panic(`kmemCacheFree: free list of ${this.name} has a cycle`);
    }
  }

  // ---- private: contents ----

  private prepareObject(obj: number, options: KmemCacheAllocOptions | undefined): void {
    if (this.poison === 'strict') this.checkPoison(obj, 'kmemCacheAlloc');
    if (options?.contents === 'zeroed') this.fillBytes(obj, this.objectSize, 0);
  }

  private poisonObject(obj: number): void {
    if (this.ctor) return;
    this.fillBytes(obj, this.objectSize - 1, POISON_FREE);
    this.fillBytes(obj + this.objectSize - 1, 1, POISON_END);
  }

  private checkPoison(obj: number, fn: string): void {
    if (this.ctor) return;
    for (let i = 0; i < this.objectSize; i++) {
      const want = i === this.objectSize - 1 ? POISON_END : POISON_FREE;
      const a = obj + i;
      const pfn = Math.floor(a / this.pageBytes);
      const got = this.memory.frameRead8(pfn, a - pfn * this.pageBytes);
      if (got !== want) {
        panic(
          `${fn}: object 0x${obj.toString(16)} of ${this.name} was written after free (byte ${i} is 0x${got.toString(16)})`,
        );
      }
    }
  }

  /** Fill `length` bytes at physical address `addr` (which may cross frames) with `value`. */
  private fillBytes(addr: number, length: number, value: number): void {
    let done = 0;
    while (done < length) {
      const a = addr + done;
      const pfn = Math.floor(a / this.pageBytes);
      const off = a - pfn * this.pageBytes;
      const n = Math.min(length - done, this.pageBytes - off);
      this.memory.frameViewForWrite(pfn).fill(value, off, off + n);
      done += n;
    }
  }

  // ---- private: invariant checks ----

  /** Walk one slab list; returns Σ inuse over it. */
  private checkList(
    first: number,
    list: SlabList,
    expected: number,
    seenHeads: Uint8Array | undefined,
  ): number {
    let count = 0;
    let inuseSum = 0;
    let prev = NIL;
    for (let slab = first; slab !== NIL; slab = this.next[slab]!) {
      if (++count > this.buddy.frameCount) panic(`kmemCacheCheck: ${list} list of ${this.name} has a cycle`);
      if (this.prev[slab] !== prev)
        panic(`kmemCacheCheck: slab ${slab} of ${this.name} has a broken prev link`);
      const wantFlags = this.order > 0 ? PG_SLAB | PG_HEAD : PG_SLAB;
      if ((this.flags[slab]! & (PG_SLAB | PG_HEAD | PG_TAIL)) !== wantFlags || this.owner[slab] !== this.id) {
        panic(`kmemCacheCheck: slab ${slab} on the ${list} list of ${this.name} is not a slab head of it`);
      }
      if (this.buddy.pages.order[slab] !== this.order)
        panic(`kmemCacheCheck: slab ${slab} of ${this.name} has the wrong order`);
      const inuse = this.inuse[slab]!;
      const listOk =
        list === 'empty'
          ? inuse === 0
          : list === 'full'
            ? inuse === this.objectsPerSlab
            : inuse > 0 && inuse < this.objectsPerSlab;
      if (!listOk)
        panic(
          `kmemCacheCheck: slab ${slab} of ${this.name} with ${inuse} objects in use is on the ${list} list`,
        );
      this.checkFreelist(slab, inuse);
      if (seenHeads) {
        if (seenHeads[slab]) panic(`kmemCacheCheck: slab ${slab} is on two lists`);
        seenHeads[slab] = 1;
      }
      inuseSum += inuse;
      prev = slab;
    }
    if (count !== expected)
      panic(`kmemCacheCheck: ${this.name} counts ${expected} ${list} slabs, list holds ${count}`);
    return inuseSum;
  }

  /** The in-memory free list: objects - inuse distinct object starts inside the slab, no cycle. */
  private checkFreelist(slab: number, inuse: number): void {
    const base = slab * this.pageBytes;
    const seen = new Uint8Array(this.objectsPerSlab);
    let count = 0;
    for (let p = this.priv[slab]!; p !== -1; p = this.readFreePointer(p + this.offset, p, 'kmemCacheCheck')) {
      const rel = p - base;
      if (
        rel < 0 ||
        rel >= this.slabBytes ||
        rel % this.size !== 0 ||
        rel / this.size >= this.objectsPerSlab
      ) {
        panic(
          `kmemCacheCheck: free pointer 0x${p.toString(16)} in slab ${slab} of ${this.name} is not an object start`,
        );
      }
      if (seen[rel / this.size])
        panic(`kmemCacheCheck: free list of slab ${slab} of ${this.name} has a cycle`);
      seen[rel / this.size] = 1;
      if (this.poison !== 'off') this.checkPoison(p, 'kmemCacheCheck');
      count++;
    }
    if (count !== this.objectsPerSlab - inuse) {
      panic(
        `kmemCacheCheck: slab ${slab} of ${this.name} lists ${count} free objects, expected ${this.objectsPerSlab - inuse}`,
      );
    }
  }
}

type SlabList = 'partial' | 'full' | 'empty';

const SLAB_PAGES = Object.freeze({ owner: PG_SLAB });

/**
 * The slab allocator: the registry of caches (Linux's slab_caches list), their shrinkers, and
 * the accounting /proc/slabinfo and /proc/meminfo read.
 */
export class SlabAllocator {
  readonly buddy: BuddyAllocator;
  readonly poison: PoisonMode;
  readonly slubMinObjects: number;
  readonly slubMaxOrder: number;
  private readonly byId: (KmemCache | undefined)[] = [];
  private readonly shrinkers: Array<{ cache: KmemCache; shrinker: SlabShrinker }> = [];

  constructor(options: SlabAllocatorOptions) {
    this.buddy = options.buddy;
    this.poison = options.poison ?? options.buddy.poison;
    this.slubMinObjects = options.slubMinObjects ?? 8;
    this.slubMaxOrder = options.slubMaxOrder ?? PAGE_ALLOC_COSTLY_ORDER;
    if (!Number.isInteger(this.slubMinObjects) || this.slubMinObjects < 1) {
      throw new RangeError(`SlabAllocator: slubMinObjects ${this.slubMinObjects} must be a positive integer`);
    }
    if (!Number.isInteger(this.slubMaxOrder) || this.slubMaxOrder < 0 || this.slubMaxOrder > MAX_PAGE_ORDER) {
      throw new RangeError(`SlabAllocator: slubMaxOrder ${this.slubMaxOrder} outside 0..${MAX_PAGE_ORDER}`);
    }
  }

  /**
   * Create a cache of `objectSize`-byte objects (kmem_cache_create). Panics ('kmemCacheCreate:')
   * on a name that is empty, has white space or is taken, on a bad size or alignment, or on an
   * object too large for a block of MAX_PAGE_ORDER.
   */
  createCache(name: string, objectSize: number, options: KmemCacheOptions = {}): KmemCache {
    if (name.length === 0 || /\s/.test(name)) panic(`kmemCacheCreate: bad cache name '${name}'`);
    if (this.findCache(name)) panic(`kmemCacheCreate: a cache named ${name} exists`);
    if (!Number.isInteger(objectSize) || objectSize < 1)
      panic(`kmemCacheCreate: bad object size ${objectSize} for ${name}`);
    const align = Math.max(options.align ?? SLAB_MIN_ALIGN, SLAB_MIN_ALIGN);
    if (!Number.isInteger(align) || (align & (align - 1)) !== 0)
      panic(`kmemCacheCreate: bad alignment ${align} for ${name}`);
    const poison = options.ctor ? 'off' : this.poison;
    const geometry = slabGeometry(objectSize, {
      align,
      freePointer: options.ctor || poison !== 'off' ? 'after' : 'inside',
      pageBytes: this.buddy.pageBytes,
      minObjects: this.slubMinObjects,
      maxOrder: this.slubMaxOrder,
    });
    if (geometry.order < 0)
      panic(`kmemCacheCreate: objects of ${objectSize} bytes do not fit a slab (${name})`);
    const cache = new KmemCache({
      id: this.byId.length,
      name,
      objectSize,
      align,
      geometry,
      reclaim: options.reclaim ?? 'unreclaimable',
      ctor: options.ctor,
      poison,
      buddy: this.buddy,
      cacheName: (id) => this.byId[id]?.name ?? `cache #${id}`,
    });
    this.byId.push(cache);
    return cache;
  }

  /**
   * Destroy an empty cache (kmem_cache_destroy): its empty slabs go back to the buddy allocator
   * and its shrinkers are dropped. Panics ('kmemCacheDestroy:') if objects are still allocated.
   */
  destroyCache(cache: KmemCache): void {
    if (this.byId[cache.id] !== cache) panic(`kmemCacheDestroy: ${cache.name} is not a live cache`);
    cache.retire();
    this.byId[cache.id] = undefined;
    for (let i = this.shrinkers.length - 1; i >= 0; i--)
      if (this.shrinkers[i]!.cache === cache) this.shrinkers.splice(i, 1);
  }

  /** Live caches in creation order. */
  caches(): KmemCache[] {
    return this.byId.filter((c): c is KmemCache => c !== undefined);
  }

  /** The live cache named `name`, if any. */
  findCache(name: string): KmemCache | undefined {
    return this.byId.find((c) => c?.name === name);
  }

  /** The live cache with id `id` (the owner field of its slabs' head frames), if any. */
  cacheById(id: number): KmemCache | undefined {
    return this.byId[id];
  }

  /** The cache whose slab holds physical address addr, if any. */
  cacheOf(addr: number): KmemCache | undefined {
    const pages = this.buddy.pages;
    if (!Number.isInteger(addr) || addr < 0 || addr >= this.buddy.memory.sizeBytes) return undefined;
    const pfn = Math.floor(addr / this.buddy.pageBytes);
    if ((pages.flags[pfn]! & PG_SLAB) === 0) return undefined;
    const head = pages.flags[pfn]! & PG_TAIL ? pages.compoundHead[pfn]! : pfn;
    return this.byId[pages.owner[head]!];
  }

  /**
   * Register a shrinker for a reclaimable cache; returns a function that unregisters it.
   * Panics ('registerShrinker:') for an unreclaimable cache.
   */
  registerShrinker(cache: KmemCache, shrinker: SlabShrinker): () => void {
    if (cache.reclaim !== 'reclaimable') panic(`registerShrinker: cache ${cache.name} is not reclaimable`);
    const entry = { cache, shrinker };
    this.shrinkers.push(entry);
    return () => {
      const i = this.shrinkers.indexOf(entry);
      if (i >= 0) this.shrinkers.splice(i, 1);
    };
  }

  /**
   * Memory pressure (the reclaim code's hook, like Linux shrink_slab + kmem_cache_shrink): run
   * every shrinker, asking each to free up to `nrToScan` objects (default: all it counts), then
   * give every cache's empty slabs back to the buddy allocator. Returns the frames freed.
   * Deterministic: shrinkers and caches run in registration and creation order.
   */
  shrinkSlabs(options: { readonly nrToScan?: number } = {}): number {
    for (const { shrinker } of [...this.shrinkers]) {
      const count = shrinker.count();
      const want = Math.min(count, options.nrToScan ?? count);
      if (want > 0) shrinker.scan(want);
    }
    let freed = 0;
    for (const cache of this.caches()) freed += cache.shrink();
    return freed;
  }

  /** Frames held by slabs of caches with the given reclaim accounting. */
  slabPages(reclaim: SlabReclaim): number {
    let n = 0;
    for (const cache of this.caches()) if (cache.reclaim === reclaim) n += cache.pages;
    return n;
  }

  /**
   * Check every cache, and that the PG_SLAB frames in memory are exactly the caches' slabs;
   * panics with 'kmemCacheCheck:' or 'slabCheck:'.
   */
  checkInvariants(): void {
    const pages = this.buddy.pages;
    const seen = new Uint8Array(pages.count);
    let slabFrames = 0;
    for (const cache of this.caches()) {
      cache.checkInvariants(seen);
      slabFrames += cache.pages;
    }
    for (let p = 0; p < pages.count; p++) {
      const f = pages.flags[p]!;
      if ((f & PG_SLAB) !== 0 && (f & PG_TAIL) === 0 && !seen[p]) {
        panic(`slabCheck: slab frame ${p} (owner ${pages.owner[p]}) is on no cache's list`);
      }
    }
    if (slabFrames !== this.buddy.pagesOwnedBy(PG_SLAB)) {
      panic(`slabCheck: caches hold ${slabFrames} frames, ${this.buddy.pagesOwnedBy(PG_SLAB)} are PG_SLAB`);
    }
  }
}
