/**
 * The memory-map system calls on an address space: brk, mmap, munmap, mremap, mprotect,
 * madvise, mincore. Linux's argument checks, error numbers and semantics (see
 * shared/reference/linux-mm.md §2.7-2.10). Each returns a result or -errno, and a call that
 * fails leaves the address space as it was.
 */
import { EACCES, EEXIST, EFAULT, EINVAL, ENODEV, ENOMEM, EPERM } from '../lib/errno.ts';
import type { AddressSpace } from './mm.ts';
import { PG_LAZYFREE } from './page.ts';
import { NP_PROTNONE } from './pte.ts';
import {
  type MappedFile,
  VM_ACCOUNT,
  VM_EXEC,
  VM_GROWSDOWN,
  VM_LOCKED,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_NORESERVE,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
  type Vma,
} from './vma.ts';

/** VMA flags set by madvise(MADV_SEQUENTIAL) and madvise(MADV_RANDOM) (Linux's values). */
export const VM_SEQ_READ = 0x8000;
export const VM_RAND_READ = 0x10000;

export const MS_ASYNC = 1;
export const MS_INVALIDATE = 2;
export const MS_SYNC = 4;

export const PROT_NONE = 0x0;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const PROT_EXEC = 0x4;

export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_SHARED_VALIDATE = 0x03;
export const MAP_TYPE = 0x0f;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_GROWSDOWN = 0x0100;
export const MAP_NORESERVE = 0x4000;
export const MAP_POPULATE = 0x8000;
export const MAP_STACK = 0x20000;
export const MAP_FIXED_NOREPLACE = 0x100000;
const MAP_KNOWN =
  MAP_TYPE |
  MAP_FIXED |
  MAP_ANONYMOUS |
  MAP_GROWSDOWN |
  MAP_NORESERVE |
  MAP_POPULATE |
  MAP_STACK |
  MAP_FIXED_NOREPLACE;

export const MADV_NORMAL = 0;
export const MADV_RANDOM = 1;
export const MADV_SEQUENTIAL = 2;
export const MADV_WILLNEED = 3;
export const MADV_DONTNEED = 4;
export const MADV_FREE = 8;

/** What the calls need from the kernel beyond the address space. */
export interface MmapEnv {
  /** Fault in `va` for `write` (MAP_POPULATE); false when it could not be made resident. */
  populate(va: number, write: boolean): boolean;
  /**
   * The file behind descriptor `fd`, for mmap: the file and how it was opened, or -EBADF (no
   * such descriptor) or -ENODEV (it cannot be mapped: a console, a directory).
   */
  mappableFile(fd: number): { file: MappedFile; readable: boolean; writable: boolean } | number;
  /** Write back pages [fromIndex, toIndex) of `file`; with 'sync' the caller waits for the disk. */
  syncFile(file: MappedFile, fromIndex: number, toIndex: number, mode: 'sync' | 'async'): void;
}

/** VMA flags for PROT_* bits. */
export function protToVmFlags(prot: number): number {
  let f = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
  if (prot & PROT_READ) f |= VM_READ;
  if (prot & PROT_WRITE) f |= VM_WRITE;
  if (prot & PROT_EXEC) f |= VM_EXEC;
  return f;
}

const pageUp = (n: number, page: number): number => Math.ceil(n / page) * page;

/**
 * Does [addr, end) reach outside user space? Numbers are read as the unsigned longs of the real
 * call: a negative address is a kernel address near the top of the address space, as is any
 * address at or beyond TASK_SIZE.
 */
function outsideUser(as: AddressSpace, addr: number, end: number): boolean {
  return addr < 0 || !Number.isSafeInteger(end) || end > as.layout.taskSize;
}

/**
 * brk(addr): move the program break. Returns the new break, or the current one when the
 * request is refused (below the heap start, into another mapping, or memory is short), as the
 * raw Linux syscall does.
 */
