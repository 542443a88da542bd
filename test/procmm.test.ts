import { describe, expect, it } from 'vitest';
import { PhysicalMemory } from '../kernel/hw/physmem.ts';
import { BuddyAllocator, type BuddyOptions } from '../kernel/mm/buddy.ts';
import { Kmalloc } from '../kernel/mm/kmalloc.ts';
import { PageFrames, PG_PAGETABLE } from '../kernel/mm/page.ts';
import { SlabAllocator } from '../kernel/mm/slab.ts';
import {
  kernelMeminfoKb,
  renderBuddyinfo,
  renderExtfragIndex,
  renderSlabinfo,
  renderUnusableIndex,
  renderZoneinfo,
  SLABINFO_HEADER,
} from '../kernel/observe/procmm.ts';

function boot(
  frames: number,
  options: Partial<Omit<BuddyOptions, 'memory' | 'pages'>> = {},
  pageBytes = 4096,
) {
  const memory = new PhysicalMemory({ frameCount: frames, pageBytes });
  return new BuddyAllocator({ memory, pages: new PageFrames(frames), ...options });
}

/** 32 MiB of x86-64 (DMA + DMA32), firmware at [0, 16) and a kernel image at [256, 768). */
function machine32MiB(pcp: 'on' | 'off' = 'off') {
  return boot(8192, {
    zones: 'x86-64',
    pcp,
    reserved: [
      { label: 'firmware', firstPfn: 0, frames: 16 },
      { label: 'kernel image', firstPfn: 256, frames: 512 },
    ],
  });
}

describe('/proc/buddyinfo', () => {
  it('prints one line per populated zone, %8s names and %6lu columns with a trailing space', () => {
    const buddy = machine32MiB();
    // DMA: [16,256) = 16 (o4) 32 (o5) 64 (o6) 128 (o7); [768,4096) = 768 (o8) + three order-10 blocks
    expect(renderBuddyinfo(buddy)).toBe(
      'Node 0, zone      DMA      0      0      0      0      1      1      1      1      1      0      3 \n' +
        'Node 0, zone    DMA32      0      0      0      0      0      0      0      0      0      0      4 \n',
    );
    buddy.alloc(0); // splits one DMA32 order-10 block all the way down
    expect(renderBuddyinfo(buddy).split('\n')[1]).toBe(
      'Node 0, zone    DMA32      1      1      1      1      1      1      1      1      1      1      3 ',
    );
  });

  it('leaves out the unpopulated zones (16 MiB of x86-64: DMA only)', () => {
    const buddy = boot(4096, { zones: 'x86-64', reserved: [], pcp: 'off' });
    expect(renderBuddyinfo(buddy)).toBe(
      'Node 0, zone      DMA      0      0      0      0      0      0      0      0      0      0      4 \n',
    );
  });

  it('does not count pages parked on per-CPU lists', () => {
    const buddy = boot(64, { zones: 'normal', reserved: [], pcp: 'on', pcpBatch: 2 });
    buddy.alloc(0);
    expect(renderBuddyinfo(buddy)).toBe(
      'Node 0, zone   Normal      0      1      1      1      1      1      0      0      0      0      0 \n',
    );
  });
});

