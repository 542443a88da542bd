/**
 * System-wide /proc files in Linux's layouts: meminfo (every line Linux 6.x prints for the
 * machine's architecture, in its order and formats; 0 for what vmlab has none of), vmstat
 * (`name value` in Linux's key order, a subset: the counters vmlab keeps, then `nr_unstable 0`),
 * swaps, and the allocator files from procmm.ts. Every file is a function of the machine's state
 * alone, so the same seed gives the same bytes.
 */
import { memLayoutOf } from '../mm/memlayout.ts';
import { PG_ANON, PG_FILE, PG_PAGETABLE, PG_SHMEM, PG_SWAPCACHE } from '../mm/page.ts';
import { ZONE_TYPES, type ZoneName } from '../mm/zone.ts';
import type { Kernel } from '../proc/kernel.ts';
import { kernelMeminfoKb, renderBuddyinfo, renderSlabinfo, renderZoneinfo } from './procmm.ts';
import { type ProcContent, renderProc } from './procpid.ts';

/** Counts of user frames by kind (one pass over the frame table). */
export interface FrameCounts {
  anon: number;
  shmem: number;
  swapCached: number;
  /** Page-cache pages of files, and those of them some process maps. */
  file: number;
  fileMapped: number;
}

export function countFrames(kernel: Kernel): FrameCounts {
  const pages = kernel.hw.pages;
  let anon = 0;
  let shmem = 0;
  let swapCached = 0;
  let file = 0;
  let fileMapped = 0;
  for (let pfn = 0; pfn < pages.count; pfn++) {
    const f = pages.flags[pfn]!;
    if ((f & PG_FILE) !== 0) {
      file++;
      if (pages.mapcount[pfn]! > 0) fileMapped++;
      continue;
    }
    if ((f & PG_ANON) === 0) continue;
    if ((f & PG_SHMEM) !== 0) shmem++;
    else anon++;
    if ((f & PG_SWAPCACHE) !== 0) swapCached++;
  }
  return { anon, shmem, swapCached, file, fileMapped };
}

/**
 * Linux's si_mem_available (mm/show_mem.c), in pages: an estimate of what processes can
 * allocate without swapping,
 *
 *   free - totalreserve + pagecache - min(pagecache / 2, wmark_low)
 *                       + reclaimable - min(reclaimable / 2, wmark_low),   at least 0
 *
 * where pagecache is the file LRU (Active(file) + Inactive(file)), reclaimable the slab pages of
 * reclaimable caches, wmark_low the low watermarks of every zone summed (populated or not: an
 * empty Movable zone adds its 32), and totalreserve (calculate_totalreserve_pages in
 * mm/page_alloc.c) each zone's high watermark plus its largest lowmem_reserve, capped at the
 * zone's managed pages. Divisions round down, as C's unsigned ones do.
 */
export function memAvailablePages(kernel: Kernel, fileLruPages: number): number {
  const { buddy, slab } = kernel.hw;
  let wmarkLow = 0;
  let totalReserve = 0;
  for (const z of buddy.zones()) {
    wmarkLow += z.watermarks.low;
    totalReserve += Math.min(z.watermarks.high + Math.max(0, ...z.lowmemReserve), z.managedPages);
  }
  const pageCache = fileLruPages - Math.min(Math.floor(fileLruPages / 2), wmarkLow);
  const slabReclaimable = slab.slabPages('reclaimable');
  const reclaimable = slabReclaimable - Math.min(Math.floor(slabReclaimable / 2), wmarkLow);
  return Math.max(0, buddy.freePages() - totalReserve + pageCache + reclaimable);
}

/**
 * The LRU lists as Linux counts them. Reclaim tracks anonymous and file pages; shared anonymous
 * (shmem) pages it does not track, as vmlab cannot swap them. Linux keeps shmem on the anon LRU
 * (it is swap-backed, so evictable) and adds new pages to the inactive list, keeping Unevictable
 * for mlocked and ramfs pages, which vmlab has none of; so shmem is counted in Inactive(anon)
 * and Unevictable is 0, and Active + Inactive = AnonPages + Shmem + the file LRU, as in Linux.
 */
export function lruLists(kernel: Kernel, frames: FrameCounts): LruLists {
  const lists = kernel.reclaimer.lruCounts();
  return {
    activeAnon: lists.activeAnon,
    inactiveAnon: lists.inactiveAnon + frames.shmem,
    activeFile: lists.activeFile,
    inactiveFile: lists.inactiveFile,
    unevictable: 0,
  };
}

/** Pages on each LRU list (Linux's NR_LRU_LISTS counters). */
export interface LruLists {
  activeAnon: number;
  inactiveAnon: number;
  activeFile: number;
  inactiveFile: number;
  unevictable: number;
}