export function doBrk(as: AddressSpace, addr: number): number {
  const page = as.pageBytes;
  if (!Number.isSafeInteger(addr) || addr < as.startBrk || addr > as.layout.taskSize) return as.brk;
  const oldEnd = pageUp(as.brk, page);
  const newEnd = pageUp(addr, page);
  if (newEnd === oldEnd) {
    as.brk = addr;
    return as.brk;
  }
  if (newEnd < oldEnd) {
    if (doMunmap(as, newEnd, oldEnd - newEnd) < 0) return as.brk;
    as.brk = addr;
    return as.brk;
  }
  // Growing: keep one page clear below the next mapping (and the stack's guard gap).
  const next = as.vmas.findNext(oldEnd);
  if (next !== undefined) {
    const limit = as.vmas.gapStart(next, as.services.tunables.stackGuardGapPages * page);
    if (newEnd + page > limit) return as.brk;
  }
  if (!as.charge((newEnd - oldEnd) / page)) return as.brk;
  // Grow the VMA that ends at the old break (bss, or the heap grown so far), as Linux's brk
  // merges with it; else start a new anonymous VMA there.
  const below = as.vmas.find(oldEnd - 1);
  const rwAnon = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_ACCOUNT;
  if (
    below !== undefined &&
    below.end === oldEnd &&
    below.backing.kind === 'anon' &&
    below.flags === rwAnon
  ) {
    below.end = newEnd;
    as.vmas.mergeAround(below);
  } else {
    const v = as.vmas.create({ start: oldEnd, end: newEnd, flags: rwAnon, backing: { kind: 'anon' } });
    if (v === undefined) {
      as.uncharge((newEnd - oldEnd) / page);
      return as.brk;
    }
    as.vmas.mergeAround(v);
  }
  as.brk = addr;
  as.updateHiwater();
  return as.brk;
}

/**
 * mmap(addr, length, prot, flags, fd, offset). Returns the mapping's address or -errno.
 * Anonymous memory is private or shared (a shared anonymous object); a file mapping maps the
 * file's pages from `offset` (MAP_SHARED: the page cache's pages, writes reach the file;
 * MAP_PRIVATE: copy on write). Linux's checks in Linux's order: offset alignment, the
 * descriptor (EBADF), length and flags (EINVAL), access (EACCES), mappability (ENODEV).
 */
export function doMmap(
  as: AddressSpace,
  args: { addr: number; length: number; prot: number; flags: number; fd: number; offset: number },
  env: MmapEnv,
): number {
  const page = as.pageBytes;
  const { addr, prot, flags, offset } = args;
  if (!Number.isSafeInteger(offset) || offset < 0 || offset % page !== 0) return -EINVAL;
  let file: { file: MappedFile; readable: boolean; writable: boolean } | undefined;
  if ((flags & MAP_ANONYMOUS) === 0) {
    const found = env.mappableFile(args.fd);
    if (typeof found === 'number' && found !== -ENODEV) return found; // EBADF first, ENODEV last
    if (typeof found !== 'number') file = found;
  }
  if (!Number.isInteger(args.length) || args.length === 0) return -EINVAL;
  const type = flags & MAP_TYPE;
  if (type !== MAP_SHARED && type !== MAP_PRIVATE && type !== MAP_SHARED_VALIDATE) return -EINVAL;
  if (type === MAP_SHARED_VALIDATE && (flags & ~MAP_KNOWN) !== 0) return -EINVAL;
  if ((prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) !== 0) return -EINVAL;
  // A negative length is a huge size_t: no room for it.
  if (args.length < 0 || args.length > as.layout.taskSize) return -ENOMEM;
  const length = pageUp(args.length, page);
  if (length > as.layout.taskSize) return -ENOMEM;
  if ((flags & MAP_ANONYMOUS) === 0) {
    if (file === undefined) return -ENODEV; // the descriptor's file cannot be mapped
    return mmapFile(as, { ...args, length }, file, env);
  }
  // Anonymous memory is MAP_SHARED or MAP_PRIVATE (MAP_SHARED_VALIDATE, both bits, is for
  // files), and a shared anonymous mapping cannot grow down (Linux's do_mmap).
  if (type === MAP_SHARED_VALIDATE) return -EINVAL;
  if (type === MAP_SHARED && (flags & MAP_GROWSDOWN) !== 0) return -EINVAL;
  let vmFlags = protToVmFlags(prot);
  if (type !== MAP_PRIVATE) vmFlags |= VM_SHARED | VM_MAYSHARE;
  if (flags & MAP_GROWSDOWN) vmFlags |= VM_GROWSDOWN;
  if (flags & MAP_NORESERVE) vmFlags |= VM_NORESERVE;
  // Private writable memory is committed; overcommit mode 2 ignores MAP_NORESERVE (as Linux).
  const noReserve = (flags & MAP_NORESERVE) !== 0 && as.services.overcommitMode() !== 2;
  if (type === MAP_PRIVATE && (prot & PROT_WRITE) !== 0 && !noReserve) vmFlags |= VM_ACCOUNT;
  const start = reserveRange(as, { addr, length, flags, vmFlags });
  if (start < 0) return start;
  const shared = (vmFlags & VM_SHARED) !== 0;
  const backing = shared
    ? { kind: 'shmem' as const, object: as.services.newShmem(length / page) }
    : { kind: 'anon' as const };
  const vma = as.vmas.create({ start, end: start + length, flags: vmFlags, backing });
  if (vma === undefined) {
    if (backing.kind === 'shmem') as.services.putShmem(backing.object);
    if ((vmFlags & VM_ACCOUNT) !== 0) as.uncharge(length / page);
    return -ENOMEM;
  }
  const merged = shared ? vma : as.vmas.mergeAround(vma);
  as.updateHiwater();
  if ((flags & MAP_POPULATE) !== 0) {
    const write = (prot & PROT_WRITE) !== 0;
    for (let va = start; va < start + length; va += page) if (!env.populate(va, write)) break;
  }
  void merged;
  return start;
}