describe('/proc/zoneinfo', () => {
  const unpopulated = (name: string, marks: number, protection: string): string[] => [
    `Node 0, zone ${name.padStart(8)}`,
    '  pages free     0',
    '        boost    0',
    `        min      ${marks}`,
    `        low      ${marks}`,
    `        high     ${marks}`,
    `        promo    ${marks}`,
    '        spanned  0',
    '        present  0',
    '        managed  0',
    '        cma      0',
    `        protection: ${protection}`,
  ];

  it("prints every zone of x86-64 in zoneinfo_show_print's layout", () => {
    // managed 3568 + 4096 = 7664 pages = 30656 kB; min_free_kbytes = int_sqrt(30656 * 16) = 700 -> 175 pages
    // DMA: min 175*3568/7664 = 81, dist max(20, 3) = 20; DMA32: min 93, dist 23; Movable: 32 (empty)
    // DMA's lowmem_reserve against DMA32 and above: 4096 / 256 = 16. Threshold: 2 (< 128 MiB, 1 CPU).
    const buddy = machine32MiB('on');
    const none = '(0, 0, 0, 0, 0)';
    expect(renderZoneinfo(buddy)).toBe(
      [
        'Node 0, zone      DMA',
        '  pages free     3568',
        '        boost    0',
        '        min      81',
        '        low      101',
        '        high     121',
        '        promo    141',
        '        spanned  4096',
        '        present  4096',
        '        managed  3568',
        '        cma      0',
        '        protection: (0, 16, 16, 16, 16)',
        '  pagesets',
        '    cpu: 0',
        '              count:    0',
        '              high:     6',
        '              batch:    1',
        '              high_min: 6',
        '              high_max: 6',
        '  vm stats threshold: 2',
        '  node_unreclaimable:  0',
        '  start_pfn:           0',
        'Node 0, zone    DMA32',
        '  pages free     4096',
        '        boost    0',
        '        min      93',
        '        low      116',
        '        high     139',
        '        promo    162',
        '        spanned  4096',
        '        present  4096',
        '        managed  4096',
        '        cma      0',
        `        protection: ${none}`,
        '  pagesets',
        '    cpu: 0',
        '              count:    0',
        '              high:     6',
        '              batch:    1',
        '              high_min: 6',
        '              high_max: 6',
        '  vm stats threshold: 2',
        '  node_unreclaimable:  0',
        '  start_pfn:           4096',
        ...unpopulated('Normal', 0, none),
        ...unpopulated('Movable', 32, none),
        ...unpopulated('Device', 0, none),
        '',
      ].join('\n'),
    );
  });

  it('prints an unpopulated zone up to its protection line, one entry per zone type', () => {
    const buddy = boot(4096, { zones: 'x86-32', reserved: [], pcp: 'off', minFreeKbytes: 0 });
    const blocks = renderZoneinfo(buddy).split(/^(?=Node 0, zone)/m);
    expect(blocks.map((b) => b.split('\n')[0])).toEqual([
      'Node 0, zone      DMA',
      'Node 0, zone   Normal',
      'Node 0, zone  HighMem',
      'Node 0, zone  Movable',
    ]);
    const none = '(0, 0, 0, 0)';
    // HighMem and Movable get the capped min watermark (32) even when empty.
    expect(blocks.slice(1)).toEqual([
      `${unpopulated('Normal', 0, none).join('\n')}\n`,
      `${unpopulated('HighMem', 32, none).join('\n')}\n`,
      `${unpopulated('Movable', 32, none).join('\n')}\n`,
    ]);
  });

  it('prints the vm stats threshold of a large zone (calculate_normal_threshold)', () => {
    // 1 GiB of DMA32: mem = 1024 MiB / 128 = 8 units, fls(8) = 4, threshold 2 * 1 * (1 + 4) = 10.
    const buddy = boot(262144 + 4096, { zones: 'x86-64', reserved: [], pcp: 'off' });
    expect(renderZoneinfo(buddy)).toContain('  start_pfn:           0\nNode');
    const dma32 = renderZoneinfo(buddy).split('zone    DMA32')[1]!;
    expect(dma32).toContain('\n  vm stats threshold: 10\n');
  });
});

describe('debugfs extfrag files', () => {
  it('print the fragmentation and unusable indexes per order', () => {
    const buddy = boot(16, { zones: 'normal', reserved: [], pcp: 'off', minFreeKbytes: 0 });
    const held = Array.from({ length: 16 }, () => buddy.alloc(0));
    for (let i = 0; i < 16; i += 2) buddy.free(held[i]!, 0); // eight isolated free pages
    expect(renderExtfragIndex(buddy)).toBe(
      'Node 0, zone   Normal -1.000  0.375  0.625  0.750  0.813  0.844  0.860  0.868  0.872  0.874  0.875 \n',
    );
    expect(renderUnusableIndex(buddy)).toBe(
      'Node 0, zone   Normal 0.000 1.000 1.000 1.000 1.000 1.000 1.000 1.000 1.000 1.000 1.000 \n',
    );
    for (let i = 0; i < 16; i += 2) buddy.alloc(0);
    expect(renderExtfragIndex(buddy)).toBe(`Node 0, zone   Normal ${' 0.000 '.repeat(11)}\n`);
    expect(renderUnusableIndex(buddy)).toBe(`Node 0, zone   Normal ${'1.000 '.repeat(11)}\n`);
  });
});

