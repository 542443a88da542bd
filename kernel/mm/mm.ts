/**
 * Address spaces (Linux's mm_struct): a process's VMAs, its page tables, its layout (text,
 * data, brk heap, mmap area, stack) and its memory counters.
 *
 * User frames: a frame mapped by user page tables carries PG_ANON; its reference count is the
 * number of references held (each mapping holds one) and its map count the number of PTEs that
 * map it. Both drop as mappings go; the frame returns to the buddy allocator at zero.
 *
 *   rssAnon == number of present PTEs (and PROT_NONE-kept frames) of this space
 *   tables.tablePages == page-table frames this space owns
 *
 * Anonymous pages remember where they are mapped (Linux's anon rmap): PageFrames.index holds
 * the virtual page number, and the AnonFamily of the VMA lists every address space that may
 * map the page (the lineage created by fork).
 */
import type { Mmu } from '../hw/mmu.ts';
import type { PagingFormat } from '../hw/paging/format.ts';
import type { PhysicalMemory } from '../hw/physmem.ts';
import { panic } from '../lib/panic.ts';
import type { Prng } from '../lib/prng.ts';
import type { VmEvents } from '../observe/vmevents.ts';
import type { BuddyAllocator } from './buddy.ts';
import { type PageFrames, PG_ANON, PG_DIRTY, PG_FILE, PG_LAZYFREE, PG_PAGETABLE, PG_SHMEM } from './page.ts';
import { PageTables } from './pagetable.ts';
import { NP_PROTNONE, NP_SWAP, PTE_EXEC, PTE_READ, PTE_WRITE, type PteCodec } from './pte.ts';
import {
  type AnonFamily,
  type MappedFile,
  type SharedAnonObject,
  VM_EXEC,
  VM_GROWSDOWN,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
  type Vma,
  type VmaObjectPool,
  VmaSet,
} from './vma.ts';

/** Layout tunables, with their units in their names. */
export interface MmTunables {
  /** Pages kept free below a stack for no other mapping (Linux's stack_guard_gap: 256). */
  stackGuardGapPages: number;
  /** RLIMIT_STACK. */
  stackLimitBytes: number;
  /** Randomize the brk start, mmap base and stack top from the seed (ASLR). */
  randomizeLayout: boolean;
}

export const DEFAULT_MM_TUNABLES: Readonly<MmTunables> = {
  stackGuardGapPages: 256,
  stackLimitBytes: 8 * 1024 * 1024,
  randomizeLayout: false,
};

/** Where things go in a new address space, derived from the format's virtual-address width. */
export interface Layout {
  /** End of user space (TASK_SIZE). */
  taskSize: number;
  /** Lowest address mmap may use (mmap_min_addr). */
  mmapMinAddr: number;
  textStart: number;
  /** Highest address of the stack (exclusive). */
  stackTop: number;
  /** Top of the top-down mmap area. */
  mmapBase: number;
  /** Random offset added to the brk start (page multiple). */
  brkOffset: number;
}

/**
 * The layout for a format: x86-64/sv39/la57 use the 64-bit shape (text at 4 MiB, stack at the
 * top of the user half, mmap below the stack gap); x86-32 uses the 32-bit one (text at
 * 0x08048000, 3 GiB user space); smaller custom formats scale the same shape down.
 */
export function layoutFor(fmt: PagingFormat, tunables: MmTunables, prng: Prng | undefined): Layout {
  const page = fmt.pageBytes;
  const rand = (maxPages: number): number =>
    tunables.randomizeLayout && prng !== undefined && maxPages > 0 ? prng.below(maxPages) * page : 0;
  let taskSize: number;
  let textStart: number;
  if (fmt.vaBits >= 39) {
    taskSize = Math.min(2 ** (fmt.vaBits - 1), 2 ** 47) - page;
    textStart = 0x400000;
  } else if (fmt.vaBits === 32) {
    taskSize = 0xc0000000;
    textStart = 0x08048000;
  } else {
    taskSize = 2 ** fmt.vaBits;
    textStart = page;
  }
  const small = fmt.vaBits < 32;
  const stackTop = taskSize - rand(small ? 0 : 4096);
  const stackGap = small
    ? Math.floor(taskSize / 4 / page) * page
    : Math.max(tunables.stackLimitBytes, 128 * 1024 * 1024);
  const mmapBase =
    stackTop - Math.min(stackGap, Math.floor(taskSize / 2 / page) * page) - rand(small ? 0 : 65536);
  return {
    taskSize,
    mmapMinAddr: small ? page : 65536,
    textStart,
    stackTop,
    mmapBase,
    brkOffset: rand(small ? 0 : 8192),
  };
}