/**
 * Where a new mapping of `length` bytes goes, made ready for its VMA: a MAP_FIXED address
 * checked in Linux's order (__get_unmapped_area: beyond TASK_SIZE, then unaligned, then too
 * low; MAP_FIXED_NOREPLACE over a mapping), or a free place found; then the commit charge
 * (first, so a refused commit leaves any old mapping in place) and the old mappings unmapped.
 * The start, or -errno with nothing changed.
 */
function reserveRange(
  as: AddressSpace,
  m: { addr: number; length: number; flags: number; vmFlags: number },
): number {
  const page = as.pageBytes;
  const { addr, length, flags, vmFlags } = m;
  const fixed = (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) !== 0;
  let start: number;
  if (fixed) {
    if (!Number.isInteger(addr)) return -EINVAL;
    if (outsideUser(as, addr, addr + length)) return -ENOMEM;
    if (addr % page !== 0) return -EINVAL;
    if (addr < as.layout.mmapMinAddr) return -EPERM;
    if (as.vmas.overlaps(addr, addr + length) && (flags & MAP_FIXED_NOREPLACE) !== 0) return -EEXIST;
    start = addr;
  } else {
    start = placeMapping(as, addr, length);
    if (start < 0) return -ENOMEM;
  }
  if ((vmFlags & VM_ACCOUNT) !== 0 && !as.charge(length / page)) return -ENOMEM;
  if (fixed && as.vmas.overlaps(start, start + length) && doMunmap(as, start, length) < 0) {
    if ((vmFlags & VM_ACCOUNT) !== 0) as.uncharge(length / page);
    return -ENOMEM;
  }
  return start;
}

/** The file half of mmap: access checks, then the VMA (arguments checked by doMmap). */
function mmapFile(
  as: AddressSpace,
  args: { addr: number; length: number; prot: number; flags: number; offset: number },
  opened: { file: MappedFile; readable: boolean; writable: boolean },
  env: MmapEnv,
): number {
  const page = as.pageBytes;
  const { addr, length, prot, flags } = args;
  const shared = (flags & MAP_TYPE) !== MAP_PRIVATE;
  if (!opened.readable) return -EACCES;
  if (shared && (prot & PROT_WRITE) !== 0 && !opened.writable) return -EACCES;
  let vmFlags = protToVmFlags(prot);
  if (shared) {
    vmFlags |= VM_SHARED | VM_MAYSHARE;
    // A read-only descriptor: never writable, so not really shared (Linux clears both).
    if (!opened.writable) vmFlags &= ~(VM_MAYWRITE | VM_SHARED);
  }
  if (flags & MAP_NORESERVE) vmFlags |= VM_NORESERVE;
  const noReserve = (flags & MAP_NORESERVE) !== 0 && as.services.overcommitMode() !== 2;
  if (!shared && (prot & PROT_WRITE) !== 0 && !noReserve) vmFlags |= VM_ACCOUNT;
  const start = reserveRange(as, { addr, length, flags, vmFlags });
  if (start < 0) return start;
  const vma = as.vmas.create({
    start,
    end: start + length,
    flags: vmFlags,
    backing: { kind: 'file', file: opened.file },
    pgoff: args.offset / page,
  });
  if (vma === undefined) {
    if ((vmFlags & VM_ACCOUNT) !== 0) as.uncharge(length / page);
    return -ENOMEM;
  }
  as.services.fileMapped(opened.file, as);
  as.vmas.mergeAround(vma);
  as.updateHiwater();
  if ((flags & MAP_POPULATE) !== 0) {
    const write = shared && (prot & PROT_WRITE) !== 0;
    for (let va = start; va < start + length; va += page) if (!env.populate(va, write)) break;
  }
  return start;
}