describe('/proc/slabinfo', () => {
  it('prints the 2.1 header and one row per cache, newest first, byte for byte', () => {
    const buddy = boot(512, { zones: 'normal', reserved: [], pcp: 'off', minFreeKbytes: 0 });
    const slab = new SlabAllocator({ buddy });
    const vma = slab.createCache('vm_area_struct', 176);
    const long = slab.createCache('a_very_long_cache_name', 64);
    slab.createCache('idle', 4096);
    for (let i = 0; i < 25; i++) vma.alloc();
    for (let i = 0; i < 3; i++) long.alloc();
    expect(renderSlabinfo(slab)).toBe(
      'slabinfo - version: 2.1\n' +
        '# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n' +
        'idle                   0      0   4096    8    8 : tunables    0    0    0 : slabdata      0      0      0\n' +
        'a_very_long_cache_name      3     64     64   64    1 : tunables    0    0    0 : slabdata      1      1      0\n' +
        'vm_area_struct        25     46    176   23    1 : tunables    0    0    0 : slabdata      2      2      0\n',
    );
  });

  it('lists the kmalloc caches last, kmalloc-8 at the bottom, as Linux does', () => {
    const buddy = boot(512, { zones: 'normal', reserved: [], pcp: 'off', minFreeKbytes: 0 });
    const slab = new SlabAllocator({ buddy });
    new Kmalloc(slab);
    slab.createCache('task_struct', 7744, { align: 64 });
    const lines = renderSlabinfo(slab).slice(SLABINFO_HEADER.length).trimEnd().split('\n');
    expect(lines[0]!.startsWith('task_struct       ')).toBe(true);
    expect(lines[1]!.startsWith('kmalloc-8k ')).toBe(true);
    expect(lines.at(-1)).toBe(
      'kmalloc-8              0      0      8  512    1 : tunables    0    0    0 : slabdata      0      0      0',
    );
  });
});

describe('meminfo figures', () => {
  it('report Slab, SReclaimable, SUnreclaim and PageTables in kB', () => {
    const buddy = boot(512, { zones: 'normal', reserved: [], pcp: 'off', minFreeKbytes: 0 });
    const slab = new SlabAllocator({ buddy });
    const km = new Kmalloc(slab);
    const dentry = slab.createCache('dentry', 192, { reclaim: 'reclaimable' });
    dentry.alloc(); // one order-0 slab: 4 kB reclaimable
    km.kmalloc(64); // kmalloc-64: 4 kB
    km.kmalloc(1000); // kmalloc-1k: order 1, 8 kB
    km.kmalloc(10000); // large: order 2, 16 kB
    for (let i = 0; i < 3; i++) buddy.alloc(0, { owner: PG_PAGETABLE, contents: 'zeroed' });
    expect(kernelMeminfoKb({ buddy, slab, kmalloc: km })).toEqual({
      Slab: 32,
      SReclaimable: 4,
      SUnreclaim: 28,
      PageTables: 12,
    });
    expect(kernelMeminfoKb({ buddy, slab }).SUnreclaim).toBe(12);
  });

  it('rounds down after summing pages when pages are smaller than 1 kB', () => {
    const buddy = boot(256, { zones: 'normal', reserved: [], pcp: 'off', minFreeKbytes: 0 }, 256);
    const slab = new SlabAllocator({ buddy });
    for (let i = 0; i < 5; i++) buddy.alloc(0, { owner: PG_PAGETABLE });
    expect(kernelMeminfoKb({ buddy, slab }).PageTables).toBe(1); // 5 * 256 B = 1.25 kB
  });
});
