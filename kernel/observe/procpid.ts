/**
 * Per-process /proc files, byte for byte in Linux's layouts (fs/proc/task_mmu.c, fs/proc/array.c,
 * fs/proc/base.c; shared/reference/linux-mm.md §1.5-1.8 and §2.6):
 *   /proc/PID/maps           renderMaps
 *   /proc/PID/status         renderStatus      (Name, State, ids and the memory lines)
 *   /proc/PID/statm          renderStatm
 *   /proc/PID/stat           renderStat        (the 52 fields)
 *   /proc/PID/oom_score      renderOomScore
 *   /proc/PID/oom_score_adj  renderOomScoreAdj
 *   /proc/PID/pagemap        renderPagemap (a range of virtual pages), readPagemap (a byte window)
 *   /proc/PID/smaps          renderSmaps       (maps lines with each VMA's Rss, Pss, Swap …)
 *   /proc/PID/smaps_rollup   renderSmapsRollup (the same figures summed over the address space)
 *   /proc/PID/gc             renderGc (procgc.ts: a managed heap's report; vmlab's own file)
 * and renderProc(kernel, path), which finds the file for a path.
 *
 * A task without an address space (a zombie, a kernel thread) reads as Linux shows one: an empty
 * maps and smaps, a status without memory lines, a statm of zeros, an smaps_rollup whose read
 * fails (ESRCH). A reaped task has no /proc directory.
 */
import { EINVAL, ESRCH } from '../lib/errno.ts';
import { panic } from '../lib/panic.ts';
import type { AddressSpace } from '../mm/mm.ts';
import { PG_ANON, PG_DIRTY, PG_LAZYFREE, PG_REFERENCED, PG_SHMEM } from '../mm/page.ts';
import { NP_PROTNONE, NP_SWAP } from '../mm/pte.ts';
import {
  VM_EXEC,
  VM_GROWSDOWN,
  VM_LOCKED,
  VM_MAYSHARE,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
  type Vma,
} from '../mm/vma.ts';
import type { Kernel } from '../proc/kernel.ts';
import type { Task } from '../proc/task.ts';
import { renderGc } from './procgc.ts';

/** What reading a /proc file gives: text, bytes (pagemap), or undefined (no such file). */
export type ProcContent = string | Uint8Array | undefined;

/** Linux's VM_STACK: VM_GROWSDOWN on every architecture vmlab models. */
const VM_STACK = VM_GROWSDOWN;
/** PF_KTHREAD in task->flags (stat field 9). */
const PF_KTHREAD = 0x00200000;
/** USER_HZ: the unit of the times in /proc/PID/stat. */
export const USER_HZ = 100;
/** RLIM_INFINITY as %lu (stat field 25, rsslim): vmlab has no RSS limit. */
const RLIM_INFINITY = '18446744073709551615';
/** SIGCHLD: the exit signal of every vmlab process (stat field 38). */
const SIGCHLD = 17;
/** Width of the maps header before the name: 25 + sizeof(void *) * 6 - 1 on 64-bit. */
const MAPS_NAME_COLUMN = 72;
/** Device and name Linux shows for a shared anonymous mapping (its shmem file). */
const SHMEM_DEVICE = { major: 0, minor: 1 };
const SHMEM_NAME = '/dev/zero (deleted)';

// ---- address-space figures ----

/**
 * An address space's counters in Linux's units (pages unless named otherwise), computed from
 * its VMAs the way vm_stat_account keeps them:
 *   exec  = (flags & (VM_EXEC | VM_WRITE | VM_STACK)) == VM_EXEC
 *   stack = flags & VM_STACK
 *   data  = (flags & (VM_WRITE | VM_SHARED | VM_STACK)) == VM_WRITE
 */
export interface MmFigures {
  pageBytes: number;
  totalVm: number;
  hiwaterVm: number;
  lockedVm: number;
  dataVm: number;
  stackVm: number;
  execVm: number;
  rssAnon: number;
  rssFile: number;
  rssShmem: number;
  hiwaterRss: number;
  swapEntries: number;
  tablePages: number;
  /** PAGE_ALIGN(end_code) - (start_code & PAGE_MASK), in bytes. */
  textBytes: number;
}

/** The figures of `mm` (no side effects). */
export function mmFigures(mm: AddressSpace): MmFigures {
  const page = mm.pageBytes;
  let totalVm = 0;
  let lockedVm = 0;
  let dataVm = 0;
  let stackVm = 0;
  let execVm = 0;
  for (const v of mm.vmas.all()) {
    const pages = v.length / page;
    totalVm += pages;
    if ((v.flags & VM_LOCKED) !== 0) lockedVm += pages;
    if ((v.flags & (VM_EXEC | VM_WRITE | VM_STACK)) === VM_EXEC) execVm += pages;
    else if ((v.flags & VM_STACK) !== 0) stackVm += pages;
    else if ((v.flags & (VM_WRITE | VM_SHARED)) === VM_WRITE) dataVm += pages;
  }
  const rss = mm.rssAnon + mm.rssFile + mm.rssShmem;
  const textBytes = Math.ceil(mm.endCode / page) * page - Math.floor(mm.startCode / page) * page;
  return {
    pageBytes: page,
    totalVm,
    hiwaterVm: Math.max(totalVm, Math.floor(mm.hiwaterVm / page)),
    lockedVm,
    dataVm,
    stackVm,
    execVm,
    rssAnon: mm.rssAnon,
    rssFile: mm.rssFile,
    rssShmem: mm.rssShmem,
    hiwaterRss: Math.max(rss, mm.hiwaterRss),
    swapEntries: mm.swapEntries,
    tablePages: mm.tables.tablePages,
    textBytes: Math.max(0, textBytes),
  };
}