/**
 * The figures behind /proc/meminfo in meminfo_proc_show's order (fs/proc/meminfo.c, Linux 6.x),
 * in kB except the HugePages_* counts, with the lines the architecture's build has
 * (memlayout.ts): the highmem lines on x86-32, HardwareCorrupted with CONFIG_MEMORY_FAILURE, the
 * transparent huge page lines, Unaccepted on x86-64, the hugetlb lines where huge pages are
 * supported, and x86's DirectMap lines. What vmlab has none of reads 0 (docs/proc.md).
 */
export function meminfoFields(kernel: Kernel): Array<[string, number]> {
  const { buddy, slab, format, mem } = kernel.hw;
  const kb = (pages: number): number => Math.floor((pages * format.pageBytes) / 1024);
  const layout = memLayoutOf(format);
  const memoryBytes = mem.frameCount * format.pageBytes;
  const frames = countFrames(kernel);
  const k = kernelMeminfoKb({ buddy, slab });
  const swap = kernel.swap;
  const swapTotal = swap === null ? 0 : swap.usableSlots;
  const swapFree = swap === null ? 0 : swap.freeSlots;
  const lists = lruLists(kernel, frames);
  const available = memAvailablePages(kernel, lists.activeFile + lists.inactiveFile);
  const rows: Array<[string, number]> = [
    ['MemTotal', kb(buddy.managedPages())],
    ['MemFree', kb(buddy.freePages())],
    ['MemAvailable', kb(available)],
    ['Buffers', 0],
    ['Cached', kb(frames.file + frames.shmem)],
    ['SwapCached', kb(frames.swapCached)],
    ['Active', kb(lists.activeAnon + lists.activeFile)],
    ['Inactive', kb(lists.inactiveAnon + lists.inactiveFile)],
    ['Active(anon)', kb(lists.activeAnon)],
    ['Inactive(anon)', kb(lists.inactiveAnon)],
    ['Active(file)', kb(lists.activeFile)],
    ['Inactive(file)', kb(lists.inactiveFile)],
    ['Unevictable', kb(lists.unevictable)],
    ['Mlocked', 0],
  ];
  if (layout.highmem) rows.push(...highmemRows(kernel, kb));
  rows.push(
    ['SwapTotal', kb(swapTotal)],
    ['SwapFree', kb(swapFree)],
    ['Dirty', kb(kernel.pageCache.nrDirty)],
    ['Writeback', kb(kernel.pageCache.nrWriteback)],
    ['AnonPages', kb(frames.anon)],
    ['Mapped', kb(frames.fileMapped + frames.shmem)],
    ['Shmem', kb(frames.shmem)],
    ['KReclaimable', k.SReclaimable],
    ['Slab', k.Slab],
    ['SReclaimable', k.SReclaimable],
    ['SUnreclaim', k.SUnreclaim],
    ['KernelStack', 0],
    ['PageTables', k.PageTables],
    ['SecPageTables', 0],
    ['NFS_Unstable', 0],
    ['Bounce', 0],
    ['WritebackTmp', 0],
    ['CommitLimit', kb(kernel.commitLimit())],
    ['Committed_AS', kb(kernel.committedAs)],
    ['VmallocTotal', layout.vmallocTotalKb(memoryBytes)],
    ['VmallocUsed', 0],
    ['VmallocChunk', 0],
    ['Percpu', 0],
  );
  if (layout.memoryFailure) rows.push(['HardwareCorrupted', 0]);
  if (layout.transparentHugepages)
    rows.push(
      ['AnonHugePages', 0],
      ['ShmemHugePages', 0],
      ['ShmemPmdMapped', 0],
      ['FileHugePages', 0],
      ['FilePmdMapped', 0],
    );
  if (layout.unacceptedMemory) rows.push(['Unaccepted', 0]);
  if (layout.hugePageBytes > 0)
    rows.push(
      ['HugePages_Total', 0],
      ['HugePages_Free', 0],
      ['HugePages_Rsvd', 0],
      ['HugePages_Surp', 0],
      ['Hugepagesize', layout.hugePageBytes / 1024],
      ['Hugetlb', 0],
    );
  // All of the direct map is in the smallest pages (vmlab models no huge pages).
  const directKb = Math.floor(layout.directMapBytes(memoryBytes) / 1024);
  for (const [i, level] of layout.directMap.entries()) rows.push([level.label, i === 0 ? directKb : 0]);
  return rows;
}