/**
 * msync(addr, length, flags): write back the dirty pages of shared file mappings in the range.
 * MS_SYNC waits for the disk; MS_ASYNC starts the writes and returns (Linux's MS_ASYNC only
 * notes the pages: here they go at once, which a reader of the file cannot tell apart);
 * MS_INVALIDATE has nothing to do, as mappings and read() share one page cache. Returns 0,
 * -EINVAL (unaligned, bad flags, both MS_ASYNC and MS_SYNC) or -ENOMEM (part of the range is
 * not mapped; the mapped part is still written).
 */
export function doMsync(as: AddressSpace, addr: number, len: number, flags: number, env: MmapEnv): number {
  const page = as.pageBytes;
  if (!Number.isInteger(addr) || addr % page !== 0) return -EINVAL;
  if ((flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC)) !== 0) return -EINVAL;
  if ((flags & MS_ASYNC) !== 0 && (flags & MS_SYNC) !== 0) return -EINVAL;
  if (!Number.isSafeInteger(len) || len < 0) return -ENOMEM;
  if (len === 0) return 0;
  const end = addr + pageUp(len, page);
  if (outsideUser(as, addr, end)) return -ENOMEM;
  let at = addr;
  let hole = false;
  for (const v of as.vmas.overlapping(addr, end)) {
    if (v.start > at) hole = true;
    at = v.end;
    if (v.backing.kind !== 'file' || !v.isShared() || (flags & (MS_ASYNC | MS_SYNC)) === 0) continue;
    const from = v.pgoff + (Math.max(v.start, addr) - v.start) / page;
    const to = v.pgoff + (Math.min(v.end, end) - v.start) / page;
    env.syncFile(v.backing.file, from, to, (flags & MS_SYNC) !== 0 ? 'sync' : 'async');
  }
  return hole || at < end ? -ENOMEM : 0;
}

/** Where a non-fixed mapping goes: the hint if it is free and valid, else top-down from mmap_base. */
function placeMapping(as: AddressSpace, hint: number, length: number): number {
  const page = as.pageBytes;
  const { layout } = as;
  const gap = as.services.tunables.stackGuardGapPages * page;
  if (Number.isSafeInteger(hint) && hint > 0) {
    const h = pageUp(hint, page);
    if (h >= layout.mmapMinAddr && h + length <= layout.taskSize && !as.vmas.overlaps(h, h + length)) {
      const next = as.vmas.findNext(h);
      if (next === undefined || h + length <= as.vmas.gapStart(next, gap)) return h;
    }
  }
  const below = Math.min(layout.mmapBase, layout.taskSize);
  const above = Math.max(layout.mmapMinAddr, pageUp(as.brk, page) + page);
  return as.vmas.findFreeTopDown(length, { below, above, stackGap: gap });
}

/** munmap(addr, length): 0 or -errno. Unmapping a range with holes (or nothing) is fine. */
export function doMunmap(as: AddressSpace, addr: number, len: number): number {
  const page = as.pageBytes;
  if (!Number.isSafeInteger(addr) || addr % page !== 0 || !Number.isSafeInteger(len) || len <= 0)
    return -EINVAL;
  const length = pageUp(len, page);
  if (outsideUser(as, addr, addr + length)) return -EINVAL;
  const end = addr + length;
  if (!as.vmas.carve(addr, end)) return -ENOMEM;
  for (const v of as.vmas.overlapping(addr, end)) {
    if ((v.flags & VM_ACCOUNT) !== 0) as.uncharge(v.length / page);
    as.zapRange(v.start, v.end);
    if (v.backing.kind === 'shmem') as.services.putShmem(v.backing.object);
    if (v.backing.kind === 'file') as.services.fileVmaGone(as, v);
    as.vmas.destroy(v);
  }
  return 0;
}

export const MREMAP_MAYMOVE = 1;
export const MREMAP_FIXED = 2;
export const MREMAP_DONTUNMAP = 4;

