/**
 * Lab 4 reference solution: a semispace copying collector (Cheney, 1970).
 *
 * The heap is one semispace mapped from the kernel; objects are bump-allocated in it. When it
 * is full, a collection maps a fresh to-space, copies every object reachable from the roots
 * into it breadth-first (Cheney's scan pointer: the to-space between `scan` and `free` is the
 * queue, so no mark stack is needed), leaves a forwarding address in each old copy, and unmaps
 * the old space. Only live data is touched, and the whole old space goes back to the kernel.
 *
 *   to-space:  [ scanned objects | copied, not yet scanned | free ... ]
 *              base            scan                      free       limit
 *
 *   invariant (outside a collection): base <= free <= limit, and [base, free) is tiled by
 *   objects, back to back, with no forwarding bit set.
 *
 * The to-space is as large as the from-space, so it always holds everything live; when the
 * survivors fill more than half of it, the next space is twice as large (and it shrinks by
 * half when they fill less than an eighth), so collections stay proportional to allocation.
 */
import type { CollectionKind, Collector, CollectorEnv } from '../../gc/collector.ts';
import {
  FIELD_BYTES,
  GC_FORWARDED,
  H_AUX,
  H_GC,
  HEADER_BYTES,
  objectBytes,
  sizeOf,
  writeHeader,
} from '../../gc/object.ts';

/** The first semispace, bytes (grows and shrinks by powers of two from here). */
const INITIAL_SPACE_BYTES = 256 << 10;
const MIN_SPACE_BYTES = 64 << 10;

export default class SemispaceCollector implements Collector {
  readonly name = 'semispace';
  readonly moving = true;
  private readonly env: CollectorEnv;
  private base = 0;
  private limit = 0;
  private free = 0;
  /** Bytes of the current space, and of the to-space the next collection maps. */
  private spaceBytes = 0;
  private nextSpaceBytes = INITIAL_SPACE_BYTES;

  constructor(env: CollectorEnv) {
    this.env = env;
    this.mapSpace(INITIAL_SPACE_BYTES);
  }

  allocate(nptrs: number, dataBytes: number, type: number): number {
    const size = objectBytes(nptrs, dataBytes);
    if (this.free + size > this.limit && !this.makeRoom(size)) return 0;
    const obj = this.free;
    this.free += size;
    writeHeader(this.env.cpu, obj, nptrs, type, dataBytes);
    this.env.cpu.fillBytes(obj + HEADER_BYTES, size - HEADER_BYTES, 0);
    const r = this.env.stats.report;
    r.objectsAllocated++;
    r.bytesAllocated += size;
    return obj;
  }

  writeField(obj: number, i: number, ref: number): void {
    this.env.cpu.store64(obj + HEADER_BYTES + FIELD_BYTES * i, ref);
  }

  collect(_kind: CollectionKind): void {
    this.copyCollect(this.nextSpaceBytes);
  }

  isObject(addr: number): boolean {
    if (addr < this.base || addr >= this.free) return false;
    for (let obj = this.base; obj < this.free; obj += sizeOf(this.env.cpu, obj))
      if (obj === addr) return true;
    return false;
  }

  forEachObject(fn: (obj: number) => void): void {
    for (let obj = this.base; obj < this.free; obj += sizeOf(this.env.cpu, obj)) fn(obj);
  }

  destroy(): void {
    if (this.base !== 0) this.env.libc.munmap(this.base, this.spaceBytes);
    this.base = this.limit = this.free = 0;
    this.env.stats.report.heapBytes = 0;
  }

  checkInvariants(): void {
    const cpu = this.env.cpu;
    if (!(this.base <= this.free && this.free <= this.limit))
      throw new Error('semispace: free outside the space');
    let obj = this.base;
    while (obj < this.free) {
      if ((cpu.load8(obj + H_GC) & GC_FORWARDED) !== 0)
        throw new Error(`semispace: 0x${obj.toString(16)} carries a forwarding bit`);
      obj += sizeOf(cpu, obj);
    }
    if (obj !== this.free) throw new Error('semispace: the objects do not end at free');
  }

  /** Collect, then grow the space if `size` still does not fit. False when nothing helps. */
  private makeRoom(size: number): boolean {
    if (this.copyCollect(this.nextSpaceBytes) && this.free + size <= this.limit) return true;
    let bytes = this.nextSpaceBytes;
    while (bytes < this.free - this.base + size) bytes *= 2;
    const max = this.env.tunables.maxHeapBytes;
    if (max > 0 && bytes > max) return false;
    return this.copyCollect(bytes) && this.free + size <= this.limit;
  }

  /** Copy the live objects into a new space of `bytes` (resized by occupancy). False when it cannot be mapped. */
  private copyCollect(bytes: number): boolean {
    const { cpu, roots, stats, libc } = this.env;
    stats.begin('full');
    const fromBase = this.base;
    const fromBytes = this.spaceBytes;
    const usedBefore = this.free - this.base;
    if (!this.mapSpace(bytes)) {
      stats.end();
      return false;
    }
    // From here the from-space is [fromBase, fromBase + fromBytes), the to-space the current one.
    let copied = 0;
    for (let i = 0, n = roots.slotCount(); i < n; i++) {
      const va = roots.slotAddress(i);
      const ref = cpu.load64(va);
      if (ref !== 0) cpu.store64(va, this.forward(ref));
    }
    for (let scan = this.base; scan < this.free; ) {
      const nptrs = cpu.load16(scan);
      for (let f = 0; f < nptrs; f++) {
        const va = scan + HEADER_BYTES + FIELD_BYTES * f;
        const ref = cpu.load64(va);
        if (ref !== 0) cpu.store64(va, this.forward(ref));
      }
      const size = sizeOf(cpu, scan);
      copied++;
      scan += size;
    }
    libc.munmap(fromBase, fromBytes);
    const live = this.free - this.base;
    const r = stats.report;
    r.objectsMoved += copied;
    r.bytesMoved += live;
    r.bytesMarked += live;
    r.bytesFreed += usedBefore - live;
    r.liveBytes = live;
    this.resizeForNext(live);
    stats.end();
    return true;
  }

  /** The new address of the object at `ref`, copying it on first sight. */
  private forward(ref: number): number {
    const cpu = this.env.cpu;
    if ((cpu.load8(ref + H_GC) & GC_FORWARDED) !== 0) return cpu.load64(ref + H_AUX);
    const size = sizeOf(cpu, ref);
    const to = this.free;
    this.free += size;
    for (let k = 0; k < size; k += 4) cpu.store32(to + k, cpu.load32(ref + k));
    cpu.store8(ref + H_GC, GC_FORWARDED);
    cpu.store64(ref + H_AUX, to);
    return to;
  }

  /** After a collection: double the next space when live data fill over half, halve it under an eighth. */
  private resizeForNext(live: number): void {
    let next = this.spaceBytes;
    if (live * 2 > next) next *= 2;
    else if (live * 8 < next && next > MIN_SPACE_BYTES) next /= 2;
    this.nextSpaceBytes = next;
    this.env.stats.report.nextGcBytes = this.spaceBytes;
  }

  /** Map a new space of `bytes` and make it the current one. False when the kernel refuses. */
  private mapSpace(bytes: number): boolean {
    const base = this.env.libc.mapAnonymous(bytes);
    if (base === -1) return false;
    this.base = base;
    this.free = base;
    this.limit = base + bytes;
    this.spaceBytes = bytes;
    this.env.stats.report.heapBytes = bytes;
    return true;
  }
}
