/**
 * The page-fault handler. It reads top-down, as Linux's handle_mm_fault and SerenityOS's
 * Region::handle_fault do: find the VMA; one guard clause per reason to refuse; then one named
 * handler per kind of fault. Every path returns a FaultResult from a closed set (preallocated:
 * the demand-zero path allocates nothing but the frame).
 *
 *   no VMA, or below a stack by more than it may grow   -> SIGSEGV / SEGV_MAPERR
 *   the access breaks the VMA's protection              -> SIGSEGV / SEGV_ACCERR
 *   below a stack VMA, within the limit and guard gap   -> stack growth, then demand-zero
 *   entry none, file page wholly past end of file       -> SIGBUS
 *   entry none                                          -> demand-zero (anonymous), the shared
 *                                                          object's page, or the file's page
 *                                                          through the page cache (a private
 *                                                          write copies it at once)
 *   entry present, write to read-only, private VMA      -> copy-on-write (copy, or reuse)
 *   entry present, write to read-only, shared VMA       -> write-notify: the page is dirty now
 *   entry present and permitted                         -> spurious (stale TLB): retry
 *   entry swap                                          -> swap-in (swap subsystem)
 */
import { ACCESS_EXECUTE, ACCESS_WRITE, type MmuFault } from '../hw/mmu.ts';
import { SEGV_ACCERR, SEGV_MAPERR } from '../lib/signals.ts';
import { type AddressSpace, putPage } from './mm.ts';
import { PG_DIRTY, PG_FILE, PG_LOCKED, PG_SHMEM, PG_SWAPCACHE } from './page.ts';
import { NP_PROTNONE, NP_SWAP } from './pte.ts';
import {
  type AnonFamily,
  type MappedFile,
  VM_ACCESS_FLAGS,
  VM_ACCOUNT,
  VM_EXEC,
  VM_GROWSDOWN,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
  type Vma,
} from './vma.ts';

export type FaultResult =
  | { readonly kind: 'handled'; readonly major: boolean; readonly how: FaultHow }
  | { readonly kind: 'sigsegv'; readonly code: typeof SEGV_MAPERR | typeof SEGV_ACCERR }
  | { readonly kind: 'sigbus' }
  | { readonly kind: 'oom' };

export type FaultHow =
  | 'demand-zero'
  | 'cow-copy'
  | 'cow-reuse'
  | 'stack-growth'
  | 'spurious'
  | 'swap-in'
  | 'file-read'
  | 'file-cow'
  | 'write-notify';

const handled = (how: FaultHow, major = false): FaultResult => Object.freeze({ kind: 'handled', major, how });
export const FAULT_DEMAND_ZERO = handled('demand-zero');
export const FAULT_COW_COPY = handled('cow-copy');
export const FAULT_COW_REUSE = handled('cow-reuse');
export const FAULT_STACK_GROWTH = handled('stack-growth');
export const FAULT_SPURIOUS = handled('spurious');
export const FAULT_SWAP_IN_MINOR = handled('swap-in');
export const FAULT_SWAP_IN_MAJOR = handled('swap-in', true);
export const FAULT_FILE_MINOR = handled('file-read');
export const FAULT_FILE_MAJOR = handled('file-read', true);
export const FAULT_FILE_COW_MINOR = handled('file-cow');
export const FAULT_FILE_COW_MAJOR = handled('file-cow', true);
export const FAULT_WRITE_NOTIFY = handled('write-notify');
export const FAULT_MAPERR: FaultResult = Object.freeze({ kind: 'sigsegv', code: SEGV_MAPERR });
export const FAULT_ACCERR: FaultResult = Object.freeze({ kind: 'sigsegv', code: SEGV_ACCERR });
export const FAULT_SIGBUS: FaultResult = Object.freeze({ kind: 'sigbus' });
export const FAULT_OOM: FaultResult = Object.freeze({ kind: 'oom' });