/** Services an address space needs from the kernel. */
export interface MmServices {
  mem: PhysicalMemory;
  fmt: PagingFormat;
  pte: PteCodec;
  pages: PageFrames;
  buddy: BuddyAllocator;
  mmu: Mmu;
  events: VmEvents;
  vmaPool: VmaObjectPool;
  mmPool: VmaObjectPool;
  tunables: MmTunables;
  /** Drop one reference to a swap slot held by a PTE (swap, a later subsystem); no-op without swap. */
  swapFree(slot: number): void;
  /** Take one more reference to a swap slot (fork). */
  swapDup(slot: number): void;
  /** A new anonymous lineage (rmap family) whose first member is `mm`. */
  newAnonFamily(mm: AddressSpace): AnonFamily | undefined;
  /** Add `mm` to a family (fork); false when kernel memory is short. */
  joinAnonFamily(family: AnonFamily, mm: AddressSpace): boolean;
  /** Remove `mm` from every family (its address space is going). */
  leaveAnonFamilies(mm: AddressSpace): void;
  /** vm.overcommit_memory: 0 heuristic, 1 always, 2 never beyond CommitLimit. */
  overcommitMode(): 0 | 1 | 2;
  /** Commit `pages` more (Committed_AS); false when the overcommit policy refuses. */
  commit(pages: number): boolean;
  /** Release a commitment. */
  uncommit(pages: number): void;
  /** A user frame's last reference is going: reclaim forgets it (called before it is freed). */
  pageReleased(pfn: number): void;
  /** A new shared anonymous object (one user). */
  newShmem(sizePages: number): SharedAnonObject;
  /** Drop a VMA's reference to a shared anonymous object; its pages go at the last user. */
  putShmem(obj: SharedAnonObject): void;
  /**
   * A new VMA of `mm` maps `file` (mmap, exec, fork): the VMA's reference (mapUsers) is taken
   * and the page cache's reverse map learns of `mm`.
   */
  fileMapped(file: MappedFile, mm: AddressSpace): void;
  /** A file page's PTE was dirty when it went (munmap, exit, DONTNEED): the page is dirty now. */
  fileDirtied(pfn: number): void;
  /** A VMA of a file is gone (munmap, exit): a shared one is written back; the file loses a user. */
  fileVmaGone(mm: AddressSpace, vma: Vma): void;
  /** `mm` is being destroyed: the page cache's reverse map forgets it. */
  mmGone(mm: AddressSpace): void;
}

/** The leaf options of a page mapped by a fault (allocated once). */
const ACCESSED = { dirty: false, accessed: true } as const;
const DIRTY_ACCESSED = { dirty: true, accessed: true } as const;

export class AddressSpace {
  readonly vmas: VmaSet;
  readonly tables: PageTables;
  readonly layout: Layout;
  readonly services: MmServices;
  /** This space's mm_struct object in kernel memory. */
  kobj: number;
  asid = 0;
  /** pid of the owning process (for frame ownership in the frame map). */
  ownerPid = 0;

  startCode = 0;
  endCode = 0;
  startData = 0;
  endData = 0;
  startBrk = 0;
  brk = 0;
  startStack = 0;

  rssAnon = 0;
  rssFile = 0;
  rssShmem = 0;
  swapEntries = 0;
  hiwaterRss = 0;
  hiwaterVm = 0;
  /** VMAs with a nonzero anonDelta (moved by mremap): reclaim looks them up only when some exist. */
  get movedVmas(): number {
    let n = 0;
    for (const v of this.vmas.all()) if (v.anonDelta !== 0) n++;
    return n;
  }

  private constructor(services: MmServices, tables: PageTables, kobj: number, layout: Layout) {
    this.services = services;
    this.tables = tables;
    this.kobj = kobj;
    this.layout = layout;
    this.vmas = new VmaSet(services.fmt.pageBytes, services.vmaPool);
  }

