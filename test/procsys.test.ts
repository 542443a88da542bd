/**
 * System-wide /proc files (kernel/observe/procsys.ts): golden files for a small deterministic
 * machine (test/fixtures/proc/writer.*.txt), and hand-checked layout rules: meminfo's
 * `%-16s%8lu kB` rows in Linux's order, vmstat's keys in the order of Linux's vmstat_text[],
 * swaps' header, tabs and emulated file name. Figures: MemAvailable as si_mem_available,
 * shmem on the anon LRU (Unevictable 0), Cached, Mapped, Dirty and Writeback from the page
 * cache. Then `vmlab proc`: files byte for byte, unknown files an error with exit status 2.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveFormat } from '../kernel/boot/formatfile.ts';
import { memLayoutOf } from '../kernel/mm/memlayout.ts';
import {
  memAvailablePages,
  meminfoFields,
  meminfoLine,
  renderMeminfo,
  renderProcFile,
  renderSwaps,
  renderVmstat,
  swapFileName,
} from '../kernel/observe/procsys.ts';
import type { Kernel } from '../kernel/proc/kernel.ts';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  MS_ASYNC,
  O_CREAT,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  type UserMain,
} from '../kernel/proc/uapi.ts';
import { bootTestMachine, PAGE, type TestMachine } from './helpers/kernel.ts';

const RW = PROT_READ | PROT_WRITE;

/** Machines booted by a test, shut down after it (their scratch swap files and folders go too). */
const booted: TestMachine[] = [];
afterEach(() => {
  for (const m of booted.splice(0)) m.shutdown();
});

/** bootTestMachine, shut down after the test. */
function boot(options: Parameters<typeof bootTestMachine>[0]): TestMachine {
  const m = bootTestMachine(options);
  booted.push(m);
  return m;
}

/**
 * writer: touches 6 of 8 private anonymous pages and 1 of 2 shared anonymous pages; writes 3
 * pages to /data.bin with write() (left dirty) and maps it shared to read its page 1; writes 2
 * pages to /log.bin and fsyncs them (clean), then dirties page 0 through a shared mapping and
 * starts its writeback with msync(MS_ASYNC); then sleeps.
 *
 *   anonymous 6, shmem 1, page cache 5 (data 3 dirty, log 2: 1 under writeback), mapped file 2
 */