// ---- /proc/PID/maps ----

/** The name column of one maps line: file path, [heap], [stack], or the VMA's own label. */
export function vmaDisplayName(mm: AddressSpace, vma: Vma): string | undefined {
  if (vma.backing.kind === 'file') return vma.backing.file.path;
  if (vma.backing.kind === 'shmem') return SHMEM_NAME;
  if (vma.start <= mm.brk && vma.end >= mm.startBrk) return '[heap]';
  if (vma.start <= mm.startStack && vma.end >= mm.startStack) return '[stack]';
  // '[heap]' and '[stack]' are derived from the layout above, never shown from a stored label.
  if (vma.name === '[heap]' || vma.name === '[stack]') return undefined;
  return vma.name;
}

/**
 * One maps line, with its newline: `%08lx-%08lx %c%c%c%c %08llx %02x:%02x %lu ` and, for a
 * named VMA, spaces up to column 72, one more space and the name (so the name starts at byte
 * 73). An unnamed line keeps its trailing space.
 */
export function mapsLine(mm: AddressSpace, vma: Vma): string {
  const page = mm.pageBytes;
  const f = vma.flags;
  const perms =
    ((f & VM_READ) !== 0 ? 'r' : '-') +
    ((f & VM_WRITE) !== 0 ? 'w' : '-') +
    ((f & VM_EXEC) !== 0 ? 'x' : '-') +
    ((f & VM_MAYSHARE) !== 0 ? 's' : 'p');
  let offset = 0;
  let major = 0;
  let minor = 0;
  let inode = 0;
  if (vma.backing.kind === 'file') {
    offset = vma.pgoff * page;
    major = Math.floor(vma.backing.file.device / 2 ** 20);
    minor = vma.backing.file.device % 2 ** 20;
    inode = vma.backing.file.ino;
  } else if (vma.backing.kind === 'shmem') {
    offset = vma.pgoff * page;
    major = SHMEM_DEVICE.major;
    minor = SHMEM_DEVICE.minor;
    inode = vma.backing.object.id;
  }
  const head =
    `${hex(vma.start, 8)}-${hex(vma.end, 8)} ${perms} ${hex(offset, 8)} ` +
    `${hex(major, 2)}:${hex(minor, 2)} ${inode} `;
  const name = vmaDisplayName(mm, vma);
  if (name === undefined) return `${head}\n`;
  return `${head.padEnd(MAPS_NAME_COLUMN)} ${name}\n`;
}

/** /proc/PID/maps: one line per VMA in address order; empty without an address space. */
export function renderMaps(task: Task): string {
  const mm = task.mm;
  if (mm === null) return '';
  let out = '';
  for (const v of mm.vmas.all()) out += mapsLine(mm, v);
  return out;
}

// ---- /proc/PID/status ----

/** The State: line's value, from the task's machine state (fs/proc/array.c task_state_array). */
export function taskStateName(task: Task): string {
  switch (task.state) {
    case 'new':
    case 'ready':
    case 'running':
      return 'R (running)';
    case 'blocked.io':
      return 'D (disk sleep)';
    case 'blocked.wait':
    case 'blocked.sleep':
      return 'S (sleeping)';
    case 'zombie':
      return 'Z (zombie)';
    case 'reaped':
      return 'X (dead)';
  }
}

/**
 * /proc/PID/status: Name, State, Tgid, Pid, PPid, then (with an address space) task_mem's lines
 * `Key:\t%8lu kB` from VmPeak to VmSwap and HugetlbPages, then Threads.
 */
export function renderStatus(task: Task): string {
  let out = `Name:\t${task.comm}\n`;
  out += `State:\t${taskStateName(task)}\n`;
  out += `Tgid:\t${task.pid}\nPid:\t${task.pid}\nPPid:\t${task.ppid}\n`;
  if (task.mm !== null) out += statusMemoryLines(mmFigures(task.mm));
  out += 'Threads:\t1\n';
  return out;
}

function statusMemoryLines(m: MmFigures): string {
  const kb = (pages: number): number => Math.floor((pages * m.pageBytes) / 1024);
  const text = Math.min(m.textBytes, m.execVm * m.pageBytes);
  const lib = m.execVm * m.pageBytes - text;
  const rss = m.rssAnon + m.rssFile + m.rssShmem;
  const lines: Array<[string, number]> = [
    ['VmPeak', kb(m.hiwaterVm)],
    ['VmSize', kb(m.totalVm)],
    ['VmLck', kb(m.lockedVm)],
    ['VmPin', 0],
    ['VmHWM', kb(m.hiwaterRss)],
    ['VmRSS', kb(rss)],
    ['RssAnon', kb(m.rssAnon)],
    ['RssFile', kb(m.rssFile)],
    ['RssShmem', kb(m.rssShmem)],
    ['VmData', kb(m.dataVm)],
    ['VmStk', kb(m.stackVm)],
    ['VmExe', Math.floor(text / 1024)],
    ['VmLib', Math.floor(lib / 1024)],
    ['VmPTE', kb(m.tablePages)],
    ['VmSwap', kb(m.swapEntries)],
    ['HugetlbPages', 0],
  ];
  return lines.map(([key, value]) => `${key}:\t${String(value).padStart(8)} kB\n`).join('');
}

