/**
 * /proc views of kernel memory, byte for byte in Linux's layouts (mm/vmstat.c,
 * mm/slab_common.c; see docs/kernel-memory.md):
 *   /proc/buddyinfo                         renderBuddyinfo
 *   /proc/zoneinfo (memory lines)           renderZoneinfo
 *   /proc/slabinfo (version 2.1)            renderSlabinfo
 *   /sys/kernel/debug/extfrag/extfrag_index renderExtfragIndex
 *   /sys/kernel/debug/extfrag/unusable_index renderUnusableIndex
 * and the kernel-memory figures of /proc/meminfo (kernelMeminfoKb).
 */
import type { BuddyAllocator, ZoneView } from '../mm/buddy.ts';
import type { Kmalloc } from '../mm/kmalloc.ts';
import { PG_PAGETABLE } from '../mm/page.ts';
import type { SlabAllocator } from '../mm/slab.ts';
import { fragmentationIndex, NR_PAGE_ORDERS, unusableFreeIndex } from '../mm/zone.ts';

/** printf("%Nlu") for a non-negative integer: right-aligned in N columns, never truncated. */
function right(value: number, width: number): string {
  return String(value).padStart(width);
}

/** The populated zones (present pages > 0), which buddyinfo and the debugfs files list. */
function populated(buddy: BuddyAllocator): ZoneView[] {
  return buddy.zones().filter((z) => z.presentPages > 0);
}

/**
 * /proc/buddyinfo: per populated zone, `Node 0, zone %8s ` then `%6lu ` free blocks per order
 * 0..10, then a newline (so every line ends with a space). Pages parked on per-CPU lists are not
 * counted, as in Linux.
 */
export function renderBuddyinfo(buddy: BuddyAllocator): string {
  let out = '';
  for (const zone of populated(buddy)) {
    out += `Node 0, zone ${zone.name.padStart(8)} `;
    for (const n of zone.nrFree) out += `${right(n, 6)} `;
    out += '\n';
  }
  return out;
}

/**
 * /proc/zoneinfo in zoneinfo_show_print's layout, for every zone of the layout, populated or
 * not: `Node 0, zone %8s`, the pages free / boost / min / low / high / promo / spanned / present
 * / managed / cma block, `protection: (…)` with the zone's lowmem_reserve against each zone type
 * (MAX_NR_ZONES entries); an unpopulated zone stops there, as in Linux. A populated zone goes on
 * with the per-CPU pageset of its one CPU and, as an SMP kernel prints it, the CPU's
 * `vm stats threshold`, then node_unreclaimable and start_pfn. Linux's per-node and per-zone
 * vmstat counters are left out.
 */
export function renderZoneinfo(buddy: BuddyAllocator): string {
  let out = '';
  for (const z of buddy.zones()) {
    out += `Node 0, zone ${z.name.padStart(8)}`;
    out += `\n  pages free     ${z.freePages}`;
    out += '\n        boost    0';
    out += `\n        min      ${z.watermarks.min}`;
    out += `\n        low      ${z.watermarks.low}`;
    out += `\n        high     ${z.watermarks.high}`;
    out += `\n        promo    ${z.watermarks.promo}`;
    out += `\n        spanned  ${z.spannedPages}`;
    out += `\n        present  ${z.presentPages}`;
    out += `\n        managed  ${z.managedPages}`;
    out += '\n        cma      0';
    out += `\n        protection: (${z.lowmemReserve.join(', ')})`;
    if (z.presentPages === 0) {
      out += '\n';
      continue;
    }
    out += '\n  pagesets';
    out += '\n    cpu: 0';
    out += `\n              count:    ${z.pcpCount}`;
    out += `\n              high:     ${z.pcpHigh}`;
    out += `\n              batch:    ${z.pcpBatch}`;
    out += `\n              high_min: ${z.pcpHigh}`;
    out += `\n              high_max: ${z.pcpHigh}`;
    out += `\n  vm stats threshold: ${z.statThreshold}`;
    out += '\n  node_unreclaimable:  0';
    out += `\n  start_pfn:           ${z.startPfn}`;
    out += '\n';
  }
  return out;
}