/**
 * mremap(oldAddr, oldLen, newLen, flags, newAddr): the mapping's address (new or the same), or
 * -errno. Linux's rules: [oldAddr, oldAddr + oldLen) must lie inside one VMA (-EFAULT); a
 * shrink unmaps the tail; a growth extends the VMA in place when the addresses after it are
 * free, else, with MREMAP_MAYMOVE, moves the mapping: its page-table entries (present pages,
 * swap entries, PROT_NONE-kept frames) go to the new place without copying a byte, and its
 * anonymous pages keep their index (the VMA's anonDelta records the move for reverse mapping).
 * MREMAP_FIXED moves to newAddr, replacing what is there. MREMAP_DONTUNMAP (with
 * MREMAP_MAYMOVE, the same size) moves the entries and leaves the old range mapped and empty:
 * a touch there faults afresh (zeros for private anonymous memory, the object's pages for a
 * shared or file mapping), and both ranges are charged. An old size of 0 on a shared mapping
 * maps the same pages a second time, from oldAddr on (Linux's "duplicate shm area"; EINVAL on
 * a private one).
 */
export function doMremap(
  as: AddressSpace,
  oldAddr: number,
  oldLen: number,
  newLen: number,
  flags: number,
  newAddr: number,
): number {
  const page = as.pageBytes;
  if (!Number.isSafeInteger(flags) || (flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP)) !== 0)
    return -EINVAL;
  const fixed = (flags & MREMAP_FIXED) !== 0;
  const keepOld = (flags & MREMAP_DONTUNMAP) !== 0;
  if ((fixed || keepOld) && (flags & MREMAP_MAYMOVE) === 0) return -EINVAL;
  if (keepOld && oldLen !== newLen) return -EINVAL;
  if (!Number.isSafeInteger(oldAddr) || oldAddr < 0 || oldAddr % page !== 0) return -EINVAL;
  if (!Number.isSafeInteger(oldLen) || !Number.isSafeInteger(newLen) || oldLen < 0 || newLen < 0)
    return -EINVAL;
  const oldSize = pageUp(oldLen, page);
  const newSize = pageUp(newLen, page);
  if (newSize === 0) return -EINVAL;
  if (outsideUser(as, oldAddr, oldAddr + Math.max(oldSize, page))) return -EFAULT;
  if (fixed) {
    if (!Number.isSafeInteger(newAddr) || newAddr % page !== 0) return -EINVAL;
    if (outsideUser(as, newAddr, newAddr + newSize)) return -EINVAL;
    if (newAddr < oldAddr + oldSize && oldAddr < newAddr + newSize) return -EINVAL;
    if (newAddr < as.layout.mmapMinAddr) return -EPERM; // as mmap MAP_FIXED there
  }
  const vma = as.vmas.find(oldAddr);
  if (vma === undefined || oldAddr + oldSize > vma.end) return -EFAULT;
  if (oldSize === 0 && (vma.flags & (VM_SHARED | VM_MAYSHARE)) === 0) return -EINVAL;
  if (fixed) {
    const err = doMunmap(as, newAddr, newSize);
    if (err < 0) return err;
    // Unmapping the target may have taken the old VMA (an old size of 0 at its own address):
    // look again, as Linux's mremap_to does.
    const again = as.vmas.find(oldAddr);
    if (again === undefined || oldAddr + oldSize > again.end) return -EFAULT;
  }
  if (oldSize === 0 || keepOld) {
    if ((flags & MREMAP_MAYMOVE) === 0) return -ENOMEM; // an old size of 0 must move
    const target = fixed ? newAddr : placeMapping(as, 0, newSize);
    if (target < 0) return -ENOMEM;
    return oldSize === 0
      ? duplicateMapping(as, oldAddr, newSize, target)
      : moveMapping(as, oldAddr, oldSize, newSize, target, true);
  }
  if (newSize < oldSize) {
    const err = doMunmap(as, oldAddr + newSize, oldSize - newSize);
    if (err < 0) return err;
    return fixed ? moveMapping(as, oldAddr, newSize, newSize, newAddr) : oldAddr;
  }
  if (newSize === oldSize && !fixed) return oldAddr;
  if (!fixed && oldAddr + oldSize === vma.end) {
    const grown = growInPlace(as, vma, oldAddr + newSize);
    if (grown !== 0) return grown < 0 ? grown : oldAddr;
  }
  if ((flags & MREMAP_MAYMOVE) === 0) return -ENOMEM;
  const target = fixed ? newAddr : placeMapping(as, 0, newSize);
  if (target < 0) return -ENOMEM;
  return moveMapping(as, oldAddr, oldSize, newSize, target);
}

/**
 * Extend `vma` to `end` when the addresses up to it are free (keeping the stack's guard gap):
 * 1 when done, 0 when there is no room, -ENOMEM when the commit charge refuses.
 */