/** Memory the fault handler may need: a fresh user frame (reclaiming as needed), and swap-in. */
export interface FaultMemory {
  /** A zeroed user frame owned by `pid` (PG_ANON, one reference), or -1 when none can be had. */
  allocUserFrame(pid: number): number;
  /** A private anonymous page became resident in `pfn` (the replacement policy learns of it). */
  pageLoaded(pfn: number, family: AnonFamily, write: boolean): void;
  /**
   * May a swap-cache page mapped only here be reused by a write (nobody else references its
   * slot)? If so it leaves the swap cache (its slot is freed) and true is returned.
   */
  reuseSwapCachePage(pfn: number): boolean;
  /** Bring swap slot `slot` back for `as` at `va` (entry at `pa`); a later subsystem. */
  swapIn(as: AddressSpace, vma: Vma, va: number, pa: number, slot: number): FaultResult;
  /**
   * The page-cache frame holding page `index` of `file`, read in as needed (the faulting
   * process then sleeps at its next yield until the read is done), or -1 when no frame can be
   * had. `fileReadWasMajor` tells whether it had to be read.
   */
  filePage(file: MappedFile, index: number, vma: Vma): number;
  readonly fileReadWasMajor: boolean;
}

/** Handle a fault of `as` at `fault.va`. Never throws for anything a process can do. */
export function handleFault(as: AddressSpace, fault: Readonly<MmuFault>, mem: FaultMemory): FaultResult {
  const va = fault.va;
  let vma = as.vmas.find(va);
  if (vma === undefined) {
    const above = as.vmas.findNext(va);
    if (above === undefined || (above.flags & VM_GROWSDOWN) === 0) return FAULT_MAPERR;
    if (!accessAllowed(above, fault)) return FAULT_ACCERR;
    if (!growStack(as, above, va)) return FAULT_MAPERR;
    vma = above;
    as.services.events.stack_grow++;
  }
  if (!accessAllowed(vma, fault)) return FAULT_ACCERR;
  const pa = as.tables.entryAddress(va, 'create');
  if (pa < 0) return FAULT_OOM;
  const t = as.tables;
  const pte = as.services.pte;
  const lo = t.read(pa);
  const hi = t.hi;
  if (pte.isNone(lo, hi)) {
    if (vma.backing.kind === 'shmem') return doSharedAnonFault(as, vma, va, fault, mem);
    if (vma.backing.kind === 'file') return doFileFault(as, vma, va, fault, mem);
    return doAnonymousFault(as, vma, va, pa, fault, mem);
  }
  if (!pte.isPresent(lo, hi)) {
    const tag = pte.nonPresentTag(lo, hi);
    if (tag === NP_SWAP) return mem.swapIn(as, vma, va, pa, pte.nonPresentPayload(lo, hi));
    if (tag === NP_PROTNONE) return FAULT_ACCERR;
    return FAULT_SIGBUS;
  }
  if (fault.access === ACCESS_WRITE && !pte.isWritable(lo, hi)) {
    if ((vma.flags & VM_SHARED) !== 0) return doSharedWriteFault(as, va, pa, pte.pfnOf(lo, hi));
    return doCowFault(as, vma, va, pa, pte.pfnOf(lo, hi), mem);
  }
  as.services.mmu.invalidatePage(va, as.asid);
  return FAULT_SPURIOUS;
}

/**
 * A write to a read-only entry of a shared mapping that allows writing: a clean page of a file
 * (mapped read-only so that its first write is seen, Linux's write-notify) becomes dirty and
 * writable; a shared anonymous page just becomes writable.
 */
function doSharedWriteFault(as: AddressSpace, va: number, pa: number, pfn: number): FaultResult {
  if (as.services.pages.has(pfn, PG_FILE)) {
    as.services.fileDirtied(pfn);
    as.makeWritable(pa, va);
    return FAULT_WRITE_NOTIFY;
  }
  as.makeWritable(pa, va);
  return FAULT_SPURIOUS;
}

/** Does the VMA allow the faulting access? (Execute needs VM_EXEC; read needs any access right.) */
function accessAllowed(vma: Vma, fault: Readonly<MmuFault>): boolean {
  if (fault.access === ACCESS_WRITE) return (vma.flags & VM_WRITE) !== 0;
  if (fault.access === ACCESS_EXECUTE) return (vma.flags & VM_EXEC) !== 0;
  return (vma.flags & (VM_READ | VM_WRITE | VM_EXEC)) !== 0;
}

/**
 * Grow the stack VMA `stack` down to cover `va`, if the new size stays within the stack limit
 * and the new start stays at least the guard gap above the previous VMA's end. As Linux's
 * expand_downwards, the gap is kept only from an accessible VMA that is not itself a stack
 * (a PROT_NONE mapping below is a guard region of its own).
 */