  /** A new, empty address space, or undefined when kernel memory is short (nothing leaked). */
  static create(services: MmServices, layout: Layout): AddressSpace | undefined {
    const kobj = services.mmPool.alloc();
    if (kobj < 0) return undefined;
    const { buddy, fmt, pte, mem } = services;
    const tables = PageTables.create(mem, pte, {
      allocTable: (bytes) => allocTableFrames(buddy, fmt, bytes),
      freeTable: (pfn, bytes) => buddy.free(pfn, tableOrder(fmt, bytes)),
    });
    if (tables === undefined) {
      services.mmPool.free(kobj);
      return undefined;
    }
    return new AddressSpace(services, tables, kobj, layout);
  }

  get pageBytes(): number {
    return this.services.fmt.pageBytes;
  }

  /** Pages this space has committed (its VM_ACCOUNT VMAs). */
  committedPages = 0;

  /** Commit `pages` for this space; false (nothing changed) when the overcommit policy refuses. */
  charge(pages: number): boolean {
    if (pages <= 0) return true;
    if (!this.services.commit(pages)) return false;
    this.committedPages += pages;
    return true;
  }

  /** Release `pages` of this space's commitment. */
  uncharge(pages: number): void {
    if (pages <= 0) return;
    if (pages > this.committedPages)
      panic(`uncharge: ${pages} pages but only ${this.committedPages} committed`);
    this.committedPages -= pages;
    this.services.uncommit(pages);
  }

  /** Total mapped bytes (VmSize). */
  totalVm(): number {
    let n = 0;
    for (const v of this.vmas.all()) n += v.length;
    return n;
  }

  /** Resident pages (VmRSS). */
  rss(): number {
    return this.rssAnon + this.rssFile + this.rssShmem;
  }

  /** Update the high-water marks (VmHWM, VmPeak). */
  updateHiwater(): void {
    this.updateHiwaterRss();
    const vm = this.totalVm();
    if (vm > this.hiwaterVm) this.hiwaterVm = vm;
  }

  /** The RSS high-water mark alone (a fault maps a page but changes no VMA). */
  updateHiwaterRss(): void {
    const rss = this.rss();
    if (rss > this.hiwaterRss) this.hiwaterRss = rss;
  }

  /** The `[heap]` VMA: the one holding the brk range (Linux's rule for /proc/PID/maps). */
  heapVma(): Vma | undefined {
    // Linux's rule: the VMA holding the brk range (it may be bss grown by brk).
    for (const v of this.vmas.all()) if (v.start <= this.brk && v.end >= this.startBrk) return v;
    return undefined;
  }

  // ---- page-table entries ----

  /**
   * Map `pfn` at `va` with the permissions of `vma` (read-only when `cow`), taking a map count
   * on the frame (the caller already holds the reference it hands over). Returns false when a
   * page-table frame could not be allocated.
   */
  installPage(vma: Vma, va: number, pfn: number, options: { writable: boolean; dirty: boolean }): boolean {
    const pa = this.tables.entryAddress(va, 'create');
    if (pa < 0) return false;
    const pte = this.services.pte;
    const lo = pte.leaf(pfn, pteFlagsFor(vma.flags, options.writable), {
      dirty: options.dirty,
      accessed: true,
    });
    this.tables.write(pa, lo, pte.hi);
    this.services.pages.mapcount[pfn]!++;
    this.countMapped(pfn, 1);
    this.services.mmu.invalidatePage(va, this.asid);
    return true;
  }

  /**
   * installPage for an entry the caller has just found none at `pa` (a first touch of its page): no second
   * table walk, and no TLB invalidation, since a TLB caches present translations only and the
   * entry has held none since its last invalidation. The tables under `pa` stay put meanwhile:
   * only unmapping frees tables, and a fault unmaps nothing.
   */
  installNewPage(vma: Vma, pa: number, pfn: number, writable: boolean, dirty: boolean): void {
    const pte = this.services.pte;
    const lo = pte.leaf(pfn, pteFlagsFor(vma.flags, writable), dirty ? DIRTY_ACCESSED : ACCESSED);
    this.tables.write(pa, lo, pte.hi);
    this.services.pages.mapcount[pfn]!++;
    this.countMapped(pfn, 1);
  }

