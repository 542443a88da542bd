/**
 * The page cache: file pages in frames, keyed by (file, page index) and shared by every
 * process that reads, writes or maps the file (Linux's mm/filemap.c and the file side of
 * mm/rmap.c, mm/truncate.c and mm/page-writeback.c).
 *
 *   file.pages.get(i) == pfn  <=>  frame pfn is PG_FILE, fileIno[pfn] == file.ino, index[pfn] == i
 *   refcount[pfn] == 1 (the cache's) + mapcount[pfn] (one per PTE) + transient holds
 *   nrPages == sum of file.pages.size;  nrDirty == frames with PG_FILE | PG_DIRTY
 *   nrWriteback == frames with PG_WRITEBACK (the disk has not finished writing them)
 *
 * Data moves between a frame and the file's host bytes at once (in submission order, so a
 * read sees every earlier write); the disk device queues the request and says when it is done,
 * and a reader waits until then (a major fault, a blocking read()).
 *
 * Dirty tracking, as Linux's write-notify: a write() sets PG_DIRTY; a shared mapping maps a
 * clean page read-only, so that its first write faults and the fault handler marks the page
 * dirty (markDirty) before making the entry writable. Writeback cleans the page and
 * write-protects every entry again (page_mkclean), so the next write is seen too. The PTE
 * dirty bits are still collected whenever the kernel looks (msync, fsync, munmap, exit,
 * reclaim, writeback), so a page made writable any other way is never lost. dirtiedAt[pfn]
 * is when the page last went from clean to dirty: the flusher writes pages older than the
 * expire interval.
 *
 * Reverse map (Linux's i_mmap): the address spaces that have mapped a file; a page's mappings
 * are found through their VMAs of that file.
 */
import type { BlockDevice } from '../hw/disk.ts';
import { panic } from '../lib/panic.ts';
import { type AddressSpace, type MmServices, putPage } from './mm.ts';
import { NIL, PG_DIRTY, PG_FILE, PG_UPTODATE, PG_WRITEBACK } from './page.ts';
import { NP_PROTNONE } from './pte.ts';
import type { MappedFile, Vma } from './vma.ts';

/** What the page cache needs of a file beyond MappedFile: its host bytes and readahead state. */
export interface CachedFile extends MappedFile {
  raPrevIndex: number;
  raWindowPages: number;
  /** Read host bytes at `pos` into `dst`; returns the count read (short at the host end). */
  readHost(pos: number, dst: Uint8Array): number;
  writeHost(pos: number, src: Uint8Array): void;
}

/** Access pattern of a read, for readahead. */
export type ReadPattern = 'sequential' | 'random';

export interface PageCacheDeps {
  /** A zeroed frame typed PG_FILE, reclaiming first when `reclaim` is 'yes'; -1 when none. */
  allocFrame(reclaim: 'yes' | 'no'): number;
  /** A page became resident: the replacement policy learns of it. */
  loaded(pfn: number): void;
  /** The file's last page left the cache: the file system may free an unused inode. */
  emptied(file: CachedFile): void;
  /** A page went from clean to dirty (the flusher may need waking). */
  dirtied(): void;
  disk: BlockDevice;
}

export interface PageCacheTunables {
  /** Readahead window on the first sequential miss, in pages. */
  readaheadInitPages: number;
  /** Largest readahead window (Linux: read_ahead_kb 128 = 32 pages of 4 KiB). */
  readaheadMaxPages: number;
}

/** Most pages one writeback request carries (1 MiB of 4 KiB pages, as a block layer's max_sectors). */
export const WRITE_RUN_PAGES = 256;

export const DEFAULT_PAGE_CACHE_TUNABLES: Readonly<PageCacheTunables> = {
  readaheadInitPages: 4,
  readaheadMaxPages: 32,
};