/** The thousandths of an index printed as `%2d.%03d ` (extfrag) or `%d.%03d ` (unusable). */
function thousandths(index: number, intWidth: number): string {
  const whole = Math.trunc(index / 1000);
  const frac = Math.abs(index % 1000);
  return `${String(whole).padStart(intWidth)}.${String(frac).padStart(3, '0')} `;
}

/**
 * debugfs extfrag/extfrag_index: per populated zone, `Node 0, zone %8s ` then the
 * fragmentation index of each order as `%2d.%03d ` (-1.000: the order would be satisfied).
 */
export function renderExtfragIndex(buddy: BuddyAllocator): string {
  let out = '';
  for (const zone of populated(buddy)) {
    out += `Node 0, zone ${zone.name.padStart(8)} `;
    for (let order = 0; order < NR_PAGE_ORDERS; order++)
      out += thousandths(fragmentationIndex(zone.nrFree, order), 2);
    out += '\n';
  }
  return out;
}

/** debugfs extfrag/unusable_index: as renderExtfragIndex with the unusable free index, `%d.%03d `. */
export function renderUnusableIndex(buddy: BuddyAllocator): string {
  let out = '';
  for (const zone of populated(buddy)) {
    out += `Node 0, zone ${zone.name.padStart(8)} `;
    for (let order = 0; order < NR_PAGE_ORDERS; order++)
      out += thousandths(unusableFreeIndex(zone.nrFree, order), 0);
    out += '\n';
  }
  return out;
}

export const SLABINFO_HEADER =
  'slabinfo - version: 2.1\n' +
  '# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>' +
  ' : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n';

/**
 * /proc/slabinfo version 2.1: the two header lines, then one row per live cache, newest first
 * (Linux adds caches at the head of slab_caches and prints the list in order):
 * `%-17s %6lu %6lu %6u %4u %4d : tunables %4u %4u %4u : slabdata %6lu %6lu %6lu`. As with SLUB,
 * objsize is the slot size, the tunables and sharedavail are 0, and active_slabs = num_slabs.
 */
export function renderSlabinfo(slab: SlabAllocator): string {
  let out = SLABINFO_HEADER;
  const caches = slab.caches().reverse();
  for (const c of caches) {
    out +=
      `${c.name.padEnd(17)} ${right(c.activeObjects, 6)} ${right(c.totalObjects, 6)} ${right(c.size, 6)}` +
      ` ${right(c.objectsPerSlab, 4)} ${right(2 ** c.order, 4)}` +
      ` : tunables ${right(0, 4)} ${right(0, 4)} ${right(0, 4)}` +
      ` : slabdata ${right(c.nrSlabs, 6)} ${right(c.nrSlabs, 6)} ${right(0, 6)}\n`;
  }
  return out;
}

/** The kernel-memory lines of /proc/meminfo, in kB. */
export interface KernelMeminfoKb {
  /** SReclaimable + SUnreclaim. */
  readonly Slab: number;
  /** Slabs of reclaimable caches. */
  readonly SReclaimable: number;
  /** Slabs of other caches, plus large kmalloc blocks (as Linux counts them). */
  readonly SUnreclaim: number;
  /** Frames flagged PG_PAGETABLE. */
  readonly PageTables: number;
}

/**
 * Slab, SReclaimable, SUnreclaim and PageTables for /proc/meminfo, in kB (pages * page size /
 * 1024, rounded down, after summing pages, as Linux's K() does).
 */
export function kernelMeminfoKb(sources: {
  readonly buddy: BuddyAllocator;
  readonly slab: SlabAllocator;
  readonly kmalloc?: Kmalloc;
}): KernelMeminfoKb {
  const kb = (pages: number): number => Math.floor((pages * sources.buddy.pageBytes) / 1024);
  const reclaimable = sources.slab.slabPages('reclaimable');
  const unreclaimable = sources.slab.slabPages('unreclaimable') + (sources.kmalloc?.largePages ?? 0);
  return {
    Slab: kb(reclaimable + unreclaimable),
    SReclaimable: kb(reclaimable),
    SUnreclaim: kb(unreclaimable),
    PageTables: kb(sources.buddy.pagesOwnedBy(PG_PAGETABLE)),
  };
}