// ---- /proc/PID/statm ----

/** /proc/PID/statm: `size resident shared text lib data dt` in pages (lib and dt are 0). */
export function renderStatm(task: Task): string {
  const mm = task.mm;
  if (mm === null) return '0 0 0 0 0 0 0\n';
  const m = mmFigures(mm);
  const shared = m.rssFile + m.rssShmem;
  const resident = shared + m.rssAnon;
  const text = Math.floor(m.textBytes / m.pageBytes);
  return `${m.totalVm} ${resident} ${shared} ${text} 0 ${m.dataVm + m.stackVm} 0\n`;
}

// ---- /proc/PID/stat ----

/** Clock ticks (USER_HZ) in `cycles` of a clock running at `hz`. */
function ticks(cycles: number, hz: number): number {
  return Math.floor((cycles * USER_HZ) / hz);
}

/**
 * /proc/PID/stat: the 52 fields of do_task_stat. vmlab fills what it models (ids, state, fault
 * counts, CPU time as utime, start time, sizes, the layout addresses, the exit code) and prints
 * Linux's value for what it has no notion of (no tty: tpgid -1; no RSS limit: RLIM_INFINITY;
 * priority 20 nice 0; one thread) and 0 for the rest (process groups, signals, stack and
 * instruction pointers, argument and environment addresses). It does not split user and
 * system time: all CPU time is utime.
 */
export function renderStat(kernel: Kernel, task: Task): string {
  const hz = kernel.hw.clock.hz;
  const mm = task.mm;
  const m = mm === null ? undefined : mmFigures(mm);
  const fields: Array<number | string> = [
    /* 1 pid */ task.pid,
    /* 2 comm */ `(${task.comm})`,
    /* 3 state */ taskStateName(task)[0]!,
    /* 4 ppid */ task.ppid,
    /* 5 pgrp */ 0,
    /* 6 session */ 0,
    /* 7 tty_nr */ 0,
    /* 8 tpgid */ -1,
    /* 9 flags */ task.kernelThread ? PF_KTHREAD : 0,
    /* 10 minflt */ task.minFlt,
    /* 11 cminflt */ task.cminFlt,
    /* 12 majflt */ task.majFlt,
    /* 13 cmajflt */ task.cmajFlt,
    /* 14 utime */ ticks(task.cpuCycles, hz),
    /* 15 stime */ 0,
    /* 16 cutime */ 0,
    /* 17 cstime */ 0,
    /* 18 priority */ 20,
    /* 19 nice */ 0,
    /* 20 num_threads */ 1,
    /* 21 itrealvalue */ 0,
    /* 22 starttime */ ticks(task.startTime, hz),
    /* 23 vsize */ m === undefined ? 0 : m.totalVm * m.pageBytes,
    /* 24 rss */ m === undefined ? 0 : m.rssAnon + m.rssFile + m.rssShmem,
    /* 25 rsslim */ RLIM_INFINITY,
    /* 26 startcode */ mm?.startCode ?? 0,
    /* 27 endcode */ mm?.endCode ?? 0,
    /* 28 startstack */ mm?.startStack ?? 0,
    /* 29 kstkesp */ 0,
    /* 30 kstkeip */ 0,
    /* 31 signal */ 0,
    /* 32 blocked */ 0,
    /* 33 sigignore */ 0,
    /* 34 sigcatch */ 0,
    /* 35 wchan */ 0,
    /* 36 nswap */ 0,
    /* 37 cnswap */ 0,
    /* 38 exit_signal */ SIGCHLD,
    /* 39 processor */ 0,
    /* 40 rt_priority */ 0,
    /* 41 policy */ 0,
    /* 42 delayacct_blkio_ticks */ 0,
    /* 43 guest_time */ 0,
    /* 44 cguest_time */ 0,
    /* 45 start_data */ mm?.startData ?? 0,
    /* 46 end_data */ mm?.endData ?? 0,
    /* 47 start_brk */ mm?.startBrk ?? 0,
    /* 48 arg_start */ 0,
    /* 49 arg_end */ 0,
    /* 50 env_start */ 0,
    /* 51 env_end */ 0,
    /* 52 exit_code */ task.isAlive() ? 0 : task.waitStatus,
  ];
  return `${fields.join(' ')}\n`;
}

/** Number of fields in a /proc/PID/stat line. */
export const STAT_FIELDS = 52;

// ---- /proc/PID/oom_score, oom_score_adj ----

