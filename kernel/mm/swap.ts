/**
 * A swap area on a block device backed by a real host file: slots of one page, a slot map of
 * reference counts, cluster allocation, and the swap cache (slot <-> frame while a swapped page
 * is also in memory).
 *
 *   slot 0 is the header and never allocated (as in Linux)
 *   count[slot] == number of swap PTEs naming the slot + (1 if the slot is in the swap cache)
 *   freeSlots == |{ slot > 0 : count[slot] == 0 }|
 *   cachePfn[slot] == pfn  <=>  frame pfn has PG_SWAPCACHE and priv[pfn] == slot
 *
 * Slots are handed out in clusters of CLUSTER_SLOTS (Linux's SWAPFILE_CLUSTER, 256): a run of
 * swap-outs lands in consecutive slots, which the disk serves well. Each cluster in use holds a
 * swap_map_chunk object from the slab, so the slot map's kernel memory is counted.
 */
import type { BlockDevice } from '../hw/disk.ts';
import type { PhysicalMemory } from '../hw/physmem.ts';
import { panic } from '../lib/panic.ts';
import type { KmemCache } from './slab.ts';

export const CLUSTER_SLOTS = 256;
/** Largest reference count of one slot (Linux's SWAP_MAP_MAX is 0x3e without continuation). */
export const SWAP_MAP_MAX = 0x7ffe;

export class SwapArea {
  readonly device: BlockDevice;
  readonly slots: number;
  readonly pageBytes: number;
  /** Reference counts per slot. */
  readonly count: Uint16Array;
  /** Frame caching each slot, or -1. */
  readonly cachePfn: Int32Array;
  /** Eviction-clock value when the slot's page was evicted (workingset shadow), or -1. */
  readonly shadow: Float64Array;
  freeSlots: number;
  /** Pages currently in the swap cache. */
  cachedPages = 0;
  private readonly mem: PhysicalMemory;
  private readonly clusterUsed: Uint16Array;
  private readonly clusterChunk: Float64Array;
  private readonly chunkCache: KmemCache;
  private cursor = 1;
  private readonly pageBuf: Uint8Array;

  constructor(options: { device: BlockDevice; mem: PhysicalMemory; chunkCache: KmemCache }) {
    this.device = options.device;
    this.mem = options.mem;
    this.pageBytes = options.mem.pageBytes;
    this.slots = Math.floor(options.device.sizeBytes / this.pageBytes);
    if (this.slots < 2) panic(`swapon: a swap area of ${options.device.sizeBytes} bytes holds no page slot`);
    this.count = new Uint16Array(this.slots);
    this.cachePfn = new Int32Array(this.slots).fill(-1);
    this.shadow = new Float64Array(this.slots).fill(-1);
    const clusters = Math.ceil(this.slots / CLUSTER_SLOTS);
    this.clusterUsed = new Uint16Array(clusters);
    this.clusterChunk = new Float64Array(clusters).fill(-1);
    this.chunkCache = options.chunkCache;
    this.freeSlots = this.slots - 1;
    this.pageBuf = new Uint8Array(this.pageBytes);
  }

  /** Slots that can hold pages (the header excluded). */
  get usableSlots(): number {
    return this.slots - 1;
  }

  /**
   * A free slot with one reference, preferring the slot after the last one handed out (so a
   * burst of swap-outs is sequential). -1 when the area is full or the slot map cannot grow.
   */
  allocSlot(): number {
    if (this.freeSlots === 0) return -1;
    for (let n = 0; n < this.slots; n++) {
      const slot = this.cursor;
      this.cursor = this.cursor + 1 >= this.slots ? 1 : this.cursor + 1;
      if (this.count[slot] !== 0) continue;
      const c = Math.floor(slot / CLUSTER_SLOTS);
      if (this.clusterUsed[c] === 0) {
        const chunk = this.chunkCache.alloc({ watermark: 'none' }); // reclaim may dip into the reserves
        if (chunk < 0) return -1;
        this.clusterChunk[c] = chunk;
      }
      this.clusterUsed[c]!++;
      this.count[slot] = 1;
      this.shadow[slot] = -1;
      this.freeSlots--;
      return slot;
    }
    return -1;
  }

  /** Take another reference to a slot (fork copying a swap PTE; a new swap PTE). */
  dup(slot: number): void {
    this.check(slot, 'swapDup');
    if (this.count[slot] === 0) panic(`swapDup: slot ${slot} is free`);
    if (this.count[slot]! >= SWAP_MAP_MAX) panic(`swapDup: slot ${slot} count overflow`);
    this.count[slot]!++;
  }

  /** Drop a reference; the slot is free at zero. */
  put(slot: number): void {
    this.check(slot, 'swapFree');
    if (this.count[slot] === 0) panic(`swapFree: slot ${slot} is already free`);
    if (--this.count[slot]! > 0) return;
    if (this.cachePfn[slot] !== -1) panic(`swapFree: slot ${slot} freed while in the swap cache`);
    const c = Math.floor(slot / CLUSTER_SLOTS);
    if (--this.clusterUsed[c]! === 0) {
      this.chunkCache.free(this.clusterChunk[c]!);
      this.clusterChunk[c] = -1;
    }
    this.freeSlots++;
  }

  /** Copy frame `pfn` to `slot` through the disk; returns the completion time. */
  writeOut(slot: number, pfn: number, onComplete?: (now: number) => void): number {
    this.check(slot, 'swapWrite');
    // submit() moves the bytes to the host file at once, so one page buffer serves every write.
    this.pageBuf.set(this.mem.frameView(pfn));
    return this.device.submit({
      op: 'write',
      offsetBytes: slot * this.pageBytes,
      buffer: this.pageBuf,
      onComplete,
    });
  }

  /** Read `slot` into frame `pfn` through the disk; returns the completion time. */
  readIn(slot: number, pfn: number, onComplete?: (now: number) => void): number {
    this.check(slot, 'swapRead');
    const done = this.device.submit({
      op: 'read',
      offsetBytes: slot * this.pageBytes,
      buffer: this.pageBuf,
      onComplete,
    });
    this.mem.frameViewForWrite(pfn).set(this.pageBuf);
    return done;
  }

  private check(slot: number, who: string): void {
    if (!Number.isInteger(slot) || slot < 1 || slot >= this.slots) panic(`${who}: slot ${slot} out of range`);
  }

  /** Check the slot map against the swap PTEs counted by the caller (`ptes[slot]`). */
  checkInvariants(ptes: ArrayLike<number>): void {
    let free = 0;
    const used = new Uint16Array(this.clusterUsed.length);
    for (let s = 1; s < this.slots; s++) {
      const want = (ptes[s] ?? 0) + (this.cachePfn[s] !== -1 ? 1 : 0);
      if (this.count[s] !== want)
        panic(`swapCheck: slot ${s} has count ${this.count[s]}, references ${want}`);
      if (this.count[s] === 0) free++;
      else used[Math.floor(s / CLUSTER_SLOTS)]!++;
    }
    if (free !== this.freeSlots) panic(`swapCheck: ${free} free slots, ${this.freeSlots} counted`);
    for (let c = 0; c < used.length; c++) {
      if (used[c] !== this.clusterUsed[c])
        panic(`swapCheck: cluster ${c} has ${used[c]} used slots, ${this.clusterUsed[c]} counted`);
    }
  }
}