  /** Make the present entry at `pa` (for `va`) writable again (COW reuse). */
  makeWritable(pa: number, va: number): void {
    const t = this.tables;
    const pte = this.services.pte;
    const lo = t.read(pa);
    const nlo = pte.withWritable(lo, t.hi, true);
    const nhi = pte.hi;
    const dlo = pte.withDirty(nlo, nhi, true);
    t.write(pa, dlo, pte.hi);
    this.services.mmu.invalidatePage(va, this.asid);
  }

  /**
   * Remove every mapping in [start, end): present frames lose a map count and a reference,
   * swap entries release their slot. Empty tables are freed. TLB entries are invalidated.
   */
  zapRange(start: number, end: number): void {
    const { pte, mmu } = this.services;
    const entries: number[] = [];
    this.tables.forEachEntry(start, end, (va, pa) => {
      entries.push(va, pa);
    });
    for (let i = 0; i < entries.length; i += 2) {
      const va = entries[i]!;
      const pa = entries[i + 1]!;
      const lo = this.tables.read(pa);
      const hi = this.tables.hi;
      if (pte.isPresent(lo, hi)) {
        const pfn = pte.pfnOf(lo, hi);
        if (pte.isDirty(lo, hi) && this.services.pages.has(pfn, PG_FILE)) this.services.fileDirtied(pfn);
        this.releaseMappedFrame(pfn);
      } else if (pte.nonPresentTag(lo, hi) === NP_PROTNONE) {
        this.releaseMappedFrame(pte.nonPresentPayload(lo, hi));
      } else if (pte.nonPresentTag(lo, hi) === NP_SWAP) {
        this.services.swapFree(pte.nonPresentPayload(lo, hi));
        this.swapEntries--;
      }
      this.tables.write(pa, 0, 0);
      mmu.invalidatePage(va, this.asid);
    }
    this.tables.pruneEmpty(start, end);
  }

  /** Drop this space's mapping of a frame: map count and reference; free it at zero. */
  releaseMappedFrame(pfn: number): void {
    const pages = this.services.pages;
    if (pages.mapcount[pfn]! <= 0) panic(`releaseMappedFrame: frame ${pfn} is not mapped`);
    pages.mapcount[pfn]!--;
    this.countMapped(pfn, -1);
    putPage(this.services, pfn);
  }

  /** Adjust the RSS counter that a mapped frame belongs to. */
  countMapped(pfn: number, delta: number): void {
    const pages = this.services.pages;
    if (pages.has(pfn, PG_SHMEM)) this.rssShmem += delta;
    else if (pages.has(pfn, PG_FILE)) this.rssFile += delta;
    else this.rssAnon += delta;
  }

  /** A frame's PTE dirty bit goes away (PROT_NONE): the frame itself is dirty now. */
  private frameDirtied(pfn: number): void {
    const pages = this.services.pages;
    if (pages.has(pfn, PG_FILE)) {
      this.services.fileDirtied(pfn);
      return;
    }
    pages.set(pfn, PG_DIRTY);
    pages.clear(pfn, PG_LAZYFREE);
  }

  /**
   * Rewrite the permissions of the entries in [start, end) for VMA flags `flags`. Private
   * writable mappings keep read-only entries read-only (the write fault decides between
   * copy and reuse); PROT_NONE keeps frames in non-present entries (a dirty entry's dirty
   * bit moves to the frame's PG_DIRTY).
   */
  changeProtection(start: number, end: number, flags: number): void {
    const { pte, mmu } = this.services;
    const t = this.tables;
    const access = flags & (VM_READ | VM_WRITE | VM_EXEC);
    const visits: number[] = [];
    t.forEachEntry(start, end, (va, pa) => {
      visits.push(va, pa);
    });
    for (let i = 0; i < visits.length; i += 2) {
      const va = visits[i]!;
      const pa = visits[i + 1]!;
      const lo = t.read(pa);
      const hi = t.hi;
      let pfn: number;
      let wasWritable = false;
      let dirty = false;
      if (pte.isPresent(lo, hi)) {
        pfn = pte.pfnOf(lo, hi);
        wasWritable = pte.isWritable(lo, hi);
        dirty = pte.isDirty(lo, hi);
      } else if (pte.nonPresentTag(lo, hi) === NP_PROTNONE) {
        pfn = pte.nonPresentPayload(lo, hi);
      } else {
        continue; // swap entries keep their slot; the swap-in fault applies the VMA's rights
      }
      if (access === 0) {
        // A PROT_NONE entry has no dirty bit: hand it to the frame, so that reclaim writes the
        // data out instead of dropping it as clean (or as MADV_FREE'd and unwritten).
        if (dirty) this.frameDirtied(pfn);
        const nlo = pte.nonPresent(NP_PROTNONE, pfn);
        t.write(pa, nlo, pte.hi);
      } else {
        const pages = this.services.pages;
        const exclusive = pages.mapcount[pfn] === 1 && pages.refcount[pfn] === 1;
        // A clean file page in a shared mapping stays read-only, so that its first write is
        // seen (write-notify); other shared pages are writable as the VMA says.
        const shared =
          (flags & VM_SHARED) !== 0 && (!pages.has(pfn, PG_FILE) || dirty || pages.has(pfn, PG_DIRTY));
        const writable = (flags & VM_WRITE) !== 0 && (shared || wasWritable || exclusive);
        const nlo = pte.leaf(pfn, pteFlagsFor(flags, writable), { dirty, accessed: true });
        t.write(pa, nlo, pte.hi);
      }
      mmu.invalidatePage(va, this.asid);
    }
  }