/** CONFIG_HIGHMEM's lines: managed and free pages of the HighMem zone, and of the others. */
function highmemRows(kernel: Kernel, kb: (pages: number) => number): Array<[string, number]> {
  const { buddy } = kernel.hw;
  let highTotal = 0;
  let highFree = 0;
  for (const z of buddy.zones()) {
    if (z.name !== 'HighMem') continue;
    highTotal += z.managedPages;
    highFree += z.freePages;
  }
  return [
    ['HighTotal', kb(highTotal)],
    ['HighFree', kb(highFree)],
    ['LowTotal', kb(buddy.managedPages() - highTotal)],
    ['LowFree', kb(buddy.freePages() - highFree)],
  ];
}

/**
 * One /proc/meminfo line: show_val_kb's `%-16s%8lu kB` (the label and colon padded to 16
 * columns), except `HardwareCorrupted: %5lu kB` and hugetlb_report_meminfo's
 * `HugePages_Total:   %5lu` (the colon, spaces to column 19, the count in 5, no unit).
 */
export function meminfoLine(label: string, value: number): string {
  if (label === 'HardwareCorrupted') return `HardwareCorrupted: ${String(value).padStart(5)} kB\n`;
  if (label.startsWith('HugePages_')) return `${`${label}:`.padEnd(19)}${String(value).padStart(5)}\n`;
  return `${`${label}:`.padEnd(16)}${String(value).padStart(8)} kB\n`;
}

/** /proc/meminfo: meminfoFields, one meminfoLine each. */
export function renderMeminfo(kernel: Kernel): string {
  return meminfoFields(kernel)
    .map(([label, value]) => meminfoLine(label, value))
    .join('');
}

/** /proc/vmstat: Linux's key names in Linux's order, one `name value` per line. */
export function renderVmstat(kernel: Kernel): string {
  const e = kernel.events;
  const act = kernel.reclaimer.policy.activity?.() ?? {
    activations: 0,
    deactivations: 0,
    refaultActivations: 0,
  };
  const frames = countFrames(kernel);
  const lists = lruLists(kernel, frames);
  const { buddy } = kernel.hw;
  const pageTables = buddy.pagesOwnedBy(PG_PAGETABLE);
  const rows: Array<[string, number]> = [
    ['nr_free_pages', buddy.freePages()],
    ['nr_zone_inactive_anon', lists.inactiveAnon],
    ['nr_zone_active_anon', lists.activeAnon],
    ['nr_zone_inactive_file', lists.inactiveFile],
    ['nr_zone_active_file', lists.activeFile],
    ['nr_zone_unevictable', lists.unevictable],
    ['nr_zone_write_pending', kernel.pageCache.nrDirty + kernel.pageCache.nrWriteback],
    ['nr_mlock', 0],
    ['nr_inactive_anon', lists.inactiveAnon],
    ['nr_active_anon', lists.activeAnon],
    ['nr_inactive_file', lists.inactiveFile],
    ['nr_active_file', lists.activeFile],
    ['nr_unevictable', lists.unevictable],
    ['nr_slab_reclaimable', kernel.hw.slab.slabPages('reclaimable')],
    ['nr_slab_unreclaimable', kernel.hw.slab.slabPages('unreclaimable')],
    ['workingset_refault_anon', e.workingset_refault_anon],
    ['workingset_refault_file', e.workingset_refault_file],
    ['workingset_activate_anon', e.workingset_activate_anon + act.refaultActivations],
    ['workingset_activate_file', e.workingset_activate_file],
    ['nr_anon_pages', frames.anon],
    ['nr_mapped', frames.fileMapped + frames.shmem],
    ['nr_file_pages', frames.file + frames.shmem + frames.swapCached],
    ['nr_dirty', kernel.pageCache.nrDirty],
    ['nr_writeback', kernel.pageCache.nrWriteback],
    ['nr_shmem', frames.shmem],
    ['nr_vmscan_write', e.nr_vmscan_write],
    ['nr_dirtied', e.nr_dirtied],
    ['nr_written', e.nr_written],
    ['nr_page_table_pages', pageTables],
    ['nr_swapcached', frames.swapCached],
    ['pgpgin', e.pgpgin],
    ['pgpgout', e.pgpgout],
    ['pswpin', e.pswpin],
    ['pswpout', e.pswpout],
    ...perZone(buddy.zones(), 'pgalloc', (z) => buddy.pgalloc[z.index]!),
    ...perZone(buddy.zones(), 'allocstall', (z) => (z.name === 'Movable' ? e.allocstall_movable : 0)),
    ['pgfree', buddy.pgfree],
    ['pgactivate', e.pgactivate + act.activations],
    ['pgdeactivate', e.pgdeactivate + act.deactivations],
    ['pglazyfree', e.pglazyfree],
    ['pgfault', e.pgfault],
    ['pgmajfault', e.pgmajfault],
    ['pglazyfreed', e.pglazyfreed],
    ['pgreuse', e.pgreuse],
    ['pgsteal_kswapd', e.pgsteal_kswapd],
    ['pgsteal_direct', e.pgsteal_direct],
    ['pgscan_kswapd', e.pgscan_kswapd],
    ['pgscan_direct', e.pgscan_direct],
    ['pgscan_anon', e.pgscan_kswapd + e.pgscan_direct - e.pgscan_file],
    ['pgscan_file', e.pgscan_file],
    ['pgsteal_anon', e.pgsteal_kswapd + e.pgsteal_direct - e.pgsteal_file],
    ['pgsteal_file', e.pgsteal_file],
    ['oom_kill', e.oom_kill],
    // One CPU: no shootdowns are sent or received.
    ['nr_tlb_remote_flush', 0],
    ['nr_tlb_remote_flush_received', 0],
    ['nr_tlb_local_flush_all', kernel.hw.mmu.dtlb.flushes],
    ['nr_tlb_local_flush_one', kernel.hw.mmu.dtlb.invalidations],
  ];
  return `${rows.map(([k, v]) => `${k} ${v}`).join('\n')}\nnr_unstable 0\n`;
}