export class PageCache {
  private readonly services: MmServices;
  private readonly deps: PageCacheDeps;
  readonly tunables: PageCacheTunables;
  /** Inode number of the file owning each frame (NIL for none). */
  readonly fileIno: Int32Array;
  /** Time each frame's read completes (cycles): a reader waits until then. */
  readonly readyAt: Float64Array;
  /** Time each dirty frame went from clean to dirty (cycles). */
  readonly dirtiedAt: Float64Array;
  /** Files with cached pages, by inode number. */
  private readonly files = new Map<number, CachedFile>();
  /** Address spaces that have mapped each file (by inode number), in the order they did. */
  private readonly mappers = new Map<number, Set<AddressSpace>>();

  nrPages = 0;
  nrDirty = 0;
  nrWriteback = 0;
  /** Lookups that found the page, and misses that read it. */
  hits = 0;
  misses = 0;
  /** Pages read beyond the one asked for (readahead). */
  readaheadPages = 0;
  /** Pages written to their files. */
  writtenPages = 0;
  /** Out-parameters of getPage (no allocation per call). */
  lastMajor = false;
  lastReadyAt = 0;

  constructor(services: MmServices, deps: PageCacheDeps, tunables: Partial<PageCacheTunables> = {}) {
    this.services = services;
    this.deps = deps;
    this.tunables = { ...DEFAULT_PAGE_CACHE_TUNABLES, ...tunables };
    this.fileIno = new Int32Array(services.pages.count).fill(NIL);
    this.readyAt = new Float64Array(services.pages.count);
    this.dirtiedAt = new Float64Array(services.pages.count);
  }

  get pageBytes(): number {
    return this.services.fmt.pageBytes;
  }

  /** The file owning a cached frame, or undefined. */
  fileOf(pfn: number): CachedFile | undefined {
    const ino = this.fileIno[pfn]!;
    return ino === NIL ? undefined : this.files.get(ino);
  }

  // ---- reading ----

  /**
   * The frame holding page `index` of `file`, reading it (and, for a sequential pattern, a
   * readahead window after it) from the file when it is not cached. Returns -1 when no frame
   * can be had. Sets lastMajor (the page had to be read) and lastReadyAt (when its data is
   * there). The caller takes its own reference if it keeps the frame.
   */
  getPage(file: CachedFile, index: number, pattern: ReadPattern): number {
    const hit = file.pages.get(index);
    if (hit !== undefined) {
      this.hits++;
      if (index > file.raPrevIndex) file.raPrevIndex = index;
      this.lastMajor = false;
      this.lastReadyAt = this.readyAt[hit]!;
      return hit;
    }
    this.misses++;
    const pfn = this.deps.allocFrame('yes');
    if (pfn < 0) return -1;
    const run = [pfn];
    const sequential = pattern === 'sequential' && (index === file.raPrevIndex + 1 || index === 0);
    const window = sequential
      ? Math.min(
          file.raWindowPages === 0 ? this.tunables.readaheadInitPages : file.raWindowPages * 2,
          this.tunables.readaheadMaxPages,
        )
      : 0;
    file.raWindowPages = window;
    const lastIndex = Math.ceil(file.sizeBytes / this.pageBytes) - 1;
    for (let i = index + 1; i < index + window && i <= lastIndex && !file.pages.has(i); i++) {
      const extra = this.deps.allocFrame('no');
      if (extra < 0) break;
      run.push(extra);
    }
    const done = this.readRun(file, index, run);
    this.readaheadPages += run.length - 1;
    file.raPrevIndex = index + run.length - 1;
    this.lastMajor = true;
    this.lastReadyAt = done;
    return pfn;
  }

  /** Read pages index.. into the frames of `run` with one disk request; returns its completion. */
  private readRun(file: CachedFile, index: number, run: number[]): number {
    const page = this.pageBytes;
    const { mem, pages, events } = this.services;
    const done = this.deps.disk.queue('read', run.length * page);
    for (let k = 0; k < run.length; k++) {
      const pfn = run[k]!;
      const pos = (index + k) * page;
      const inFile = Math.max(0, Math.min(page, file.sizeBytes - pos));
      if (inFile > 0) file.readHost(pos, mem.frameViewForWrite(pfn).subarray(0, inFile));
      this.insert(file, index + k, pfn);
      pages.set(pfn, PG_UPTODATE);
      this.readyAt[pfn] = done;
      this.deps.loaded(pfn);
    }
    events.pgpgin += (run.length * page) / 1024;
    return done;
  }