/**
 * /proc/PID/oom_score: `(1000 + badness * 1000 / totalpages) * 2 / 3` in C's integer
 * arithmetic (fs/proc/base.c), with totalpages RAM plus swap pages; 0 for an unkillable task
 * (oom_score_adj -1000, no address space).
 */
export function renderOomScore(kernel: Kernel, task: Task): string {
  return `${oomScore(kernel, task)}\n`;
}

/** The oom_score value (see renderOomScore). */
export function oomScore(kernel: Kernel, task: Task): number {
  const badness = kernel.oomBadness(task);
  if (!Number.isFinite(badness)) return 0;
  const totalPages = kernel.oomTotalPages();
  const scaled = Math.trunc((Math.trunc(badness) * 1000) / totalPages);
  return Math.max(0, Math.trunc(((1000 + scaled) * 2) / 3));
}

/** /proc/PID/oom_score_adj: `%d\n`. */
export function renderOomScoreAdj(task: Task): string {
  return `${task.oomScoreAdj}\n`;
}

// ---- /proc/PID/pagemap ----

/*
 * One pagemap entry, 64 bits little-endian (Documentation/admin-guide/mm/pagemap.rst):
 *
 *   63 present | 62 swapped | 61 file or shared anon | 60..57 zero | 56 exclusive | 55 soft-dirty
 *   54..0 PFN when present; when swapped: 4..0 swap type, 54..5 swap offset
 *
 * Written as two 32-bit halves: the flags all live in the high half.
 */
export const PM_PRESENT_HI = 1 << 31;
export const PM_SWAP_HI = 1 << 30;
export const PM_FILE_HI = 1 << 29;
export const PM_MMAP_EXCLUSIVE_HI = 1 << 24;
/** Bits of the swap type below the swap offset (MAX_SWAPFILES_SHIFT). */
const SWAP_TYPE_BITS = 5;
/** Bytes per pagemap entry. */
export const PAGEMAP_ENTRY_BYTES = 8;

export interface PagemapOptions {
  /** 'shown' (a privileged reader, the default) or 'hidden' (PFNs read as 0, as since Linux 4.2). */
  pfn?: 'shown' | 'hidden';
}

/**
 * /proc/PID/pagemap entries for the virtual pages [startVa, endVa) (rounded out to whole
 * pages): 8 bytes per page. Pages outside every VMA, or never touched, read as 0. A task
 * without an address space gives all zeros.
 */
export function renderPagemap(
  kernel: Kernel,
  task: Task,
  range: { startVa: number; endVa: number } & PagemapOptions,
): Uint8Array {
  const page = kernel.hw.format.pageBytes;
  const first = Math.floor(range.startVa / page);
  const last = Math.ceil(range.endVa / page);
  const count = Math.max(0, last - first);
  const out = new Uint8Array(count * PAGEMAP_ENTRY_BYTES);
  const view = new DataView(out.buffer);
  const mm = task.mm;
  if (mm === null) return out;
  const vaLimit = 2 ** kernel.hw.format.vaBits;
  for (let i = 0; i < count; i++) {
    const va = (first + i) * page;
    if (va >= vaLimit || mm.vmas.find(va) === undefined) continue;
    const [lo, hi] = pagemapEntry(kernel, mm, va, range.pfn ?? 'shown');
    view.setUint32(i * PAGEMAP_ENTRY_BYTES, lo, true);
    view.setUint32(i * PAGEMAP_ENTRY_BYTES + 4, hi, true);
  }
  return out;
}

/**
 * A read of /proc/PID/pagemap at byte `offsetBytes` for `lengthBytes`, with Linux's rule: both
 * multiples of 8, else -EINVAL. Entries past the end of the address space read as 0.
 */
export function readPagemap(
  kernel: Kernel,
  task: Task,
  window: { offsetBytes: number; lengthBytes: number } & PagemapOptions,
): Uint8Array | number {
  const { offsetBytes, lengthBytes } = window;
  if (!Number.isSafeInteger(offsetBytes) || !Number.isSafeInteger(lengthBytes)) return -EINVAL;
  if (offsetBytes < 0 || lengthBytes < 0) return -EINVAL;
  if (offsetBytes % PAGEMAP_ENTRY_BYTES !== 0 || lengthBytes % PAGEMAP_ENTRY_BYTES !== 0) return -EINVAL;
  const page = kernel.hw.format.pageBytes;
  const firstPage = offsetBytes / PAGEMAP_ENTRY_BYTES;
  const pages = lengthBytes / PAGEMAP_ENTRY_BYTES;
  return renderPagemap(kernel, task, {
    startVa: firstPage * page,
    endVa: (firstPage + pages) * page,
    pfn: window.pfn,
  });
}