/**
 * A per-zone vmstat event (TEXTS_FOR_ZONES in mm/vmstat.c): `<event>_<zone>` for every zone
 * type of the layout, in order (pgalloc_dma, pgalloc_dma32, pgalloc_normal, …).
 */
function perZone<Z extends { name: ZoneName }>(
  zones: readonly Z[],
  event: string,
  value: (zone: Z) => number,
): Array<[string, number]> {
  return zones.map((z) => [`${event}_${ZONE_TYPES[z.name].vmstatSuffix}`, value(z)]);
}

/**
 * /proc/swaps in swap_show's layout (mm/swapfile.c): the header, then per area the file name
 * padded with spaces to 40 columns (at least one space), `file\t`, then `\t%lu\t` size and used
 * in kB, each followed by a second TAB below 10000000, and the priority (-2: the first area
 * swapon gives no priority to). The name is the one the machine gives its swap file, never the
 * host path (a scratch file's path differs from run to run).
 */
export function renderSwaps(kernel: Kernel): string {
  let out = 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n';
  const swap = kernel.swap;
  if (swap === null) return out;
  const kb = (slots: number): number => Math.floor((slots * kernel.hw.format.pageBytes) / 1024);
  const name = swapFileName(swap.device.path);
  const size = kb(swap.usableSlots);
  const used = kb(swap.usableSlots - swap.freeSlots);
  const pad = ' '.repeat(name.length < 40 ? 40 - name.length : 1);
  const tab = (kB: number): string => (kB < 10000000 ? '\t' : '');
  out += `${name}${pad}file\t\t${size}\t${tab(size)}${used}\t${tab(used)}-2\n`;
  return out;
}

/**
 * The swap file as the machine names it: `/` and the base name of its host file (`/swapfile`
 * for the default scratch file, `/NAME` for a workload's `swap.file`), with space, TAB, newline
 * and backslash escaped as `\ooo`, as seq_file_path does.
 */
export function swapFileName(hostPath: string): string {
  const base = hostPath.slice(Math.max(hostPath.lastIndexOf('/'), hostPath.lastIndexOf('\\')) + 1);
  const escaped = base.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  return `/${escaped === '' ? 'swapfile' : escaped}`;
}

/** The system-wide files renderProcFile knows (the per-process ones are /proc/PID/NAME). */
export const PROC_SYSTEM_FILES: readonly string[] = [
  '/proc/meminfo',
  '/proc/vmstat',
  '/proc/swaps',
  '/proc/buddyinfo',
  '/proc/zoneinfo',
  '/proc/slabinfo',
];

/** Any /proc file vmlab knows, by path; undefined for others. */
export function renderProcFile(kernel: Kernel, path: string): ProcContent {
  switch (path) {
    case '/proc/meminfo':
      return renderMeminfo(kernel);
    case '/proc/vmstat':
      return renderVmstat(kernel);
    case '/proc/swaps':
      return renderSwaps(kernel);
    case '/proc/buddyinfo':
      return renderBuddyinfo(kernel.hw.buddy);
    case '/proc/zoneinfo':
      return renderZoneinfo(kernel.hw.buddy);
    case '/proc/slabinfo':
      return renderSlabinfo(kernel.hw.slab);
    default:
      return renderProc(kernel, path);
  }
}