  /**
   * A page for write(): the cached one, or a new one. A page the write covers whole, or that
   * lies wholly at or past the end of the file, needs no read. -1 when no frame can be had.
   */
  getPageForWrite(file: CachedFile, index: number, covers: 'whole' | 'part'): number {
    const cached = file.pages.get(index);
    if (cached !== undefined) {
      this.hits++;
      this.lastMajor = false;
      this.lastReadyAt = this.readyAt[cached]!;
      return cached;
    }
    if (covers === 'part' && index * this.pageBytes < file.sizeBytes)
      return this.getPage(file, index, 'random');
    const pfn = this.deps.allocFrame('yes');
    if (pfn < 0) return -1;
    this.insert(file, index, pfn);
    this.services.pages.set(pfn, PG_UPTODATE);
    this.readyAt[pfn] = 0;
    this.deps.loaded(pfn);
    this.lastMajor = false;
    this.lastReadyAt = 0;
    return pfn;
  }

  private insert(file: CachedFile, index: number, pfn: number): void {
    const { pages } = this.services;
    if (file.pages.has(index)) panic(`pageCacheInsert: page ${index} of inode ${file.ino} is cached twice`);
    file.pages.set(index, pfn);
    if (!this.files.has(file.ino)) this.files.set(file.ino, file);
    this.fileIno[pfn] = file.ino;
    pages.index[pfn] = index;
    pages.owner[pfn] = file.ino;
    this.nrPages++;
  }

  // ---- dirty pages and writeback ----

  /** Mark a cached page dirty (a write() into it, a write-notify fault, a dirty PTE found). */
  markDirty(pfn: number): void {
    const pages = this.services.pages;
    if (pages.has(pfn, PG_DIRTY)) return;
    pages.set(pfn, PG_DIRTY);
    this.nrDirty++;
    this.dirtiedAt[pfn] = this.services.mmu.clock.now;
    this.services.events.nr_dirtied++;
    this.deps.dirtied();
  }

  /**
   * Linux's page_mkclean: every present entry mapping `pfn` loses its dirty bit (which moves to
   * the page) and its write permission (so the next write faults and dirties the page again).
   */
  cleanMappings(pfn: number): void {
    const { pte, mmu } = this.services;
    this.forEachMapping(pfn, (mm, pa, va) => {
      const lo = mm.tables.read(pa);
      const hi = mm.tables.hi;
      if (!pte.isPresent(lo, hi)) return;
      const dirty = pte.isDirty(lo, hi);
      if (!dirty && !pte.isWritable(lo, hi)) return;
      if (dirty) this.markDirty(pfn);
      const clean = pte.withDirty(lo, hi, false);
      mm.tables.write(pa, pte.withWritable(clean, pte.hi, false), pte.hi);
      mmu.invalidatePage(va, mm.asid);
    });
  }

  /**
   * Write a dirty page to its file: the bytes inside the file's size (the tail past the end
   * never reaches the file). Returns when the disk finishes; the page is clean at once and under
   * writeback until then.
   */
  writePage(pfn: number): number {
    this.cleanMappings(pfn);
    return this.writeRun([pfn]);
  }

  /**
   * Write back the dirty pages among `pfns` (cached pages of any files), as Linux's writepages
   * does: by file and index, each run of consecutive pages of a file in one disk request of at
   * most WRITE_RUN_PAGES. Returns when the last request completes (now, when none was dirty).
   */
  writePages(pfns: readonly number[]): number {
    const pages = this.services.pages;
    const byFile = [...pfns].sort(
      (a, b) => this.fileIno[a]! - this.fileIno[b]! || pages.index[a]! - pages.index[b]!,
    );
    let done = this.services.mmu.clock.now;
    let run: number[] = [];
    for (const pfn of byFile) {
      this.cleanMappings(pfn);
      if (!pages.has(pfn, PG_DIRTY)) continue;
      const last = run.at(-1);
      const follows =
        last !== undefined &&
        this.fileIno[last] === this.fileIno[pfn] &&
        pages.index[last]! + 1 === pages.index[pfn] &&
        run.length < WRITE_RUN_PAGES;
      if (!follows && run.length > 0) {
        done = Math.max(done, this.writeRun(run));
        run = [];
      }
      run.push(pfn);
    }
    if (run.length > 0) done = Math.max(done, this.writeRun(run));
    return done;
  }