/** The entry for `va` (inside a VMA) as [lo, hi] halves. */
function pagemapEntry(
  kernel: Kernel,
  mm: AddressSpace,
  va: number,
  pfnView: 'shown' | 'hidden',
): [number, number] {
  const pa = mm.tables.entryAddress(va, 'lookup');
  if (pa < 0) return [0, 0];
  const lo = mm.tables.read(pa);
  const hi = mm.tables.hi;
  const pte = kernel.pte;
  if (pte.isNone(lo, hi)) return [0, 0];
  let pfn: number;
  if (pte.isPresent(lo, hi)) {
    pfn = pte.pfnOf(lo, hi);
  } else if (pte.nonPresentTag(lo, hi) === NP_PROTNONE) {
    pfn = pte.nonPresentPayload(lo, hi); // PROT_NONE pages are present to Linux (pte_protnone)
  } else if (pte.nonPresentTag(lo, hi) === NP_SWAP) {
    const frame = pfnView === 'shown' ? pte.nonPresentPayload(lo, hi) * 2 ** SWAP_TYPE_BITS : 0;
    return [frame % 2 ** 32, (PM_SWAP_HI | Math.floor(frame / 2 ** 32)) >>> 0];
  } else {
    return [0, 0];
  }
  const pages = kernel.hw.pages;
  let flags = PM_PRESENT_HI;
  if (!pages.has(pfn, PG_ANON) || pages.has(pfn, PG_SHMEM)) flags |= PM_FILE_HI;
  if (pages.mapcount[pfn] === 1) flags |= PM_MMAP_EXCLUSIVE_HI;
  const shown = pfnView === 'shown' ? pfn : 0;
  return [shown % 2 ** 32, (flags | Math.floor(shown / 2 ** 32)) >>> 0];
}

/** A decoded pagemap entry (for tests and tools). */
export interface PagemapEntry {
  present: boolean;
  swapped: boolean;
  file: boolean;
  exclusive: boolean;
  softDirty: boolean;
  /** PFN when present, else 0. */
  pfn: number;
  /** Swap type and offset when swapped, else 0. */
  swapType: number;
  swapOffset: number;
}

/** Decode entry `index` of a pagemap buffer. */
export function decodePagemapEntry(bytes: Uint8Array, index: number): PagemapEntry {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lo = view.getUint32(index * PAGEMAP_ENTRY_BYTES, true);
  const hi = view.getUint32(index * PAGEMAP_ENTRY_BYTES + 4, true);
  const frame = lo + (hi & 0x7fffff) * 2 ** 32; // bits 0..54
  const present = (hi & PM_PRESENT_HI) !== 0;
  const swapped = (hi & PM_SWAP_HI) !== 0;
  return {
    present,
    swapped,
    file: (hi & PM_FILE_HI) !== 0,
    exclusive: (hi & PM_MMAP_EXCLUSIVE_HI) !== 0,
    softDirty: (hi & (1 << 23)) !== 0,
    pfn: present ? frame : 0,
    swapType: swapped ? frame % 2 ** SWAP_TYPE_BITS : 0,
    swapOffset: swapped ? Math.floor(frame / 2 ** SWAP_TYPE_BITS) : 0,
  };
}

// ---- /proc/PID/smaps, smaps_rollup ----

/*
 * Linux's smaps accounting (fs/proc/task_mmu.c smap_gather_stats, smaps_pte_entry,
 * smaps_account, smaps_page_accumulate), page by page over the VMA's entries:
 *
 *   present (or kept under PROT_NONE, which Linux's pte_present counts):
 *     Rss += PAGE; Anonymous += PAGE for an anonymous page (not shmem), LazyFree too when it
 *     was given MADV_FREE and neither the entry nor the page is dirty; Referenced += PAGE when
 *     the entry is accessed or the page PG_REFERENCED;
 *     refcount == 1: private, pss = PAGE << PSS_SHIFT
 *     else:          mapcount >= 2: shared, pss = (PAGE << PSS_SHIFT) / mapcount
 *                    mapcount <  2: private, pss = PAGE << PSS_SHIFT
 *     dirty (entry or PG_DIRTY): Private_Dirty or Shared_Dirty, Pss_Dirty += pss;
 *     else Private_Clean or Shared_Clean; Pss_Anon, Pss_Shmem or Pss_File += pss by the
 *     page's kind; Locked += pss in a VM_LOCKED VMA
 *   swap entry:
 *     Swap += PAGE; SwapPss += (PAGE << PSS_SHIFT) / n when n = swp_swapcount >= 2 (the
 *     slot's references from page tables, the swap cache's one left out), else PAGE << PSS_SHIFT
 *
 * The Pss figures stay in fixed point (bytes << PSS_SHIFT) until they are printed as
 * pss >> PSS_SHIFT >> 10 kB, so that shares of a page are not rounded away one by one.
 * vmlab has no KSM, transparent or hugetlb pages: those lines read 0, and THPeligible 0 (as
 * Linux with transparent_hugepage=never). Shared anonymous pages never go to swap here, so
 * shmem_swap_usage adds nothing to Swap.
 */

/** Fixed-point shift of the Pss counters (Linux's PSS_SHIFT). */
export const PSS_SHIFT = 12;

/**
 * Linux's struct mem_size_stats for one VMA or a whole address space: sizes in bytes, the
 * pss* and swapPss figures in bytes << PSS_SHIFT.
 *   resident == sharedClean + sharedDirty + privateClean + privateDirty
 *   pss == pssAnon + pssFile + pssShmem
 */