function growInPlace(as: AddressSpace, vma: Vma, end: number): number {
  const page = as.pageBytes;
  if (end > as.layout.taskSize) return 0;
  const next = as.vmas.findNext(vma.end);
  if (next !== undefined && end > as.vmas.gapStart(next, as.services.tunables.stackGuardGapPages * page))
    return 0;
  const extra = (end - vma.end) / page;
  if ((vma.flags & VM_ACCOUNT) !== 0 && !as.charge(extra)) return -ENOMEM;
  vma.end = end;
  as.vmas.mergeAround(vma);
  as.updateHiwater();
  return 1;
}

/**
 * Move [oldAddr, oldAddr + oldSize) to a new VMA of newSize bytes at `target` (free): the
 * entries change place, the frames stay. 0 is never returned: the new address or -ENOMEM
 * (with nothing changed: the commit charge for the growth is taken before the old VMA is
 * split, and a split is merged back when a later step fails). The old VMA's reference to its
 * file or shared object passes to the moved one: a move writes nothing back. With `keepOld`
 * (MREMAP_DONTUNMAP, same size) the old VMA stays, empty, with its own charge and reference;
 * the moved one is charged anew and takes a reference of its own.
 */
function moveMapping(
  as: AddressSpace,
  oldAddr: number,
  oldSize: number,
  newSize: number,
  target: number,
  keepOld = false,
): number {
  const page = as.pageBytes;
  const oldEnd = oldAddr + oldSize;
  const extra = (newSize - oldSize) / page;
  const accounted = (as.vmas.find(oldAddr)!.flags & VM_ACCOUNT) !== 0;
  const charged = accounted ? (keepOld ? newSize / page : Math.max(0, extra)) : 0;
  if (charged > 0 && !as.charge(charged)) return -ENOMEM;
  if (!as.vmas.carve(oldAddr, oldEnd)) {
    as.uncharge(charged);
    return -ENOMEM;
  }
  const old = as.vmas.find(oldAddr)!;
  const moved = as.vmas.create({
    start: target,
    end: target + newSize,
    flags: old.flags,
    backing: old.backing,
    pgoff: old.pgoff,
    // No anonymous page yet: the indices start afresh at the new place (Linux's copy_vma
    // resets vm_pgoff of an anonymous VMA without anon_vma), so it may merge there.
    anonDelta: old.anon === null ? 0 : old.anonDelta + (oldAddr - target) / page,
    anon: old.anon,
    name: old.name,
  });
  if (moved === undefined) {
    as.uncharge(charged);
    as.vmas.mergeRange(oldAddr, oldEnd);
    return -ENOMEM;
  }
  // Tables for every entry first, so that the move itself cannot fail half done.
  const vas: number[] = [];
  as.tables.forEachEntry(oldAddr, oldEnd, (va) => {
    vas.push(va);
  });
  for (const va of vas) {
    if (as.tables.entryAddress(target + (va - oldAddr), 'create') < 0) {
      as.tables.pruneEmpty(target, target + newSize);
      as.vmas.destroy(moved);
      as.uncharge(charged);
      as.vmas.mergeRange(oldAddr, oldEnd);
      return -ENOMEM;
    }
  }
  // List the entries again (making tables may have reclaimed pages of the old range), then
  // move each one as it is now.
  const entries: number[] = [];
  as.tables.forEachEntry(oldAddr, oldEnd, (va, pa) => {
    entries.push(va, pa);
  });
  const mmu = as.services.mmu;
  for (let i = 0; i < entries.length; i += 2) {
    const va = entries[i]!;
    const pa = entries[i + 1]!;
    const lo = as.tables.read(pa);
    const hi = as.tables.hi;
    as.tables.write(as.tables.entryAddress(target + (va - oldAddr), 'lookup'), lo, hi);
    as.tables.write(pa, 0, 0);
    mmu.invalidatePage(va, as.asid);
  }
  if (keepOld) {
    // The old range stays mapped with nothing in it: its anonymous pages left with the entries
    // (Linux unlinks its anon_vma), and it is not locked any more.
    shareBacking(as, moved);
    old.anon = null;
    old.flags &= ~VM_LOCKED;
    as.vmas.mergeRange(oldAddr, oldEnd);
  } else {
    // The old VMA is empty now and goes; its charge, its file or shared object and its pages
    // went with the entries (a shared file's dirty pages stay dirty, nothing is written back).
    if (accounted && extra < 0) as.uncharge(-extra);
    as.zapRange(old.start, old.end);
    as.vmas.destroy(old);
  }
  as.vmas.mergeAround(moved);
  as.updateHiwater();
  return target;
}