function growStack(as: AddressSpace, stack: Vma, va: number): boolean {
  const page = as.pageBytes;
  const newStart = Math.floor(va / page) * page;
  const { stackLimitBytes, stackGuardGapPages } = as.services.tunables;
  if (stack.end - newStart > stackLimitBytes) return false;
  const below = as.vmas.prev(stack);
  const keepsGap =
    below !== undefined && (below.flags & VM_GROWSDOWN) === 0 && (below.flags & VM_ACCESS_FLAGS) !== 0;
  if (keepsGap && newStart < below.end + stackGuardGapPages * page) return false;
  if (newStart < as.layout.mmapMinAddr) return false;
  if ((stack.flags & VM_ACCOUNT) !== 0 && !as.charge((stack.start - newStart) / page)) return false;
  stack.start = newStart;
  as.updateHiwater();
  return true;
}

/** First touch of an anonymous page: map a fresh zeroed frame. */
function doAnonymousFault(
  as: AddressSpace,
  vma: Vma,
  va: number,
  pa: number,
  fault: Readonly<MmuFault>,
  mem: FaultMemory,
): FaultResult {
  if (vma.anon === null) {
    const family = as.services.newAnonFamily(as);
    if (family === undefined) return FAULT_OOM;
    vma.anon = family;
  }
  const pfn = mem.allocUserFrame(as.ownerPid);
  if (pfn < 0) return FAULT_OOM;
  const page = as.pageBytes;
  as.services.pages.index[pfn] = vma.anonIndex(va, page);
  const write = fault.access === ACCESS_WRITE;
  as.installNewPage(vma, pa, pfn, (vma.flags & VM_WRITE) !== 0, write);
  mem.pageLoaded(pfn, vma.anon, write);
  as.updateHiwaterRss();
  return FAULT_DEMAND_ZERO;
}

/** First touch of a page of a shared anonymous object: map the object's page, creating it if new. */
function doSharedAnonFault(
  as: AddressSpace,
  vma: Vma,
  va: number,
  fault: Readonly<MmuFault>,
  mem: FaultMemory,
): FaultResult {
  if (vma.backing.kind !== 'shmem') return FAULT_SIGBUS;
  const obj = vma.backing.object;
  const index = vma.pgoff + (va - vma.start) / as.pageBytes;
  if (index >= obj.sizePages) return FAULT_SIGBUS; // past the object's end (mremap grew the VMA)
  const pages = as.services.pages;
  let pfn = obj.pages.get(index);
  if (pfn === undefined) {
    pfn = mem.allocUserFrame(as.ownerPid);
    if (pfn < 0) return FAULT_OOM;
    pages.set(pfn, PG_SHMEM);
    pages.index[pfn] = index;
    obj.pages.set(index, pfn); // the object keeps the allocation's reference
  }
  pages.refcount[pfn]!++; // the mapping's reference
  if (
    !as.installPage(vma, va, pfn, {
      writable: (vma.flags & VM_WRITE) !== 0,
      dirty: fault.access === ACCESS_WRITE,
    })
  ) {
    putPage(as.services, pfn);
    return FAULT_OOM;
  }
  as.updateHiwaterRss();
  return FAULT_DEMAND_ZERO;
}

/**
 * A write to a read-only private page. If this mapping holds the only reference, the page is
 * reused (made writable); otherwise it is copied into a fresh frame and the old one loses a
 * reference.
 */
function doCowFault(
  as: AddressSpace,
  vma: Vma,
  va: number,
  pa: number,
  oldPfn: number,
  mem: FaultMemory,
): FaultResult {
  const { pages } = as.services;
  const exclusive =
    pages.refcount[oldPfn] === 1 && pages.mapcount[oldPfn] === 1 && !pages.has(oldPfn, PG_FILE);
  if (exclusive && (!pages.has(oldPfn, PG_SWAPCACHE) || mem.reuseSwapCachePage(oldPfn))) {
    as.makeWritable(pa, va);
    as.services.events.pgreuse++;
    return FAULT_COW_REUSE;
  }
  const newPfn = copyToNewPage(as, vma, va, oldPfn, mem);
  if (newPfn < 0) return FAULT_OOM;
  pages.mapcount[oldPfn]!--;
  as.countMapped(oldPfn, -1);
  putPage(as.services, oldPfn);
  as.tables.write(pa, 0, 0);
  // The entry's table exists (we just read it), so mapping the copy cannot fail here.
  if (!mapCopy(as, vma, va, newPfn, mem)) return FAULT_OOM;
  return FAULT_COW_COPY;
}