  /** Write consecutive dirty pages of one file (mappings already clean) with one disk request. */
  private writeRun(run: readonly number[]): number {
    const { pages, mem, events } = this.services;
    const page = this.pageBytes;
    for (const pfn of run) {
      const file = this.fileOf(pfn);
      if (file === undefined) panic(`writePage: frame ${pfn} is not in the page cache`);
      const pos = pages.index[pfn]! * page;
      const bytes = Math.max(0, Math.min(page, file.sizeBytes - pos));
      if (bytes > 0) file.writeHost(pos, mem.frameView(pfn).subarray(0, bytes));
      if (pages.has(pfn, PG_DIRTY)) {
        pages.clear(pfn, PG_DIRTY);
        this.nrDirty--;
      }
      if (!pages.has(pfn, PG_WRITEBACK)) {
        pages.set(pfn, PG_WRITEBACK);
        this.nrWriteback++;
      }
      this.writtenPages++;
      events.pgpgout += page / 1024;
    }
    const done = run.slice();
    return this.deps.disk.queue('write', run.length * page, () => {
      events.nr_written += done.length; // counted when the write ends, as Linux's end of writeback
      // A frame may have been freed (or reused) since; only a page still under writeback ends it.
      for (const pfn of done) {
        if (!pages.has(pfn, PG_WRITEBACK)) continue;
        pages.clear(pfn, PG_WRITEBACK);
        this.nrWriteback--;
      }
    });
  }

  /**
   * Write back every dirty page of `file` with index in [fromIndex, toIndex) (fsync, msync,
   * munmap and exit of shared mappings). Returns when the last write completes (now, when
   * nothing was dirty).
   */
  syncRange(file: CachedFile, fromIndex: number, toIndex: number): number {
    const indices = [...file.pages.keys()].filter((i) => i >= fromIndex && i < toIndex);
    return this.writePages(indices.map((i) => file.pages.get(i)!));
  }

  /**
   * The `max` oldest dirty pages (by the time they became dirty, then file and index), for the
   * flusher and throttled writers.
   */
  dirtyPages(max: number): number[] {
    const pages = this.services.pages;
    const found: number[] = [];
    for (const ino of [...this.files.keys()].sort((a, b) => a - b)) {
      const file = this.files.get(ino)!;
      for (const [, pfn] of [...file.pages.entries()].sort((a, b) => a[0] - b[0])) {
        if (pages.has(pfn, PG_DIRTY)) found.push(pfn);
      }
    }
    found.sort((a, b) => this.dirtiedAt[a]! - this.dirtiedAt[b]!); // stable: ties keep file order
    return found.slice(0, max);
  }

  /** Write back every dirty page of every file (sync, the flusher, shutdown). */
  syncAll(): number {
    let done = this.services.mmu.clock.now;
    for (const ino of [...this.files.keys()].sort((a, b) => a - b)) {
      const file = this.files.get(ino)!;
      done = Math.max(done, this.syncRange(file, 0, Number.POSITIVE_INFINITY));
    }
    return done;
  }

  // ---- reverse map ----

  /** `mm` maps `file` (mmap, fork): its mappings are searched when a page must be unmapped. */
  addMapper(file: MappedFile, mm: AddressSpace): void {
    let set = this.mappers.get(file.ino);
    if (set === undefined) {
      set = new Set();
      this.mappers.set(file.ino, set);
    }
    set.add(mm);
  }

  /** `mm` is going away: forget it everywhere. */
  removeMapper(mm: AddressSpace): void {
    for (const [ino, set] of this.mappers) {
      set.delete(mm);
      if (set.size === 0) this.mappers.delete(ino);
    }
  }