  /**
   * Copy this space's mappings into `child` for fork: VMAs are duplicated (anonymous lineage
   * shared), present private pages become read-only in both and shared by reference count,
   * shared mappings stay writable, swap entries take another slot reference. Returns false
   * when memory ran out; the caller then destroys the child (this space is left consistent:
   * pages already write-protected simply copy on their next write).
   */
  forkInto(child: AddressSpace): boolean {
    const { pte, pages, mmu } = this.services;
    child.startCode = this.startCode;
    child.endCode = this.endCode;
    child.startData = this.startData;
    child.endData = this.endData;
    child.startBrk = this.startBrk;
    child.brk = this.brk;
    child.startStack = this.startStack;
    if (!child.charge(this.committedPages)) return false;
    for (const v of this.vmas.all()) {
      if (v.isAnonymous() && v.anon === null) {
        const family = this.services.newAnonFamily(this);
        if (family === undefined) return false;
        v.anon = family;
      }
      const copy = child.vmas.create({
        start: v.start,
        end: v.end,
        flags: v.flags,
        backing: v.backing,
        pgoff: v.pgoff,
        anonDelta: v.anonDelta,
        anon: v.anon,
        name: v.name,
      });
      if (copy === undefined) return false;
      if (v.anon !== null && !this.services.joinAnonFamily(v.anon, child)) return false;
      if (v.backing.kind === 'shmem') v.backing.object.users++;
      if (v.backing.kind === 'file') {
        this.services.fileMapped(v.backing.file, child);
      }
      const entries: number[] = [];
      this.tables.forEachEntry(v.start, v.end, (va, pa) => {
        entries.push(va, pa);
      });
      for (let i = 0; i < entries.length; i += 2) {
        const va = entries[i]!;
        const pa = entries[i + 1]!;
        let lo = this.tables.read(pa);
        let hi = this.tables.hi;
        const cpa = child.tables.entryAddress(va, 'create');
        if (cpa < 0) return false;
        if (pte.isPresent(lo, hi)) {
          const pfn = pte.pfnOf(lo, hi);
          if (!v.isShared() && pte.isWritable(lo, hi)) {
            lo = pte.withWritable(lo, hi, false);
            hi = pte.hi;
            this.tables.write(pa, lo, hi);
            mmu.invalidatePage(va, this.asid);
          }
          pages.refcount[pfn]!++;
          pages.mapcount[pfn]!++;
          child.countMapped(pfn, 1);
        } else if (pte.nonPresentTag(lo, hi) === NP_PROTNONE) {
          const pfn = pte.nonPresentPayload(lo, hi);
          pages.refcount[pfn]!++;
          pages.mapcount[pfn]!++;
          child.countMapped(pfn, 1);
        } else if (pte.nonPresentTag(lo, hi) === NP_SWAP) {
          this.services.swapDup(pte.nonPresentPayload(lo, hi));
          child.swapEntries++;
        }
        child.tables.write(cpa, lo, hi);
      }
    }
    child.hiwaterRss = child.rss();
    child.hiwaterVm = child.totalVm();
    return true;
  }