/**
 * First touch of a page of a file mapping: the page cache's frame (read from the file when not
 * cached: a major fault). Shared mappings map it (writable as the VMA allows; a write dirties
 * the PTE); a private mapping maps it read-only, and a write copies it into an anonymous page at
 * once. A page wholly past the end of the file is SIGBUS; the tail of a partial last page reads
 * zeros.
 */
function doFileFault(
  as: AddressSpace,
  vma: Vma,
  va: number,
  fault: Readonly<MmuFault>,
  mem: FaultMemory,
): FaultResult {
  if (vma.backing.kind !== 'file') return FAULT_SIGBUS;
  const file = vma.backing.file;
  const page = as.pageBytes;
  const index = vma.pgoff + Math.floor((va - vma.start) / page);
  if (index * page >= file.sizeBytes) return FAULT_SIGBUS;
  const pfn = mem.filePage(file, index, vma);
  if (pfn < 0) return FAULT_OOM;
  const major = mem.fileReadWasMajor;
  const write = fault.access === ACCESS_WRITE;
  if (write && !vma.isShared()) return copyFilePage(as, vma, va, pfn, mem, major);
  const pages = as.services.pages;
  pages.refcount[pfn]!++; // the mapping's reference
  // A shared mapping maps a clean page read-only (its first write faults: write-notify) and a
  // written one writable; a private one maps the cache's page read-only (a write copies it).
  const writable = vma.isShared() && (vma.flags & VM_WRITE) !== 0 && (write || pages.has(pfn, PG_DIRTY));
  if (!as.installPage(vma, va, pfn, { writable, dirty: write })) {
    putPage(as.services, pfn);
    return FAULT_OOM;
  }
  if (write) as.services.fileDirtied(pfn);
  as.updateHiwaterRss();
  return major ? FAULT_FILE_MAJOR : FAULT_FILE_MINOR;
}

/** A private write to a file page not yet mapped here: copy the cached page into a new anonymous one. */
function copyFilePage(
  as: AddressSpace,
  vma: Vma,
  va: number,
  filePfn: number,
  mem: FaultMemory,
  major: boolean,
): FaultResult {
  const pages = as.services.pages;
  pages.refcount[filePfn]!++; // hold the page while copying
  const pfn = copyToNewPage(as, vma, va, filePfn, mem);
  putPage(as.services, filePfn);
  if (pfn < 0 || !mapCopy(as, vma, va, pfn, mem)) return FAULT_OOM;
  as.updateHiwaterRss();
  return major ? FAULT_FILE_COW_MAJOR : FAULT_FILE_COW_MINOR;
}

/**
 * The copy half of copy-on-write: a new anonymous frame holding `fromPfn`'s bytes, dirty (its
 * contents exist nowhere else) and indexed for `va`; -1 when no frame (or anonymous lineage)
 * can be had. `fromPfn` is locked while the allocation may reclaim, so it is not evicted.
 */
function copyToNewPage(as: AddressSpace, vma: Vma, va: number, fromPfn: number, mem: FaultMemory): number {
  if (vma.anon === null) {
    const family = as.services.newAnonFamily(as);
    if (family === undefined) return -1;
    vma.anon = family;
  }
  const pages = as.services.pages;
  pages.set(fromPfn, PG_LOCKED);
  const pfn = mem.allocUserFrame(as.ownerPid);
  pages.clear(fromPfn, PG_LOCKED);
  if (pfn < 0) return -1;
  as.services.mem.copyFrame(fromPfn, pfn);
  pages.set(pfn, PG_DIRTY);
  pages.index[pfn] = vma.anonIndex(va, as.pageBytes);
  return pfn;
}

/** Map a page copyToNewPage made, writable and dirty, and tell reclaim; false (freed) on failure. */
function mapCopy(as: AddressSpace, vma: Vma, va: number, pfn: number, mem: FaultMemory): boolean {
  if (!as.installPage(vma, va, pfn, { writable: true, dirty: true })) {
    putPage(as.services, pfn);
    return false;
  }
  mem.pageLoaded(pfn, vma.anon!, true);
  as.services.events.cow_fault++;
  return true;
}