/**
 * mremap with an old size of 0: a second VMA at `target` (free) of `newSize` bytes mapping the
 * same shared object or file from the page at `oldAddr` on. Nothing moves; its pages fault in
 * from the object. The new address or -ENOMEM.
 */
function duplicateMapping(as: AddressSpace, oldAddr: number, newSize: number, target: number): number {
  const page = as.pageBytes;
  const vma = as.vmas.find(oldAddr)!;
  const dup = as.vmas.create({
    start: target,
    end: target + newSize,
    flags: vma.flags & ~VM_LOCKED,
    backing: vma.backing,
    pgoff: vma.pgoff + (oldAddr - vma.start) / page,
    name: vma.name,
  });
  if (dup === undefined) return -ENOMEM;
  shareBacking(as, dup);
  as.vmas.mergeAround(dup);
  as.updateHiwater();
  return target;
}

/** A new VMA over another's shared object or file takes its own reference to it. */
function shareBacking(as: AddressSpace, vma: Vma): void {
  if (vma.backing.kind === 'shmem') vma.backing.object.users++;
  if (vma.backing.kind === 'file') as.services.fileMapped(vma.backing.file, as);
}

/** mprotect(addr, length, prot): 0 or -errno. The whole range must be mapped (-ENOMEM otherwise). */
export function doMprotect(as: AddressSpace, addr: number, len: number, prot: number): number {
  const page = as.pageBytes;
  if (!Number.isInteger(addr) || addr % page !== 0) return -EINVAL;
  if ((prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) !== 0) return -EINVAL;
  if (!Number.isInteger(len)) return -EINVAL;
  if (len === 0) return 0;
  if (len < 0) return -ENOMEM; // a huge size_t: the range wraps
  const length = pageUp(len, page);
  const end = addr + length;
  if (outsideUser(as, addr, end)) return -ENOMEM;
  if (!coversRange(as, addr, end)) return -ENOMEM;
  const access = protToVmFlags(prot) & (VM_READ | VM_WRITE | VM_EXEC);
  // A shared mapping of a file opened read-only may never become writable.
  for (const v of as.vmas.overlapping(addr, end)) {
    if ((access & VM_WRITE) !== 0 && (v.flags & VM_MAYWRITE) === 0) return -EACCES;
  }
  // Making private memory writable commits it (once: VM_ACCOUNT stays after write is dropped).
  const commits = (v: Vma): boolean =>
    (access & VM_WRITE) !== 0 &&
    (v.flags & (VM_ACCOUNT | VM_SHARED)) === 0 &&
    ((v.flags & VM_NORESERVE) === 0 || as.services.overcommitMode() === 2);
  let newlyCommitted = 0;
  for (const v of as.vmas.overlapping(addr, end)) {
    if (commits(v)) newlyCommitted += (Math.min(v.end, end) - Math.max(v.start, addr)) / page;
  }
  if (newlyCommitted > 0 && !as.charge(newlyCommitted)) return -ENOMEM;
  if (!as.vmas.carve(addr, end)) {
    as.uncharge(newlyCommitted);
    return -ENOMEM;
  }
  for (const v of as.vmas.overlapping(addr, end)) {
    if (commits(v)) v.flags |= VM_ACCOUNT;
    v.flags = (v.flags & ~(VM_READ | VM_WRITE | VM_EXEC)) | access;
    as.changeProtection(v.start, v.end, v.flags);
  }
  as.vmas.mergeRange(addr, end);
  return 0;
}

/** True when VMAs cover [start, end) with no hole. */
function coversRange(as: AddressSpace, start: number, end: number): boolean {
  let at = start;
  for (const v of as.vmas.overlapping(start, end)) {
    if (v.start > at) return false;
    at = v.end;
  }
  return at >= end;
}

/**
 * madvise(addr, length, advice): MADV_DONTNEED drops the pages now (private anonymous memory
 * reads zeros on the next touch; shared memory reloads its contents); MADV_FREE marks private
 * anonymous pages lazily freeable (reclaim may drop them while they stay clean). Hints that
 * need no action succeed. Returns 0 or -errno.
 */
