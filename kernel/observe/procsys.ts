/**
 * System-wide /proc files in Linux's layouts: meminfo (label padded to 16 columns, value in 8,
 * then " kB"), vmstat (`name value` in Linux's key order, then `nr_unstable 0`), swaps, and the
 * allocator files from procmm.ts. Only fields vmlab fills honestly are printed (Linux's own
 * documentation allows missing fields).
 */
import { PG_ANON, PG_FILE, PG_PAGETABLE, PG_SHMEM, PG_SWAPCACHE } from '../mm/page.ts';
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

/** The figures behind /proc/meminfo, in kB, in Linux's order. */
export function meminfoFields(kernel: Kernel): Array<[string, number]> {
  const { buddy, slab, format } = kernel.hw;
  const kb = (pages: number): number => Math.floor((pages * format.pageBytes) / 1024);
  const frames = countFrames(kernel);
  const k = kernelMeminfoKb({ buddy, slab });
  const swap = kernel.swap;
  const swapTotal = swap === null ? 0 : swap.usableSlots;
  const swapFree = swap === null ? 0 : swap.freeSlots;
  const free = buddy.freePages();
  let lowWatermarks = 0;
  for (const z of buddy.zones()) lowWatermarks += z.watermarks.low;
  // Linux's si_mem_available: free - reserves, plus the reclaimable part of slab (half).
  const reclaimableSlabPages = Math.floor((k.SReclaimable * 1024) / format.pageBytes);
  const available = Math.max(
    0,
    free -
      lowWatermarks +
      reclaimableSlabPages -
      Math.min(Math.floor(reclaimableSlabPages / 2), lowWatermarks),
  );
  const lists = kernel.reclaimer.lruCounts();
  return [
    ['MemTotal', kb(buddy.managedPages())],
    ['MemFree', kb(free)],
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
    ['Unevictable', kb(frames.shmem)],
    ['Mlocked', 0],
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
    ['PageTables', k.PageTables],
    ['CommitLimit', kb(kernel.commitLimit())],
    ['Committed_AS', kb(kernel.committedAs)],
  ];
}

/** /proc/meminfo: `Label:` padded to 16 columns, the value in 8, then " kB". */
export function renderMeminfo(kernel: Kernel): string {
  return meminfoFields(kernel)
    .map(([label, value]) => `${`${label}:`.padEnd(16)}${String(value).padStart(8)} kB\n`)
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
  const lists = kernel.reclaimer.lruCounts();
  const { buddy } = kernel.hw;
  const pageTables = buddy.pagesOwnedBy(PG_PAGETABLE);
  const rows: Array<[string, number]> = [
    ['nr_free_pages', buddy.freePages()],
    ['nr_zone_inactive_anon', lists.inactiveAnon],
    ['nr_zone_active_anon', lists.activeAnon],
    ['nr_zone_inactive_file', lists.inactiveFile],
    ['nr_zone_active_file', lists.activeFile],
    ['nr_zone_unevictable', frames.shmem],
    ['nr_zone_write_pending', kernel.pageCache.nrDirty + kernel.pageCache.nrWriteback],
    ['nr_mlock', 0],
    ['nr_inactive_anon', lists.inactiveAnon],
    ['nr_active_anon', lists.activeAnon],
    ['nr_inactive_file', lists.inactiveFile],
    ['nr_active_file', lists.activeFile],
    ['nr_unevictable', frames.shmem],
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
    ['pgalloc_normal', e.pgalloc_normal],
    ['allocstall_normal', e.allocstall_normal],
    ['pgfree', e.pgfree],
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
    ['nr_tlb_local_flush_all', kernel.hw.mmu.dtlb.flushes],
    ['nr_tlb_local_flush_one', kernel.hw.mmu.dtlb.invalidations],
  ];
  return `${rows.map(([k, v]) => `${k} ${v}`).join('\n')}\nnr_unstable 0\n`;
}

/** /proc/swaps (Linux's swap_show layout). */
export function renderSwaps(kernel: Kernel): string {
  let out = 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n';
  const swap = kernel.swap;
  if (swap === null) return out;
  const kb = (slots: number): number => Math.floor((slots * kernel.hw.format.pageBytes) / 1024);
  const name = swap.device.path;
  const size = kb(swap.usableSlots);
  const used = kb(swap.usableSlots - swap.freeSlots);
  const pad = ' '.repeat(name.length < 40 ? 40 - name.length : 1);
  out += `${name}${pad}file\t${size}\t${size < 10000000 ? '\t' : ''}${used}\t${used < 10000000 ? '\t' : ''}-2\n`;
  return out;
}

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
