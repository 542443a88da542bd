/**
 * One address space's page tables: real tables in physical frames, in the machine's paging
 * format, built lazily. Table frames come from the buddy allocator (order 0, PG_PAGETABLE)
 * through the `allocTable` / `freeTable` functions the address space provides, so page-table
 * memory is counted in PageTables and can run out.
 *
 *   tablePages == 1 (root) + number of lower-level tables reachable from the root
 *
 * Entry addresses are physical addresses. The kernel reads and writes entries directly in
 * physical memory (it does not go through the MMU); after changing a live entry it must
 * invalidate the TLB entry for the page.
 */
import type { PagingFormat } from '../hw/paging/format.ts';
import type { PhysicalMemory } from '../hw/physmem.ts';
import { panic } from '../lib/panic.ts';
import type { PteCodec } from './pte.ts';

export interface TableFrames {
  /**
   * Zeroed frames for a table of `bytes` bytes (one frame, or a block of frames when a
   * custom format's table is larger than a page), or -1 when memory is short.
   */
  allocTable(bytes: number): number;
  freeTable(pfn: number, bytes: number): void;
}

export class PageTables {
  readonly root: number;
  tablePages = 1;
  /** High half of the entry last read by `read` (no allocation on the fault path). */
  hi = 0;
  private readonly mem: PhysicalMemory;
  private readonly fmt: PagingFormat;
  private readonly pte: PteCodec;
  private readonly frames: TableFrames;

  private constructor(mem: PhysicalMemory, pte: PteCodec, frames: TableFrames, root: number) {
    this.mem = mem;
    this.fmt = pte.fmt;
    this.pte = pte;
    this.frames = frames;
    this.root = root;
  }

  /** New, empty tables (a zeroed root), or undefined when no frame is available. */
  static create(mem: PhysicalMemory, pte: PteCodec, frames: TableFrames): PageTables | undefined {
    const root = frames.allocTable(2 ** pte.fmt.levelBits[0]! * pte.fmt.entryBytes);
    if (root < 0) return undefined;
    return new PageTables(mem, pte, frames, root);
  }

  /**
   * Physical address of the leaf entry for `va`. With 'create', missing tables are allocated
   * (returns -1 only when memory is short); with 'lookup', returns -1 when a table is missing.
   */
  entryAddress(va: number, mode: 'lookup' | 'create'): number {
    const fmt = this.fmt;
    let table = this.root;
    const last = fmt.levels - 1;
    for (let level = 0; level < last; level++) {
      const pa = table * fmt.pageBytes + this.index(va, level) * fmt.entryBytes;
      const lo = this.read(pa);
      const hi = this.hi;
      if (this.pte.isPresent(lo, hi)) {
        table = this.pte.pfnOf(lo, hi);
        continue;
      }
      if (mode === 'lookup') return -1;
      const child = this.frames.allocTable(this.tableBytes(level + 1));
      if (child < 0) return -1;
      this.tablePages++;
      const plo = this.pte.pointer(child);
      this.write(pa, plo, this.pte.hi);
      table = child;
    }
    return table * fmt.pageBytes + this.index(va, last) * fmt.entryBytes;
  }

  /** Read the entry at `pa`: returns lo, leaves hi in `this.hi`. */
  read(pa: number): number {
    const mem = this.mem;
    const pfn = pa < 2147483648 ? pa >>> mem.pageShift : Math.floor(pa / mem.pageBytes);
    const off = pa - pfn * mem.pageBytes;
    switch (this.fmt.entryBytes) {
      case 1:
        this.hi = 0;
        return mem.frameRead8(pfn, off);
      case 2:
        this.hi = 0;
        return mem.frameRead16(pfn, off);
      case 4:
        this.hi = 0;
        return mem.frameRead32(pfn, off);
      default:
        this.hi = mem.frameRead32(pfn, off + 4);
        return mem.frameRead32(pfn, off);
    }
  }

  /** Write an entry at `pa` (an entry lies inside one frame: entries are aligned to their size). */
  write(pa: number, lo: number, hi: number): void {
    const mem = this.mem;
    if (!(pa >= 0 && pa + this.fmt.entryBytes <= mem.sizeBytes)) {
      mem.write8(pa, lo); // raises the machine check
      return;
    }
    const pfn = pa < 2147483648 ? pa >>> mem.pageShift : Math.floor(pa / mem.pageBytes);
    const off = pa - pfn * mem.pageBytes;
    switch (this.fmt.entryBytes) {
      case 1:
        mem.frameWrite8(pfn, off, lo & 0xff);
        return;
      case 2:
        mem.frameWrite16(pfn, off, lo);
        return;
      case 4:
        mem.frameWrite32(pfn, off, lo);
        return;
      default:
        mem.frameWrite64(pfn, off, lo, hi);
    }
  }

  /**
   * Call `visit(va, entryPa, lo, hi)` for every leaf entry that is not none in [start, end),
   * in address order. Missing tables are skipped whole.
   */
  forEachEntry(
    start: number,
    end: number,
    visit: (va: number, pa: number, lo: number, hi: number) => void,
  ): void {
    this.walkRange(this.root, 0, 0, start, end, visit);
  }