export function doMadvise(as: AddressSpace, addr: number, len: number, advice: number): number {
  const page = as.pageBytes;
  if (!Number.isInteger(addr) || addr % page !== 0 || !Number.isSafeInteger(len) || len < 0) return -EINVAL;
  if (
    ![MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED, MADV_FREE].includes(advice)
  ) {
    return -EINVAL;
  }
  if (len === 0) return 0;
  const end = addr + pageUp(len, page);
  if (addr < 0 && end >= 0) return -EINVAL; // the range wraps past the top (Linux: end < start)
  if (outsideUser(as, addr, end)) return -ENOMEM; // not mapped: outside this address space
  if (!coversRange(as, addr, end)) return -ENOMEM;
  if (advice === MADV_RANDOM || advice === MADV_SEQUENTIAL || advice === MADV_NORMAL) {
    return setReadHint(as, addr, end, advice);
  }
  if (advice === MADV_DONTNEED) {
    for (const v of as.vmas.overlapping(addr, end))
      as.zapRange(Math.max(v.start, addr), Math.min(v.end, end));
  } else if (advice === MADV_FREE) {
    for (const v of as.vmas.overlapping(addr, end)) {
      if (v.backing.kind !== 'anon' || (v.flags & VM_SHARED) !== 0) return -EINVAL;
    }
    for (const v of as.vmas.overlapping(addr, end))
      markLazyFree(as, v, Math.max(v.start, addr), Math.min(v.end, end));
  }
  return 0;
}

/**
 * MADV_RANDOM / MADV_SEQUENTIAL / MADV_NORMAL: the VMAs' read hint (VM_RAND_READ: no readahead
 * on file faults; VM_SEQ_READ: sequential; neither: the default). Splits VMAs at the range's
 * ends as Linux's madvise_update_vma does. 0 or -ENOMEM (no VMA object for a split).
 */
function setReadHint(as: AddressSpace, start: number, end: number, advice: number): number {
  if (!as.vmas.carve(start, end)) return -ENOMEM;
  const hint = advice === MADV_RANDOM ? VM_RAND_READ : advice === MADV_SEQUENTIAL ? VM_SEQ_READ : 0;
  for (const v of as.vmas.overlapping(start, end)) v.flags = (v.flags & ~(VM_RAND_READ | VM_SEQ_READ)) | hint;
  as.vmas.mergeRange(start, end);
  return 0;
}

/** MADV_FREE: clear the dirty bits and mark the frames lazily freeable. */
function markLazyFree(as: AddressSpace, _v: Vma, start: number, end: number): void {
  const { pte, pages, mmu, events } = as.services;
  const t = as.tables;
  const found: number[] = [];
  t.forEachEntry(start, end, (va, pa) => {
    found.push(va, pa);
  });
  for (let i = 0; i < found.length; i += 2) {
    const va = found[i]!;
    const pa = found[i + 1]!;
    const lo = t.read(pa);
    const hi = t.hi;
    if (!pte.isPresent(lo, hi)) continue;
    const pfn = pte.pfnOf(lo, hi);
    if (pages.mapcount[pfn] !== 1) continue; // shared with another process after fork: keep
    const clean = pte.withDirty(lo, hi, false);
    t.write(pa, clean, pte.hi);
    pages.set(pfn, PG_LAZYFREE);
    events.pglazyfree++;
    mmu.invalidatePage(va, as.asid);
  }
}

/**
 * mincore(addr, length): residency of each page of the range, one byte per page (bit 0 set when
 * resident), or -errno (-ENOMEM for an unmapped page or a range outside user space, -EINVAL
 * for an unaligned address).
 */
export function doMincore(as: AddressSpace, addr: number, len: number): Uint8Array | number {
  const page = as.pageBytes;
  if (!Number.isInteger(addr) || addr % page !== 0 || !Number.isInteger(len)) return -EINVAL;
  if (len < 0) return -ENOMEM; // a huge size_t: not a user range (access_ok fails)
  const end = addr + pageUp(len, page);
  if (outsideUser(as, addr, end)) return -ENOMEM;
  if (!coversRange(as, addr, end)) return -ENOMEM;
  const out = new Uint8Array((end - addr) / page);
  const { pte } = as.services;
  as.tables.forEachEntry(addr, end, (va, _pa, lo, hi) => {
    // A PROT_NONE page is still in memory (Linux's pte_present is true for it).
    if (pte.isPresent(lo, hi) || pte.nonPresentTag(lo, hi) === NP_PROTNONE) out[(va - addr) / page] = 1;
  });
  return out;
}