const writer: UserMain = function* ({ sys, cpu }) {
  const anon = sys.mmap(0, 8 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  for (let p = 0; p < 6; p++) {
    cpu.store8(anon + p * PAGE, p + 1);
    yield;
  }
  const shm = sys.mmap(0, 2 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  cpu.store8(shm, 7);
  const data = sys.open('/data.bin', O_CREAT | O_RDWR);
  if (sys.write(data, anon, 3 * PAGE) !== 3 * PAGE) return 1;
  const map = sys.mmap(0, 3 * PAGE, PROT_READ, MAP_SHARED, data, 0);
  if (cpu.load8(map + PAGE) !== 2) return 2;
  const log = sys.open('/log.bin', O_CREAT | O_RDWR);
  if (sys.write(log, anon, 2 * PAGE) !== 2 * PAGE) return 3;
  if (sys.fsync(log) !== 0) return 4;
  yield;
  const logMap = sys.mmap(0, 2 * PAGE, RW, MAP_SHARED, log, 0);
  cpu.store8(logMap, 9);
  if (sys.msync(logMap, 2 * PAGE, MS_ASYNC) !== 0) return 5;
  yield* sys.nanosleep(1e9);
  return 0;
};

/** A 16 MiB machine with 4 MiB of swap, run until writer sleeps. */
function bootWriter(): TestMachine {
  const m = boot({ memoryMiB: 16, swapMiB: 4 });
  const t = m.start(writer, { name: 'writer' });
  for (let i = 0; i < 10_000 && t.state !== 'blocked.sleep'; i++)
    m.kernel.run({ untilCycles: m.clock.now + 10_000 });
  expect(t.state).toBe('blocked.sleep');
  m.kernel.checkInvariants();
  return m;
}

function field(kernel: Kernel, name: string): number {
  const row = meminfoFields(kernel).find(([k]) => k === name);
  if (row === undefined) throw new Error(`no meminfo field ${name}`);
  return row[1];
}

/** True when `keys` appear in `order` in the same relative order (a subsequence). */
function inOrder(keys: readonly string[], order: readonly string[]): boolean {
  let at = 0;
  for (const k of keys) {
    at = order.indexOf(k, at);
    if (at < 0) return false;
    at++;
  }
  return true;
}

/**
 * /proc/meminfo's fields in meminfo_proc_show's order (fs/proc/meminfo.c, Linux 6.x), every
 * config-dependent line included (HighTotal… under CONFIG_HIGHMEM, MmapCopy without an MMU,
 * Zswap, ShadowCallStack, EarlyMemtestBad, CMA, the hugetlb lines, x86's DirectMap).
 */
const LINUX_MEMINFO = [
  'MemTotal',
  'MemFree',
  'MemAvailable',
  'Buffers',
  'Cached',
  'SwapCached',
  'Active',
  'Inactive',
  'Active(anon)',
  'Inactive(anon)',
  'Active(file)',
  'Inactive(file)',
  'Unevictable',
  'Mlocked',
  'HighTotal',
  'HighFree',
  'LowTotal',
  'LowFree',
  'MmapCopy',
  'SwapTotal',
  'SwapFree',
  'Zswap',
  'Zswapped',
  'Dirty',
  'Writeback',
  'AnonPages',
  'Mapped',
  'Shmem',
  'KReclaimable',
  'Slab',
  'SReclaimable',
  'SUnreclaim',
  'KernelStack',
  'ShadowCallStack',
  'PageTables',
  'SecPageTables',
  'NFS_Unstable',
  'Bounce',
  'WritebackTmp',
  'CommitLimit',
  'Committed_AS',
  'VmallocTotal',
  'VmallocUsed',
  'VmallocChunk',
  'Percpu',
  'EarlyMemtestBad',
  'HardwareCorrupted',
  'AnonHugePages',
  'ShmemHugePages',
  'ShmemPmdMapped',
  'FileHugePages',
  'FilePmdMapped',
  'CmaTotal',
  'CmaFree',
  'Unaccepted',
  'HugePages_Total',
  'HugePages_Free',
  'HugePages_Rsvd',
  'HugePages_Surp',
  'Hugepagesize',
  'Hugetlb',
  'DirectMap4k',
  'DirectMap2M',
  'DirectMap4M',
  'DirectMap1G',
];

/** A subset of vmstat_text[] (mm/vmstat.c, Linux 6.x), in its order; nr_unstable comes last. */
const LINUX_VMSTAT = [
  // enum zone_stat_item
  'nr_free_pages',
  'nr_zone_inactive_anon',
  'nr_zone_active_anon',
  'nr_zone_inactive_file',
  'nr_zone_active_file',
  'nr_zone_unevictable',
  'nr_zone_write_pending',
  'nr_mlock',
  'nr_bounce',
  'nr_zspages',
  'nr_free_cma',
  // enum node_stat_item
  'nr_inactive_anon',
  'nr_active_anon',
  'nr_inactive_file',
  'nr_active_file',
  'nr_unevictable',
  'nr_slab_reclaimable',
  'nr_slab_unreclaimable',
  'nr_isolated_anon',
  'nr_isolated_file',
  'workingset_nodes',
  'workingset_refault_anon',
  'workingset_refault_file',
  'workingset_activate_anon',
  'workingset_activate_file',
  'workingset_restore_anon',
  'workingset_restore_file',
  'workingset_nodereclaim',
  'nr_anon_pages',
  'nr_mapped',
  'nr_file_pages',
  'nr_dirty',
  'nr_writeback',
  'nr_writeback_temp',
  'nr_shmem',
  'nr_shmem_hugepages',
  'nr_shmem_pmdmapped',
  'nr_file_hugepages',
  'nr_file_pmdmapped',
  'nr_anon_transparent_hugepages',
  'nr_vmscan_write',
  'nr_vmscan_immediate_reclaim',
  'nr_dirtied',
  'nr_written',
  'nr_throttled_written',
  'nr_kernel_misc_reclaimable',
  'nr_foll_pin_acquired',
  'nr_foll_pin_released',
  'nr_kernel_stack',
  'nr_shadow_call_stack',
  'nr_page_table_pages',
  'nr_sec_page_table_pages',
  'nr_swapcached',
  // enum vm_stat_item
  'nr_dirty_threshold',
  'nr_dirty_background_threshold',
  // enum vm_event_item
  'pgpgin',
  'pgpgout',
  'pswpin',
  'pswpout',
  // TEXTS_FOR_ZONES: dma, dma32, normal, high, movable, device
  'pgalloc_dma',
  'pgalloc_dma32',
  'pgalloc_normal',
  'pgalloc_high',
  'pgalloc_movable',
  'pgalloc_device',
  'allocstall_dma',
  'allocstall_dma32',
  'allocstall_normal',
  'allocstall_high',
  'allocstall_movable',
  'allocstall_device',
  'pgskip_dma',
  'pgskip_dma32',
  'pgskip_normal',
  'pgskip_high',
  'pgskip_movable',
  'pgskip_device',
  'pgfree',
  'pgactivate',
  'pgdeactivate',
  'pglazyfree',
  'pgfault',
  'pgmajfault',
  'pglazyfreed',
  'pgrefill',
  'pgreuse',
  'pgsteal_kswapd',
  'pgsteal_direct',
  'pgsteal_khugepaged',
  'pgscan_kswapd',
  'pgscan_direct',
  'pgscan_khugepaged',
  'pgscan_direct_throttle',
  'pgscan_anon',
  'pgscan_file',
  'pgsteal_anon',
  'pgsteal_file',
  'pginodesteal',
  'slabs_scanned',
  'kswapd_inodesteal',
  'kswapd_low_wmark_hit_quickly',
  'kswapd_high_wmark_hit_quickly',
  'pageoutrun',
  'pgrotated',
  'drop_pagecache',
  'drop_slab',
  'oom_kill',
  'pgmigrate_success',
  'pgmigrate_fail',
  'compact_stall',
  'unevictable_pgs_culled',
  'thp_fault_alloc',
  'nr_tlb_remote_flush',
  'nr_tlb_remote_flush_received',
  'nr_tlb_local_flush_all',
  'nr_tlb_local_flush_one',
  'swap_ra',
  'swap_ra_hit',
];

describe('golden files: writer asleep', () => {
  it('meminfo, vmstat and swaps match test/fixtures/proc', async () => {
    const m = bootWriter();
    await expect(renderMeminfo(m.kernel)).toMatchFileSnapshot('./fixtures/proc/writer.meminfo.txt');
    await expect(renderVmstat(m.kernel)).toMatchFileSnapshot('./fixtures/proc/writer.vmstat.txt');
    await expect(renderSwaps(m.kernel)).toMatchFileSnapshot('./fixtures/proc/writer.swaps.txt');
  });

  it('the same machine gives the same bytes on every boot (no host path leaks in)', () => {
    const render = (m: TestMachine): string =>
      ['/proc/meminfo', '/proc/vmstat', '/proc/swaps'].map((p) => renderProcFile(m.kernel, p)).join('');
    const a = bootWriter();
    const b = bootWriter();
    expect(a.swapDevice!.path).not.toBe(b.swapDevice!.path); // two scratch swap files
    expect(render(a)).toBe(render(b));
  });
});

describe('/proc/meminfo', () => {
  it('prints `Label:` padded to 16 columns, the value in 8, then " kB", in Linux order', () => {
    const m = bootWriter();
    const text = renderMeminfo(m.kernel);
    expect(text.endsWith(' kB\n')).toBe(true);
    const lines = text.slice(0, -1).split('\n');
    const labels = lines.map((l) => l.slice(0, l.indexOf(':')));
    expect(new Set(labels).size).toBe(labels.length);
    expect(inOrder(labels, LINUX_MEMINFO)).toBe(true);
    const special = /^(HardwareCorrupted|HugePages_)/;
    for (const [i, line] of lines.entries()) {
      if (special.test(labels[i]!)) continue;
      const value = String(meminfoFields(m.kernel)[i]![1]);
      expect(line).toBe(`${`${labels[i]}:`.padEnd(16)}${value.padStart(8)} kB`);
      expect(line.length).toBe(16 + Math.max(8, value.length) + 3);
    }
    expect(lines[0]).toBe('MemTotal:          15296 kB'); // 3824 managed pages
  });

  it("prints the lines Linux's documentation example shows byte for byte (proc.rst)", () => {
    // Documentation/filesystems/proc.rst's meminfo example, lines whose values vmlab shares.
    expect(meminfoLine('VmallocTotal', 34359738367)).toBe('VmallocTotal:   34359738367 kB\n');
    expect(meminfoLine('HardwareCorrupted', 0)).toBe('HardwareCorrupted:     0 kB\n');
    expect(meminfoLine('HugePages_Total', 0)).toBe('HugePages_Total:       0\n');
    expect(meminfoLine('HugePages_Free', 0)).toBe('HugePages_Free:        0\n');
    expect(meminfoLine('HugePages_Rsvd', 0)).toBe('HugePages_Rsvd:        0\n');
    expect(meminfoLine('HugePages_Surp', 0)).toBe('HugePages_Surp:        0\n');
    expect(meminfoLine('Hugepagesize', 2048)).toBe('Hugepagesize:       2048 kB\n');
    expect(meminfoLine('DirectMap4k', 401152)).toBe('DirectMap4k:      401152 kB\n');
    expect(meminfoLine('SecPageTables', 0)).toBe('SecPageTables:         0 kB\n');
    // "HugePages_Total:   %5lu" and "HardwareCorrupted: %5lu kB" grow past their 5 columns.
    expect(meminfoLine('HugePages_Total', 1234567)).toBe('HugePages_Total:   1234567\n');
    expect(meminfoLine('HardwareCorrupted', 123456)).toBe('HardwareCorrupted: 123456 kB\n');
  });

  it('ends as an x86-64 Linux 6.x meminfo does, with honest zeros and the direct map of all RAM', () => {
    const m = bootWriter();
    const text = renderMeminfo(m.kernel);
    const tail = text.slice(text.indexOf('VmallocTotal:'));
    expect(tail).toBe(
      [
        'VmallocTotal:   34359738367 kB', // (32 TiB - 1) >> 10: VMALLOC_SIZE_TB 32, 4-level paging
        'VmallocUsed:           0 kB',
        'VmallocChunk:          0 kB',
        'Percpu:                0 kB',
        'HardwareCorrupted:     0 kB',
        'AnonHugePages:         0 kB',
        'ShmemHugePages:        0 kB',
        'ShmemPmdMapped:        0 kB',
        'FileHugePages:         0 kB',
        'FilePmdMapped:         0 kB',
        'Unaccepted:            0 kB',
        'HugePages_Total:       0',
        'HugePages_Free:        0',
        'HugePages_Rsvd:        0',
        'HugePages_Surp:        0',
        'Hugepagesize:       2048 kB',
        'Hugetlb:               0 kB',
        'DirectMap4k:       16384 kB', // all 16 MiB of RAM (reserved frames too) in 4 KiB pages
        'DirectMap2M:           0 kB',
        'DirectMap1G:           0 kB',
        '',
      ].join('\n'),
    );
    for (const label of ['KernelStack', 'SecPageTables', 'NFS_Unstable', 'Bounce', 'WritebackTmp'])
      expect(field(m.kernel, label)).toBe(0);
    const labels = meminfoFields(m.kernel).map(([l]) => l);
    expect(labels.slice(labels.indexOf('SUnreclaim'), labels.indexOf('VmallocTotal') + 1)).toEqual([
      'SUnreclaim',
      'KernelStack',
      'PageTables',
      'SecPageTables',
      'NFS_Unstable',
      'Bounce',
      'WritebackTmp',
      'CommitLimit',
      'Committed_AS',
      'VmallocTotal',
    ]);
  });

  it('follows the architecture: x86-32 has the highmem lines and DirectMap4M, sv39 no DirectMap', () => {
    const x86_32 = boot({ memoryMiB: 16, format: 'x86-32' });
    const lines32 = renderMeminfo(x86_32.kernel);
    const k = x86_32.kernel;
    expect(field(k, 'HighTotal')).toBe(0); // 16 MiB is all low memory
    expect(field(k, 'HighFree')).toBe(0);
    expect(field(k, 'LowTotal')).toBe(field(k, 'MemTotal'));
    expect(field(k, 'LowFree')).toBe(field(k, 'MemFree'));
    const labels32 = meminfoFields(k).map(([l]) => l);
    expect(labels32.slice(labels32.indexOf('Mlocked'), labels32.indexOf('SwapTotal') + 1)).toEqual([
      'Mlocked',
      'HighTotal',
      'HighFree',
      'LowTotal',
      'LowFree',
      'SwapTotal',
    ]);
    // VMALLOC_END 0xff7fe000 - (PAGE_OFFSET 0xc0000000 + 16 MiB + VMALLOC_OFFSET 8 MiB) = 1040179200 B
    expect(lines32).toContain('\nVmallocTotal:    1015800 kB\n');
    expect(lines32.endsWith('DirectMap4k:       16384 kB\nDirectMap4M:           0 kB\n')).toBe(true);
    expect(labels32).not.toContain('Unaccepted');
    expect(labels32).not.toContain('HugePages_Total'); // no PSE: hugepages_supported() is false
    // With 1 GiB or more, low memory ends at MAXMEM and the vmalloc area is 128 - 8 MiB, the
    // "VmallocTotal: 122880 kB" of 32-bit machines.
    const layout32 = memLayoutOf(resolveFormat('x86-32'));
    expect(layout32.vmallocTotalKb(2 * 1024 ** 3)).toBe(122880);
    expect(layout32.directMapBytes(2 * 1024 ** 3)).toBe(0x377fe000);

    const sv39 = boot({ memoryMiB: 16, format: 'sv39' });
    const text = renderMeminfo(sv39.kernel);
    const tail = text.slice(text.indexOf('VmallocTotal:'));
    expect(tail).toBe(
      [
        'VmallocTotal:   67108863 kB', // Sv39's 64 GiB vmalloc area, minus its last byte
        'VmallocUsed:           0 kB',
        'VmallocChunk:          0 kB',
        'Percpu:                0 kB',
        'AnonHugePages:         0 kB',
        'ShmemHugePages:        0 kB',
        'ShmemPmdMapped:        0 kB',
        'FileHugePages:         0 kB',
        'FilePmdMapped:         0 kB',
        'HugePages_Total:       0',
        'HugePages_Free:        0',
        'HugePages_Rsvd:        0',
        'HugePages_Surp:        0',
        'Hugepagesize:       2048 kB',
        'Hugetlb:               0 kB',
        '',
      ].join('\n'),
    );
    expect(text).not.toContain('HighTotal');
    // 5-level x86-64: VMALLOC_SIZE_TB 12800.
    expect(memLayoutOf(resolveFormat('x86-64-la57')).vmallocTotalKb(1)).toBe(13743895347199);
    // A custom format is a generic MMU architecture: no vmalloc area, no optional lines.
    const generic = memLayoutOf(resolveFormat('test/fixtures/formats/leaf-only.yaml'));
    expect([generic.vmallocTotalKb(1), generic.hugePageBytes, generic.directMap.length]).toEqual([0, 0, 0]);
    expect([generic.transparentHugepages, generic.memoryFailure, generic.highmem]).toEqual([
      false,
      false,
      false,
    ]);
  });

  it('counts the page cache: Cached, Dirty, Writeback, Mapped; shmem in Cached and Mapped', () => {
    const m = bootWriter();
    const k = m.kernel;
    const kb = (pages: number): number => (pages * PAGE) / 1024;
    expect(k.pageCache.nrPages).toBe(5);
    expect(field(k, 'Cached')).toBe(kb(5 + 1)); // 5 file pages and the shmem page
    expect(field(k, 'Dirty')).toBe(kb(3)); // data.bin, written and never synced
    expect(field(k, 'Writeback')).toBe(kb(1)); // log.bin page 0 after msync(MS_ASYNC)
    expect(field(k, 'Mapped')).toBe(kb(2 + 1)); // data.bin page 1, log.bin page 0, the shmem page
    expect(field(k, 'AnonPages')).toBe(kb(6));
    expect(field(k, 'Shmem')).toBe(kb(1));
    expect(field(k, 'Active(file)') + field(k, 'Inactive(file)')).toBe(kb(5));
  });

  it('counts shmem on the anon LRU as Linux does, and nothing as Unevictable', () => {
    const m = bootWriter();
    const k = m.kernel;
    expect(field(k, 'Unevictable')).toBe(0);
    expect(field(k, 'Active(anon)') + field(k, 'Inactive(anon)')).toBe(
      field(k, 'AnonPages') + field(k, 'Shmem'),
    );
    expect(field(k, 'Active')).toBe(field(k, 'Active(anon)') + field(k, 'Active(file)'));
    expect(field(k, 'Inactive')).toBe(field(k, 'Inactive(anon)') + field(k, 'Inactive(file)'));
    const vmstat = Object.fromEntries(
      renderVmstat(k)
        .trimEnd()
        .split('\n')
        .map((l) => l.split(' ') as [string, string]),
    );
    expect(vmstat.nr_unevictable).toBe('0');
    expect(vmstat.nr_zone_unevictable).toBe('0');
    expect(Number(vmstat.nr_inactive_anon) + Number(vmstat.nr_active_anon)).toBe(6 + 1);
  });

  it('MemAvailable is si_mem_available: half the cache kept while that is below the low watermarks', () => {
    const m = bootWriter();
    const k = m.kernel;
    // 16 MiB of x86-64 is all DMA, 3824 managed pages: low 153, high 183 (see /proc/zoneinfo);
    // no zone above it is managed, so its lowmem_reserve adds nothing to totalreserve.
    const [zone] = k.hw.buddy.zones();
    expect(zone!.name).toBe('DMA');
    expect(zone!.watermarks).toMatchObject({ low: 153, high: 183 });
    const free = k.hw.buddy.freePages();
    const slabReclaimable = k.hw.slab.slabPages('reclaimable');
    // free - totalreserve (high) + pagecache 5 - min(2, 153 + 32) + slab - min(slab / 2, 185)
    const pages = free - 183 + (5 - 2) + (slabReclaimable - Math.floor(slabReclaimable / 2));
    expect(memAvailablePages(k, 5)).toBe(pages);
    expect(field(k, 'MemAvailable')).toBe((pages * PAGE) / 1024);
  });

  it('MemAvailable keeps only the low watermarks of a large page cache', () => {
    const m = boot({ memoryMiB: 16 });
    const t = m.start(function* ({ sys }) {
      const buf = sys.mmap(0, 512 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      const fd = sys.open('/big.bin', O_CREAT | O_RDWR);
      if (sys.write(fd, buf, 512 * PAGE) !== 512 * PAGE) return 1;
      yield* sys.nanosleep(1e9);
      return 0;
    });
    for (let i = 0; i < 10_000 && t.state !== 'blocked.sleep'; i++)
      m.kernel.run({ untilCycles: m.clock.now + 10_000 });
    const k = m.kernel;
    const fileLru = (field(k, 'Active(file)') + field(k, 'Inactive(file)')) / 4;
    expect(fileLru).toBe(512);
    const free = k.hw.buddy.freePages();
    const slab = k.hw.slab.slabPages('reclaimable');
    // 512 / 2 = 256 is more than the low watermarks (DMA 153 + the empty Movable zone's 32):
    // only 185 pages of cache stay.
    const pages = free - 183 + (512 - 185) + (slab - Math.min(Math.floor(slab / 2), 185));
    expect(field(k, 'MemAvailable')).toBe((pages * PAGE) / 1024);
    expect(field(k, 'MemAvailable')).toBeGreaterThan(field(k, 'MemFree'));
    m.kernel.run();
  });
});

describe('/proc/meminfo on two zones', () => {
  it("MemAvailable's totalreserve adds DMA's lowmem_reserve to its high watermark", () => {
    const m = boot({ memoryMiB: 32 });
    const k = m.kernel;
    const [dma, dma32] = k.hw.buddy.zones();
    // DMA 3568 managed (firmware and kernel image reserved), DMA32 4096: protection 4096 / 256.
    expect([dma!.managedPages, dma32!.managedPages]).toEqual([3568, 4096]);
    expect(dma!.lowmemReserve).toEqual([0, 16, 16, 16, 16]);
    expect([dma!.watermarks.high, dma32!.watermarks.high]).toEqual([121, 139]);
    expect([dma!.watermarks.low, dma32!.watermarks.low]).toEqual([101, 116]);
    // totalreserve = (121 + 16) + 139 (+ 0 for the empty zones: capped at 0 managed pages);
    // wmark_low = 101 + 116 + 32 (Movable). No file pages yet.
    const slab = k.hw.slab.slabPages('reclaimable');
    const pages = k.hw.buddy.freePages() - (137 + 139) + (slab - Math.min(Math.floor(slab / 2), 249));
    expect(memAvailablePages(k, 0)).toBe(pages);
  });
});

describe('/proc/vmstat', () => {
  it("prints `name value` lines in vmstat_text[]'s order, then nr_unstable 0", () => {
    const m = bootWriter();
    const text = renderVmstat(m.kernel);
    expect(text.endsWith('\nnr_unstable 0\n')).toBe(true);
    const lines = text.slice(0, -1).split('\n');
    for (const line of lines) expect(line).toMatch(/^[a-z_0-9]+ \d+$/);
    const keys = lines.slice(0, -1).map((l) => l.split(' ')[0]!);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys.filter((k) => !LINUX_VMSTAT.includes(k))).toEqual([]);
    expect(inOrder(keys, LINUX_VMSTAT)).toBe(true);
  });

  it('agrees with meminfo and the page cache', () => {
    const m = bootWriter();
    const k = m.kernel;
    const v = Object.fromEntries(
      renderVmstat(k)
        .trimEnd()
        .split('\n')
        .map((l) => {
          const [key, value] = l.split(' ');
          return [key!, Number(value)];
        }),
    );
    const pages = (name: string): number => (field(k, name) * 1024) / PAGE;
    expect(v.nr_free_pages).toBe(pages('MemFree'));
    expect(v.nr_dirty).toBe(3);
    expect(v.nr_writeback).toBe(1);
    expect(v.nr_zone_write_pending).toBe(4);
    expect(v.nr_file_pages).toBe(pages('Cached') + pages('SwapCached'));
    expect(v.nr_mapped).toBe(pages('Mapped'));
    expect(v.nr_anon_pages).toBe(pages('AnonPages'));
    expect(v.nr_dirtied).toBe(3 + 2 + 1);
    // log.bin's fsync and the msync'd page were submitted (pgpgout counts them, in kB); nr_written
    // counts at the end of writeback, as Linux's NR_WRITTEN: the msync'd page is still in flight.
    expect(v.nr_written).toBe(2);
    expect(v.pgpgout).toBe(3 * 4);
    expect(v.pgfault).toBe(6 + 1 + 1 + 1); // anon, shmem, data.bin read, log.bin write
  });
});

describe('/proc/vmstat per zone and TLB lines', () => {
  const vmstatOf = (k: Kernel): Record<string, number> =>
    Object.fromEntries(
      renderVmstat(k)
        .trimEnd()
        .split('\n')
        .map((l) => {
          const [key, value] = l.split(' ');
          return [key!, Number(value)];
        }),
    );

  it('prints pgalloc_ and allocstall_ for every x86-64 zone type; user pages come from DMA32 first', () => {
    const m = boot({ memoryMiB: 32 });
    const keys = renderVmstat(m.kernel)
      .split('\n')
      .map((l) => l.split(' ')[0]!);
    const zones = ['dma', 'dma32', 'normal', 'movable', 'device'];
    for (const event of ['pgalloc', 'allocstall']) {
      const at = keys.indexOf(`${event}_dma`);
      expect(keys.slice(at, at + 5)).toEqual(zones.map((z) => `${event}_${z}`));
    }
    const before = vmstatOf(m.kernel);
    const t = m.start(function* ({ sys, cpu }) {
      const buf = sys.mmap(0, 64 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      for (let p = 0; p < 64; p++) cpu.store8(buf + p * PAGE, 1);
      yield* sys.nanosleep(1e9);
      return 0;
    });
    for (let i = 0; i < 10_000 && t.state !== 'blocked.sleep'; i++)
      m.kernel.run({ untilCycles: m.clock.now + 10_000 });
    const after = vmstatOf(m.kernel);
    // The zonelist starts at the highest populated zone: DMA32 serves while above its watermarks.
    expect(after.pgalloc_dma32! - before.pgalloc_dma32!).toBeGreaterThanOrEqual(64);
    expect(after.pgalloc_dma).toBe(before.pgalloc_dma);
    expect([after.pgalloc_normal, after.pgalloc_movable, after.pgalloc_device]).toEqual([0, 0, 0]);
    expect(after.allocstall_movable).toBe(0);
  });

  it('counts direct reclaim of user pages as allocstall_movable (GFP_HIGHUSER_MOVABLE)', () => {
    const m = boot({ memoryMiB: 16, swapMiB: 16 });
    const t = m.start(function* ({ sys, cpu }) {
      const pages = 4096;
      const buf = sys.mmap(0, pages * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      for (let p = 0; p < pages; p++) {
        cpu.store8(buf + p * PAGE, 1);
        if (p % 64 === 0) yield;
      }
      return 0;
    });
    m.runToEnd();
    expect(t.waitStatus).toBe(0);
    const v = vmstatOf(m.kernel);
    expect(v.allocstall_movable).toBeGreaterThan(0);
    expect([v.allocstall_dma, v.allocstall_dma32, v.allocstall_normal, v.allocstall_device]).toEqual([
      0, 0, 0, 0,
    ]);
  });

  it('prints the four CONFIG_DEBUG_TLBFLUSH counters together, the remote ones 0 on one CPU', () => {
    const m = bootWriter();
    const keys = renderVmstat(m.kernel)
      .split('\n')
      .map((l) => l.split(' ')[0]!);
    const at = keys.indexOf('nr_tlb_remote_flush');
    expect(keys.slice(at, at + 4)).toEqual([
      'nr_tlb_remote_flush',
      'nr_tlb_remote_flush_received',
      'nr_tlb_local_flush_all',
      'nr_tlb_local_flush_one',
    ]);
    const v = vmstatOf(m.kernel);
    expect([v.nr_tlb_remote_flush, v.nr_tlb_remote_flush_received]).toEqual([0, 0]);
    expect(v.nr_tlb_local_flush_one).toBe(m.kernel.hw.mmu.dtlb.invalidations);
  });
});

describe('/proc/swaps', () => {
  it("prints swap_show's header and row: the emulated name padded to 40, file, tabs, kB, -2", () => {
    const m = bootWriter();
    expect(m.swapDevice!.path).toMatch(/vmlab-swap-.*\/swapfile$/); // a host scratch file
    const lines = renderSwaps(m.kernel).split('\n');
    expect(lines[0]).toBe('Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority');
    // 4 MiB = 1024 slots, the header slot excluded: 1023 pages = 4092 kB.
    expect(lines[1]).toBe(`/swapfile${' '.repeat(31)}file\t\t4092\t\t0\t\t-2`);
    expect(lines[2]).toBe('');
    expect(lines).toHaveLength(3);
  });

  it('prints only the header without swap', () => {
    const m = boot({ memoryMiB: 16 });
    expect(renderSwaps(m.kernel)).toBe('Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n');
  });

  it('drops the second TAB from 10000000 kB, and pads a long name with one space', () => {
    const kernel = (path: string, usable: number, free: number): Kernel =>
      ({
        swap: { device: { path }, usableSlots: usable, freeSlots: free },
        hw: { format: { pageBytes: 4096 } },
      }) as unknown as Kernel;
    const big = renderSwaps(kernel('/tmp/x/swapfile', 2_500_000, 0)).split('\n')[1];
    expect(big).toBe(`/swapfile${' '.repeat(31)}file\t\t10000000\t10000000\t-2`);
    const long = 'a'.repeat(45);
    expect(renderSwaps(kernel(`/srv/${long}`, 3, 3)).split('\n')[1]).toBe(`/${long} file\t\t12\t\t0\t\t-2`);
  });

  it('names the file / and its base name, escaping space, TAB, newline and backslash as \\ooo', () => {
    expect(swapFileName('/tmp/vmlab-swap-Ab12/swapfile')).toBe('/swapfile');
    expect(swapFileName('./my.swap')).toBe('/my.swap');
    expect(swapFileName('/data/swap file\t1')).toBe('/swap\\040file\\0111');
    expect(swapFileName('C:\\vm\\swap')).toBe('/swap');
  });
});

describe('vmlab proc', () => {
  const CLI = join(process.cwd(), 'kernel/boot/vmlab.mjs');
  const vmlab = (...args: string[]) => spawnSync('node', [CLI, ...args], { encoding: 'utf8' });

  it('prints /proc files byte for byte, then refuses an unknown file with exit status 2', () => {
    const r = vmlab(
      'proc',
      'userland/workloads/demand-paging.yaml',
      '/proc/buddyinfo',
      '/proc/bogus',
      '/proc/swaps',
    );
    expect(r.status).toBe(2);
    const views = r.stdout.split(/^== /m).slice(1);
    expect(views).toHaveLength(2);
    const [head, ...body] = views[0]!.split('\n');
    expect(head).toMatch(/^\/proc\/buddyinfo at \d+ cycles \(halted\)$/);
    // Every buddyinfo line ends with a space; the file ends with its newline, then a blank line.
    const buddy = body.join('\n');
    expect(buddy).toMatch(/^(Node 0, zone +\w+ (?: +\d+ ){11}\n)+\n$/);
    expect(views[1]).toMatch(
      /^\/proc\/swaps at \d+ cycles \(halted\)\nFilename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n$/,
    );
    expect(r.stderr).toMatch(/^vmlab: \/proc\/bogus: no such \/proc file or tool/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