  /** Visit each PTE (in each address space) that maps frame `pfn`, present or PROT_NONE-kept. */
  forEachMapping(pfn: number, visit: (mm: AddressSpace, pa: number, va: number) => void): void {
    const file = this.fileOf(pfn);
    if (file === undefined) return;
    const set = this.mappers.get(file.ino);
    if (set === undefined) return;
    const page = this.pageBytes;
    const index = this.services.pages.index[pfn]!;
    const pte = this.services.pte;
    for (const mm of [...set]) {
      for (const v of mm.vmas.all()) {
        if (!mapsIndex(v, file, index, page)) continue;
        const va = v.start + (index - v.pgoff) * page;
        const pa = mm.tables.entryAddress(va, 'lookup');
        if (pa < 0) continue;
        const lo = mm.tables.read(pa);
        const hi = mm.tables.hi;
        const maps = pte.isPresent(lo, hi)
          ? pte.pfnOf(lo, hi) === pfn
          : !pte.isNone(lo, hi) &&
            pte.nonPresentTag(lo, hi) === NP_PROTNONE &&
            pte.nonPresentPayload(lo, hi) === pfn;
        if (maps) visit(mm, pa, va);
      }
    }
  }

  /** Is any mapping of `pfn` in an address space `accept` takes? (Reclaim scopes.) */
  mappedBy(pfn: number, accept: (mm: AddressSpace) => boolean): boolean {
    let found = false;
    this.forEachMapping(pfn, (mm) => {
      if (accept(mm)) found = true;
    });
    return found;
  }

  // ---- removal ----

  /** Remove every PTE mapping `pfn` (each becomes none; a dirty PTE dirties the page). */
  unmapPage(pfn: number): void {
    const { pte, pages, mmu } = this.services;
    const found: Array<[AddressSpace, number, number]> = [];
    this.forEachMapping(pfn, (mm, pa, va) => {
      found.push([mm, pa, va]);
    });
    for (const [mm, pa, va] of found) {
      const lo = mm.tables.read(pa);
      if (pte.isPresent(lo, mm.tables.hi) && pte.isDirty(lo, mm.tables.hi)) this.markDirty(pfn);
      mm.tables.write(pa, 0, 0);
      mmu.invalidatePage(va, mm.asid);
      pages.mapcount[pfn]!--;
      mm.countMapped(pfn, -1);
      pages.refcount[pfn]!--;
    }
  }

  /**
   * Evict a page (reclaim): unmap it everywhere, write it to its file if dirty, and free it.
   * Always succeeds (the file is its backing store); returns when its write completes (now for a
   * clean page).
   */
  evict(pfn: number): number {
    this.unmapPage(pfn);
    const done = this.services.pages.has(pfn, PG_DIRTY) ? this.writePage(pfn) : this.services.mmu.clock.now;
    this.remove(pfn);
    return done;
  }

  /** Drop a cached page that nothing maps (its data, dirty or not, is discarded). */
  private remove(pfn: number): void {
    const file = this.fileOf(pfn);
    if (file === undefined) panic(`pageCacheRemove: frame ${pfn} is not cached`);
    const pages = this.services.pages;
    if (pages.mapcount[pfn] !== 0)
      panic(`pageCacheRemove: frame ${pfn} is still mapped ${pages.mapcount[pfn]} times`);
    file.pages.delete(pages.index[pfn]!);
    this.fileIno[pfn] = NIL;
    this.nrPages--;
    if (pages.has(pfn, PG_DIRTY)) {
      pages.clear(pfn, PG_DIRTY);
      this.nrDirty--;
    }
    if (pages.has(pfn, PG_WRITEBACK)) {
      pages.clear(pfn, PG_WRITEBACK);
      this.nrWriteback--;
    }
    pages.clear(pfn, PG_UPTODATE);
    putPage(this.services, pfn);
    if (file.pages.size === 0) {
      this.files.delete(file.ino);
      this.deps.emptied(file);
    }
  }