export interface MemSizeStats {
  resident: number;
  sharedClean: number;
  sharedDirty: number;
  privateClean: number;
  privateDirty: number;
  referenced: number;
  anonymous: number;
  ksm: number;
  lazyfree: number;
  anonymousThp: number;
  shmemThp: number;
  fileThp: number;
  sharedHugetlb: number;
  privateHugetlb: number;
  swap: number;
  pss: number;
  pssAnon: number;
  pssFile: number;
  pssShmem: number;
  pssDirty: number;
  pssLocked: number;
  swapPss: number;
}

/** All-zero statistics. */
export function emptyMemSizeStats(): MemSizeStats {
  return {
    resident: 0,
    sharedClean: 0,
    sharedDirty: 0,
    privateClean: 0,
    privateDirty: 0,
    referenced: 0,
    anonymous: 0,
    ksm: 0,
    lazyfree: 0,
    anonymousThp: 0,
    shmemThp: 0,
    fileThp: 0,
    sharedHugetlb: 0,
    privateHugetlb: 0,
    swap: 0,
    pss: 0,
    pssAnon: 0,
    pssFile: 0,
    pssShmem: 0,
    pssDirty: 0,
    pssLocked: 0,
    swapPss: 0,
  };
}

/**
 * Add the pages of `vma` (in `mm`) to `into`, as smap_gather_stats walks them, and return it
 * (new statistics without `into`). Reads the page tables and frame metadata only.
 */
export function smapGatherStats(
  kernel: Kernel,
  where: { mm: AddressSpace; vma: Vma; into?: MemSizeStats },
): MemSizeStats {
  const { mm, vma } = where;
  const mss = where.into ?? emptyMemSizeStats();
  const locked = (vma.flags & VM_LOCKED) !== 0;
  mm.tables.forEachEntry(vma.start, vma.end, (_va, _pa, lo, hi) => {
    smapsPteEntry(kernel, mss, { lo, hi, locked });
  });
  return mss;
}

/** One non-none entry (smaps_pte_entry): a mapped frame, or a swap slot. */
function smapsPteEntry(
  kernel: Kernel,
  mss: MemSizeStats,
  entry: { lo: number; hi: number; locked: boolean },
): void {
  const { lo, hi, locked } = entry;
  const pte = kernel.pte;
  if (pte.isPresent(lo, hi)) {
    const pfn = pte.pfnOf(lo, hi);
    smapsAccount(kernel, mss, { pfn, young: pte.isAccessed(lo, hi), dirty: pte.isDirty(lo, hi), locked });
    return;
  }
  const tag = pte.nonPresentTag(lo, hi);
  if (tag === NP_PROTNONE) {
    // Present to Linux; the entry's dirty bit went to PG_DIRTY when PROT_NONE was applied.
    const pfn = pte.nonPresentPayload(lo, hi);
    smapsAccount(kernel, mss, { pfn, young: false, dirty: false, locked });
  } else if (tag === NP_SWAP) {
    smapsSwapEntry(kernel, mss, pte.nonPresentPayload(lo, hi));
  }
}

/** A swap entry: Swap, and SwapPss shared by the page tables naming the slot. */
function smapsSwapEntry(kernel: Kernel, mss: MemSizeStats, slot: number): void {
  const swap = kernel.swap;
  if (swap === null) panic(`smapsSwapEntry: swap entry for slot ${slot} without a swap area`);
  const page = kernel.hw.format.pageBytes;
  // swp_swapcount: the slot's count without the swap cache's reference.
  const mapcount = swap.count[slot]! - (swap.cachePfn[slot]! >= 0 ? 1 : 0);
  mss.swap += page;
  const full = page * 2 ** PSS_SHIFT;
  mss.swapPss += mapcount >= 2 ? Math.floor(full / mapcount) : full;
}

/** A mapped frame (smaps_account, one base page). */
function smapsAccount(
  kernel: Kernel,
  mss: MemSizeStats,
  entry: { pfn: number; young: boolean; dirty: boolean; locked: boolean },
): void {
  const { pfn } = entry;
  const pages = kernel.hw.pages;
  const size = kernel.hw.format.pageBytes;
  const flags = pages.flags[pfn]!;
  const kind = smapsPageKind(flags);
  const pageDirty = (flags & PG_DIRTY) !== 0;
  if (kind === 'anon') {
    mss.anonymous += size;
    if ((flags & PG_LAZYFREE) !== 0 && !entry.dirty && !pageDirty) mss.lazyfree += size;
  }
  mss.resident += size;
  if (entry.young || (flags & PG_REFERENCED) !== 0) mss.referenced += size;
  const full = size * 2 ** PSS_SHIFT;
  const dirty = entry.dirty || pageDirty;
  if (pages.refcount[pfn] === 1) {
    smapsPageAccumulate(mss, { kind, size, pss: full, dirty, locked: entry.locked, sharing: 'private' });
    return;
  }
  const mapcount = pages.mapcount[pfn]!;
  smapsPageAccumulate(mss, {
    kind,
    size,
    pss: mapcount >= 2 ? Math.floor(full / mapcount) : full,
    dirty,
    locked: entry.locked,
    sharing: mapcount >= 2 ? 'shared' : 'private',
  });
}