  /** Unmap everything and free the VMAs, tables and the mm object. */
  destroy(): void {
    this.services.leaveAnonFamilies(this);
    this.uncharge(this.committedPages);
    for (const v of [...this.vmas.all()]) {
      this.zapRange(v.start, v.end);
      if (v.backing.kind === 'shmem') this.services.putShmem(v.backing.object);
      if (v.backing.kind === 'file') this.services.fileVmaGone(this, v);
      this.vmas.destroy(v);
    }
    this.services.mmGone(this);
    this.tables.destroy();
    this.services.mmPool.free(this.kobj);
    this.kobj = -1;
  }

  /** Check this space: VMAs, page tables, and that every mapping lies inside a VMA and is counted. */
  checkInvariants(): void {
    this.vmas.checkInvariants();
    const { pte, pages } = this.services;
    const tables = this.tables.countTables((pfn) => pages.has(pfn, PG_PAGETABLE));
    if (tables !== this.tables.tablePages) {
      panic(`mmCheck: ${tables} tables reachable but ${this.tables.tablePages} counted`);
    }
    let present = 0;
    let swap = 0;
    this.tables.forEachEntry(0, 2 ** this.services.fmt.vaBits, (va, _pa, lo, hi) => {
      const v = this.vmas.find(va);
      if (v === undefined) panic(`mmCheck: entry for 0x${va.toString(16)} lies outside every VMA`);
      if (pte.isPresent(lo, hi) || pte.nonPresentTag(lo, hi) === NP_PROTNONE) {
        const pfn = pte.isPresent(lo, hi) ? pte.pfnOf(lo, hi) : pte.nonPresentPayload(lo, hi);
        if (!pages.has(pfn, PG_ANON) && !pages.has(pfn, PG_FILE))
          panic(`mmCheck: 0x${va.toString(16)} maps frame ${pfn}, which is not a user page`);
        if (pages.mapcount[pfn]! < 1 || pages.refcount[pfn]! < pages.mapcount[pfn]!) {
          panic(
            `mmCheck: frame ${pfn} has refcount ${pages.refcount[pfn]} and mapcount ${pages.mapcount[pfn]}`,
          );
        }
        if (pte.isPresent(lo, hi) && pte.isWritable(lo, hi) && (v.flags & VM_WRITE) === 0) {
          panic(`mmCheck: 0x${va.toString(16)} is writable in a VMA without VM_WRITE`);
        }
        present++;
      } else if (pte.nonPresentTag(lo, hi) === NP_SWAP) {
        swap++;
      }
    });
    if (present !== this.rss()) panic(`mmCheck: ${present} frames mapped but rss counts ${this.rss()}`);
    if (swap !== this.swapEntries) panic(`mmCheck: ${swap} swap entries but ${this.swapEntries} counted`);
  }
}

/** PTE permission bits for VMA flags (write only when `writable`). */
export function pteFlagsFor(vmFlags: number, writable: boolean): number {
  let p = 0;
  if ((vmFlags & (VM_READ | VM_WRITE | VM_EXEC)) !== 0) p |= PTE_READ;
  if (writable && (vmFlags & VM_WRITE) !== 0) p |= PTE_WRITE;
  if ((vmFlags & VM_EXEC) !== 0) p |= PTE_EXEC;
  return p;
}

/** Drop one reference to a user frame; at zero it goes back to the buddy allocator. */
export function putPage(services: MmServices, pfn: number): void {
  const pages = services.pages;
  const left = --pages.refcount[pfn]!;
  if (left < 0) panic(`putPage: frame ${pfn} reference count went negative`);
  if (left === 0) {
    if (pages.mapcount[pfn] !== 0)
      panic(`putPage: frame ${pfn} freed while mapped ${pages.mapcount[pfn]} times`);
    services.pageReleased(pfn);
    services.buddy.free(pfn, 0);
    services.events.pgfree++;
  }
}

function tableOrder(fmt: PagingFormat, bytes: number): number {
  return Math.max(0, Math.ceil(Math.log2(bytes / fmt.pageBytes)));
}

function allocTableFrames(buddy: BuddyAllocator, fmt: PagingFormat, bytes: number): number {
  return buddy.alloc(tableOrder(fmt, bytes), {
    owner: PG_PAGETABLE,
    contents: 'zeroed',
    watermark: 'min-half',
  });
}

export { type AnonFamily, VM_GROWSDOWN };