  /**
   * Free the tables below the root whose whole span lies inside [start, end) and that hold no
   * entries any more (after an unmap). Returns the number of table frames freed.
   */
  pruneEmpty(start: number, end: number): number {
    return this.pruneRange(this.root, 0, 0, start, end);
  }

  /** Free every table frame, root included. Leaf entries must already be released. */
  destroy(): void {
    this.freeSubtree(this.root, 0);
    this.frames.freeTable(this.root, this.tableBytes(0));
    this.tablePages--;
    if (this.tablePages !== 0) panic(`pageTablesDestroy: ${this.tablePages} table pages unaccounted for`);
  }

  /** Count and check the tables: every pointer names a table frame; returns the table count. */
  countTables(isTableFrame: (pfn: number) => boolean): number {
    const count = (table: number, level: number): number => {
      if (!isTableFrame(table))
        panic(`pageTablesCheck: frame ${table} at level ${level} is not a page-table frame`);
      if (level === this.fmt.levels - 1) return 1;
      let n = 1;
      const entries = 2 ** this.fmt.levelBits[level]!;
      for (let i = 0; i < entries; i++) {
        const pa = table * this.fmt.pageBytes + i * this.fmt.entryBytes;
        const lo = this.read(pa);
        const hi = this.hi;
        if (this.pte.isPresent(lo, hi)) n += count(this.pte.pfnOf(lo, hi), level + 1);
      }
      return n;
    };
    return count(this.root, 0);
  }

  // ---- private ----

  private index(va: number, level: number): number {
    return Math.floor(va / this.fmt.levelDivisor[level]!) & this.fmt.levelMask[level]!;
  }

  /** Bytes of a table at `level`. */
  private tableBytes(level: number): number {
    return 2 ** this.fmt.levelBits[level]! * this.fmt.entryBytes;
  }

  /** Bytes of virtual address space one entry at `level` covers. */
  private span(level: number): number {
    return 2 ** this.fmt.levelShift[level]!;
  }

  private walkRange(
    table: number,
    level: number,
    base: number,
    start: number,
    end: number,
    visit: (va: number, pa: number, lo: number, hi: number) => void,
  ): void {
    const fmt = this.fmt;
    const span = this.span(level);
    const entries = 2 ** fmt.levelBits[level]!;
    const first = Math.max(0, Math.floor((start - base) / span));
    for (let i = first; i < entries; i++) {
      const va = base + i * span;
      if (va >= end) return;
      const pa = table * fmt.pageBytes + i * fmt.entryBytes;
      const lo = this.read(pa);
      const hi = this.hi;
      if (lo === 0 && hi === 0) continue;
      if (level === fmt.levels - 1) {
        visit(va, pa, lo, hi);
      } else if (this.pte.isPresent(lo, hi)) {
        this.walkRange(this.pte.pfnOf(lo, hi), level + 1, va, start, end, visit);
      }
    }
  }

  private pruneRange(table: number, level: number, base: number, start: number, end: number): number {
    const fmt = this.fmt;
    if (level === fmt.levels - 1) return 0;
    const span = this.span(level);
    const entries = 2 ** fmt.levelBits[level]!;
    let freed = 0;
    const first = Math.max(0, Math.floor((start - base) / span));
    for (let i = first; i < entries; i++) {
      const va = base + i * span;
      if (va >= end) break;
      const pa = table * fmt.pageBytes + i * fmt.entryBytes;
      const lo = this.read(pa);
      const hi = this.hi;
      if (!this.pte.isPresent(lo, hi)) continue;
      const child = this.pte.pfnOf(lo, hi);
      freed += this.pruneRange(child, level + 1, va, start, end);
      if (va >= start && va + span <= end && this.tableIsEmpty(child, level + 1)) {
        this.write(pa, 0, 0);
        this.frames.freeTable(child, this.tableBytes(level + 1));
        this.tablePages--;
        freed++;
      }
    }
    return freed;
  }

  private tableIsEmpty(table: number, level: number): boolean {
    const bytes = this.tableBytes(level);
    for (let off = 0; off < bytes; off += this.fmt.pageBytes) {
      const pfn = table + Math.floor(off / this.fmt.pageBytes);
      if (this.mem.isFrameUntouched(pfn)) continue;
      const view = this.mem.frameView(pfn);
      const n = Math.min(this.fmt.pageBytes, bytes - off);
      for (let i = 0; i < n; i++) if (view[i] !== 0) return false;
    }
    return true;
  }

  private freeSubtree(table: number, level: number): void {
    const fmt = this.fmt;
    if (level === fmt.levels - 1) return;
    const entries = 2 ** fmt.levelBits[level]!;
    for (let i = 0; i < entries; i++) {
      const pa = table * fmt.pageBytes + i * fmt.entryBytes;
      const lo = this.read(pa);
      const hi = this.hi;
      if (!this.pte.isPresent(lo, hi)) continue;
      const child = this.pte.pfnOf(lo, hi);
      this.freeSubtree(child, level + 1);
      this.write(pa, 0, 0);
      this.frames.freeTable(child, this.tableBytes(level + 1));
      this.tablePages--;
    }
  }
}