/** Linux's folio kinds for the Pss split: anonymous, shmem (swap-backed, not anon), or file. */
function smapsPageKind(flags: number): 'anon' | 'shmem' | 'file' {
  if ((flags & PG_SHMEM) !== 0) return 'shmem';
  if ((flags & PG_ANON) !== 0) return 'anon';
  return 'file';
}

/** smaps_page_accumulate: the Pss split and the shared/private, clean/dirty sizes. */
function smapsPageAccumulate(
  mss: MemSizeStats,
  p: {
    kind: 'anon' | 'shmem' | 'file';
    size: number;
    pss: number;
    dirty: boolean;
    locked: boolean;
    sharing: 'private' | 'shared';
  },
): void {
  mss.pss += p.pss;
  if (p.kind === 'anon') mss.pssAnon += p.pss;
  else if (p.kind === 'shmem') mss.pssShmem += p.pss;
  else mss.pssFile += p.pss;
  if (p.locked) mss.pssLocked += p.pss;
  if (p.dirty) {
    mss.pssDirty += p.pss;
    if (p.sharing === 'private') mss.privateDirty += p.size;
    else mss.sharedDirty += p.size;
  } else if (p.sharing === 'private') {
    mss.privateClean += p.size;
  } else {
    mss.sharedClean += p.size;
  }
}

/** `val >> 10` for byte counts past 32 bits. */
function kB(bytes: number): number {
  return Math.floor(bytes / 1024);
}

/** `pss >> PSS_SHIFT`: a fixed-point figure back in bytes. */
function pssBytes(pss: number): number {
  return Math.floor(pss / 2 ** PSS_SHIFT);
}

/** Column where an smaps value ends: a 16-byte label and %8lu (7 after "Private_Hugetlb: "). */
const SMAPS_VALUE_END = 24;

/** `seq_put_decimal_ull_width(m, label, bytes >> 10, …)` and the " kB\n" that follows. */
function smapsLine(label: string, bytes: number): string {
  return `${label}${String(kB(bytes)).padStart(SMAPS_VALUE_END - label.length)} kB\n`;
}

/** __show_smap: Rss to Locked; Pss_Anon, Pss_File and Pss_Shmem in the rollup only. */
function showSmapFields(mss: MemSizeStats, mode: 'vma' | 'rollup'): string {
  let out = smapsLine('Rss:            ', mss.resident);
  out += smapsLine('Pss:            ', pssBytes(mss.pss));
  out += smapsLine('Pss_Dirty:      ', pssBytes(mss.pssDirty));
  if (mode === 'rollup') {
    out += smapsLine('Pss_Anon:       ', pssBytes(mss.pssAnon));
    out += smapsLine('Pss_File:       ', pssBytes(mss.pssFile));
    out += smapsLine('Pss_Shmem:      ', pssBytes(mss.pssShmem));
  }
  out += smapsLine('Shared_Clean:   ', mss.sharedClean);
  out += smapsLine('Shared_Dirty:   ', mss.sharedDirty);
  out += smapsLine('Private_Clean:  ', mss.privateClean);
  out += smapsLine('Private_Dirty:  ', mss.privateDirty);
  out += smapsLine('Referenced:     ', mss.referenced);
  out += smapsLine('Anonymous:      ', mss.anonymous);
  out += smapsLine('KSM:            ', mss.ksm);
  out += smapsLine('LazyFree:       ', mss.lazyfree);
  out += smapsLine('AnonHugePages:  ', mss.anonymousThp);
  out += smapsLine('ShmemPmdMapped: ', mss.shmemThp);
  out += smapsLine('FilePmdMapped:  ', mss.fileThp);
  out += smapsLine('Shared_Hugetlb: ', mss.sharedHugetlb);
  out += smapsLine('Private_Hugetlb: ', mss.privateHugetlb);
  out += smapsLine('Swap:           ', mss.swap);
  out += smapsLine('SwapPss:        ', pssBytes(mss.swapPss));
  out += smapsLine('Locked:         ', pssBytes(mss.pssLocked));
  return out;
}

/**
 * VmFlags mnemonics by bit (show_smap_vma_flags, Linux 6.x on x86-64 with soft-dirty). The VM_*
 * values of kernel/mm/vma.ts are Linux's, so a flag's bit picks its name:
 *   0-7    VM_READ VM_WRITE VM_EXEC VM_SHARED VM_MAYREAD VM_MAYWRITE VM_MAYEXEC VM_MAYSHARE
 *   8-15   VM_GROWSDOWN VM_UFFD_MISSING VM_PFNMAP (bit 11 unnamed) VM_UFFD_WP VM_LOCKED VM_IO
 *          VM_SEQ_READ
 *   16-23  VM_RAND_READ VM_DONTCOPY VM_DONTEXPAND VM_LOCKONFAULT VM_ACCOUNT VM_NORESERVE
 *          VM_HUGETLB VM_SYNC
 *   24-31  VM_ARCH_1 VM_WIPEONFORK VM_DONTDUMP VM_SOFTDIRTY VM_MIXEDMAP VM_HUGEPAGE
 *          VM_NOHUGEPAGE VM_MERGEABLE
 * Bit 11 (VM_DENYWRITE until 5.15) and the high bits vmlab has no flags for print "??", as an
 * unknown flag does in Linux.
 */