  /**
   * Cut the file at `bytes` (truncate): every mapping of pages wholly past the end goes (also
   * private copies, as Linux's unmap_mapping_range does for truncation, so a later touch is
   * SIGBUS), those pages leave the cache, and the tail of a partial last page is zeroed.
   */
  truncate(file: CachedFile, bytes: number): void {
    const page = this.pageBytes;
    const first = Math.ceil(bytes / page);
    for (const mm of [...(this.mappers.get(file.ino) ?? [])]) {
      for (const v of [...mm.vmas.all()]) {
        if (v.backing.kind !== 'file' || v.backing.file !== file) continue;
        const vmaPages = v.length / page;
        const from = Math.max(first, v.pgoff);
        if (from >= v.pgoff + vmaPages) continue;
        mm.zapRange(v.start + (from - v.pgoff) * page, v.end);
      }
    }
    const gone = [...file.pages.entries()].filter(([i]) => i >= first).sort((a, b) => a[0] - b[0]);
    for (const [, pfn] of gone) {
      this.unmapPage(pfn);
      this.remove(pfn);
    }
    const tail = bytes % page;
    const partial = file.pages.get(Math.floor(bytes / page));
    if (tail !== 0 && partial !== undefined) this.services.mem.frameViewForWrite(partial).fill(0, tail);
  }

  /** Drop every clean, unmapped cached page (echo 1 > /proc/sys/vm/drop_caches). */
  dropCaches(): number {
    let dropped = 0;
    const pages = this.services.pages;
    for (const ino of [...this.files.keys()].sort((a, b) => a - b)) {
      const file = this.files.get(ino)!;
      for (const [, pfn] of [...file.pages.entries()].sort((a, b) => a[0] - b[0])) {
        if (pages.mapcount[pfn] !== 0 || pages.has(pfn, PG_DIRTY)) continue;
        this.remove(pfn);
        dropped++;
      }
    }
    return dropped;
  }

  /** Check the cache against the frame table (see the equations at the top). */
  checkInvariants(): void {
    const pages = this.services.pages;
    let n = 0;
    let dirty = 0;
    for (const [ino, file] of this.files) {
      if (file.ino !== ino) panic(`pageCacheCheck: file ${file.ino} filed under ${ino}`);
      if (file.pages.size === 0) panic(`pageCacheCheck: inode ${ino} kept with no pages`);
      for (const [index, pfn] of file.pages) {
        n++;
        if (!pages.has(pfn, PG_FILE)) panic(`pageCacheCheck: frame ${pfn} of inode ${ino} is not PG_FILE`);
        if (this.fileIno[pfn] !== ino || pages.index[pfn] !== index)
          panic(`pageCacheCheck: frame ${pfn} says inode ${this.fileIno[pfn]} page ${pages.index[pfn]}`);
        if (pages.refcount[pfn]! < 1 + pages.mapcount[pfn]!)
          panic(
            `pageCacheCheck: frame ${pfn} has refcount ${pages.refcount[pfn]} for mapcount ${pages.mapcount[pfn]}`,
          );
        if (pages.has(pfn, PG_DIRTY)) dirty++;
      }
    }
    if (n !== this.nrPages) panic(`pageCacheCheck: ${n} pages cached but ${this.nrPages} counted`);
    if (dirty !== this.nrDirty) panic(`pageCacheCheck: ${dirty} dirty pages but ${this.nrDirty} counted`);
    let frames = 0;
    let writeback = 0;
    for (let pfn = 0; pfn < pages.count; pfn++) {
      if (pages.has(pfn, PG_FILE)) frames++;
      if (pages.has(pfn, PG_WRITEBACK)) writeback++;
    }
    if (frames !== n) panic(`pageCacheCheck: ${frames} PG_FILE frames but ${n} cached pages`);
    if (writeback !== this.nrWriteback)
      panic(`pageCacheCheck: ${writeback} pages under writeback but ${this.nrWriteback} counted`);
  }
}

/** Does VMA `v` map page `index` of `file`? */
function mapsIndex(v: Vma, file: MappedFile, index: number, page: number): boolean {
  if (v.backing.kind !== 'file' || v.backing.file !== file) return false;
  return index >= v.pgoff && index < v.pgoff + v.length / page;
}