// biome-ignore format: eight flags a row, in bit order
const VM_FLAG_MNEMONICS: readonly string[] = [
  'rd', 'wr', 'ex', 'sh', 'mr', 'mw', 'me', 'ms',
  'gd', 'um', 'pf', '??', 'uw', 'lo', 'io', 'sr',
  'rr', 'dc', 'de', 'lf', 'ac', 'nr', 'ht', 'sf',
  'ar', 'wf', 'dd', 'sd', 'mm', 'hg', 'nh', 'mg',
];

/** The VmFlags line: `VmFlags: ` and `%s ` per set flag in bit order (a trailing space). */
export function vmFlagsLine(flags: number): string {
  const value = flags < 0 ? flags >>> 0 : flags; // bit 31 set by a 32-bit `|` reads as negative
  let out = 'VmFlags: ';
  for (let bit = 0; bit < 53 && 2 ** bit <= value; bit++) {
    if (Math.floor(value / 2 ** bit) % 2 === 1) out += `${VM_FLAG_MNEMONICS[bit] ?? '??'} `;
  }
  return `${out}\n`;
}

/**
 * One VMA's smaps entry (show_smap): the maps line, Size, KernelPageSize, MMUPageSize (the
 * machine's page size), __show_smap's lines, THPeligible and VmFlags.
 */
function showSmap(kernel: Kernel, mm: AddressSpace, vma: Vma): string {
  const mss = smapGatherStats(kernel, { mm, vma });
  const page = kernel.hw.format.pageBytes;
  let out = mapsLine(mm, vma);
  out += smapsLine('Size:           ', vma.length);
  out += smapsLine('KernelPageSize: ', page);
  out += smapsLine('MMUPageSize:    ', page);
  out += showSmapFields(mss, 'vma');
  out += `THPeligible:    ${String(0).padStart(8)}\n`; // no transparent huge pages
  out += vmFlagsLine(vma.flags);
  return out;
}

/** /proc/PID/smaps: each VMA's maps line and its memory figures; empty without an address space. */
export function renderSmaps(kernel: Kernel, task: Task): string {
  const mm = task.mm;
  if (mm === null) return '';
  let out = '';
  for (const v of mm.vmas.all()) out += showSmap(kernel, mm, v);
  return out;
}

/**
 * /proc/PID/smaps_rollup (show_smaps_rollup): the figures of every VMA summed (Pss in fixed
 * point before the shift), under a header from the first VMA's start to the last one's end,
 * `---p 00000000 00:00 0` and the name `[rollup]` at byte 73; 00000000-00000000 for an empty
 * address space. Without an address space Linux's read fails: -ESRCH.
 */
export function renderSmapsRollup(kernel: Kernel, task: Task): string | number {
  const mm = task.mm;
  if (mm === null) return -ESRCH;
  const mss = emptyMemSizeStats();
  const vmas = mm.vmas.all();
  for (const v of vmas) smapGatherStats(kernel, { mm, vma: v, into: mss });
  const start = vmas[0]?.start ?? 0;
  const end = vmas.at(-1)?.end ?? 0;
  const head = `${hex(start, 8)}-${hex(end, 8)} ---p 00000000 00:00 0 `;
  return `${head.padEnd(MAPS_NAME_COLUMN)} [rollup]\n${showSmapFields(mss, 'rollup')}`;
}

// ---- the dispatcher ----

const PROC_PID_PATH = /^\/proc\/(\d+|self)\/([a-z_]+)$/;

/**
 * The contents of the /proc file at `path`, or undefined when there is no such file (unknown
 * name, no such pid, a reaped task, `self` with no current task). `/proc/PID/pagemap` reads the
 * page range given in `options.pagemap` (empty without one); see readPagemap for byte windows.
 * An smaps_rollup that cannot be read (no address space: ESRCH) is undefined too.
 */
export function renderProc(
  kernel: Kernel,
  path: string,
  options: { pagemap?: { startVa: number; endVa: number } & PagemapOptions } = {},
): ProcContent {
  const match = PROC_PID_PATH.exec(path);
  if (match === null) return undefined;
  const task = match[1] === 'self' ? kernel.current : kernel.tasks.get(Number(match[1]));
  if (task === null || task === undefined || task.state === 'reaped') return undefined;
  switch (match[2]) {
    case 'maps':
      return renderMaps(task);
    case 'status':
      return renderStatus(task);
    case 'statm':
      return renderStatm(task);
    case 'stat':
      return renderStat(kernel, task);
    case 'oom_score':
      return renderOomScore(kernel, task);
    case 'oom_score_adj':
      return renderOomScoreAdj(task);
    case 'pagemap':
      return renderPagemap(kernel, task, options.pagemap ?? { startVa: 0, endVa: 0 });
    case 'smaps':
      return renderSmaps(kernel, task);
    case 'smaps_rollup': {
      const rollup = renderSmapsRollup(kernel, task);
      return typeof rollup === 'string' ? rollup : undefined;
    }
    case 'gc':
      return renderGc(task);
    default:
      return undefined;
  }
}

/** `%0Nlx`: lower-case hex, at least `width` digits. */
function hex(value: number, width: number): string {
  return value.toString(16).padStart(width, '0');
}
