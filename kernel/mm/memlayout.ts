/**
 * The kernel's memory map for each architecture vmlab emulates, as far as /proc shows it: the
 * zone layout (zone.ts), the size of the vmalloc area, how the direct map covers RAM, the huge
 * page size, and the build options that decide which /proc/meminfo lines exist (Linux prints a
 * line only when its option is built in). The architecture follows the paging format:
 *
 *   format                  arch           zones                              meminfo extras
 *   x86-64, x86-64-la57     x86-64         DMA DMA32 Normal Movable Device    THP, hugetlb 2 MiB, Unaccepted, DirectMap4k/2M/1G
 *   x86-32                  x86-32         DMA Normal HighMem Movable         HighTotal…LowFree, THP, DirectMap4k/4M
 *   sv39                    riscv64        DMA32 Normal Movable               THP, hugetlb 2 MiB
 *   a custom format         generic        Normal Movable                     none
 *
 * vmlab's kernel maps all of RAM (x86-32: low memory) in the direct map with 4 KiB pages: its
 * paging formats model no huge pages (a PS bit faults as reserved, and x86-32 runs with PSE
 * clear), so the DirectMap lines of larger pages read 0.
 */
import type { PagingFormat } from '../hw/paging/format.ts';
import { presetFormat } from '../hw/paging/presets.ts';
import { X86_32_LOWMEM_BYTES, type ZoneLayout } from './zone.ts';

export type MemArch = 'x86-64' | 'x86-32' | 'riscv64' | 'generic';

/** One DirectMap line of x86's arch_report_meminfo: the kB mapped by pages of `pageBytes`. */
export interface DirectMapLevel {
  readonly label: 'DirectMap4k' | 'DirectMap2M' | 'DirectMap4M' | 'DirectMap1G';
  readonly pageBytes: number;
}

export interface MemLayout {
  readonly arch: MemArch;
  readonly zones: ZoneLayout;
  /** VMALLOC_TOTAL >> 10 for a machine of `memoryBytes` of RAM (meminfo VmallocTotal). */
  vmallocTotalKb(memoryBytes: number): number;
  /** CONFIG_HIGHMEM: meminfo's HighTotal, HighFree, LowTotal, LowFree. */
  readonly highmem: boolean;
  /** CONFIG_MEMORY_FAILURE: HardwareCorrupted. */
  readonly memoryFailure: boolean;
  /** CONFIG_TRANSPARENT_HUGEPAGE: AnonHugePages, ShmemHugePages, ShmemPmdMapped, FileHugePages, FilePmdMapped. */
  readonly transparentHugepages: boolean;
  /** CONFIG_UNACCEPTED_MEMORY (x86-64 confidential guests): Unaccepted. */
  readonly unacceptedMemory: boolean;
  /** The default huge page size (Hugepagesize), in bytes; 0: no hugetlb, no HugePages lines. */
  readonly hugePageBytes: number;
  /** The DirectMap lines, smallest pages first; empty off x86. */
  readonly directMap: readonly DirectMapLevel[];
  /** RAM the direct map covers, in bytes: all of it, or x86-32's low memory. */
  directMapBytes(memoryBytes: number): number;
}

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

/** x86-32's kernel virtual layout (arch/x86/include/asm/pgtable_32_areas.h, a typical build). */
const X86_32_PAGE_OFFSET = 0xc0000000;
const X86_32_VMALLOC_END = 0xff7fe000;
const X86_32_VMALLOC_OFFSET = 8 * MIB;

/** VMALLOC_SIZE_TB of x86-64: 32 TiB with 4-level paging, 12800 TiB with 5-level. */
function x86_64Vmalloc(sizeTiB: number): (memoryBytes: number) => number {
  // (VMALLOC_START + (size << 40) - 1) - VMALLOC_START, in kB: size << 30, minus the last byte.
  return () => sizeTiB * GIB - 1;
}

const X86_64: Omit<MemLayout, 'vmallocTotalKb'> = {
  arch: 'x86-64',
  zones: 'x86-64',
  highmem: false,
  memoryFailure: true,
  transparentHugepages: true,
  unacceptedMemory: true,
  hugePageBytes: 2 * MIB,
  directMap: [
    { label: 'DirectMap4k', pageBytes: 4 * KIB },
    { label: 'DirectMap2M', pageBytes: 2 * MIB },
    { label: 'DirectMap1G', pageBytes: GIB },
  ],
  directMapBytes: (memoryBytes) => memoryBytes,
};

const LAYOUTS: Readonly<Record<string, MemLayout>> = {
  'x86-64': { ...X86_64, vmallocTotalKb: x86_64Vmalloc(32) },
  'x86-64-la57': { ...X86_64, vmallocTotalKb: x86_64Vmalloc(12800) },
  'x86-32': {
    arch: 'x86-32',
    zones: 'x86-32',
    // VMALLOC_START = high_memory + VMALLOC_OFFSET; high_memory is the end of low memory.
    vmallocTotalKb: (memoryBytes) =>
      Math.floor(
        (X86_32_VMALLOC_END -
          (X86_32_PAGE_OFFSET + Math.min(memoryBytes, X86_32_LOWMEM_BYTES) + X86_32_VMALLOC_OFFSET)) /
          KIB,
      ),
    highmem: true,
    memoryFailure: true,
    transparentHugepages: true,
    unacceptedMemory: false,
    // hugepages_supported() needs PSE, which vmlab's x86-32 runs without.
    hugePageBytes: 0,
    directMap: [
      { label: 'DirectMap4k', pageBytes: 4 * KIB },
      { label: 'DirectMap4M', pageBytes: 4 * MIB },
    ],
    directMapBytes: (memoryBytes) => Math.min(memoryBytes, X86_32_LOWMEM_BYTES),
  },
  sv39: {
    arch: 'riscv64',
    zones: 'riscv64',
    // Sv39's vmalloc area is the 64 GiB below PAGE_OFFSET: VMALLOC_END = PAGE_OFFSET - 1.
    vmallocTotalKb: () => 64 * MIB - 1,
    highmem: false,
    memoryFailure: false,
    transparentHugepages: true,
    unacceptedMemory: false,
    hugePageBytes: 2 * MIB,
    directMap: [],
    directMapBytes: (memoryBytes) => memoryBytes,
  },
};

/** A custom paging format: an MMU architecture with none of the optional features. */
const GENERIC: MemLayout = {
  arch: 'generic',
  zones: 'generic',
  vmallocTotalKb: () => 0,
  highmem: false,
  memoryFailure: false,
  transparentHugepages: false,
  unacceptedMemory: false,
  hugePageBytes: 0,
  directMap: [],
  directMapBytes: (memoryBytes) => memoryBytes,
};

/**
 * The memory layout of the architecture `format` belongs to: a preset format's (matched by
 * name and shape, so a custom file that borrows a preset's name stays generic), else generic.
 */
export function memLayoutOf(format: PagingFormat): MemLayout {
  const preset = presetFormat(format.name);
  const same =
    preset !== undefined &&
    preset.pageBytes === format.pageBytes &&
    preset.entryBytes === format.entryBytes &&
    preset.levelBits.join('/') === format.levelBits.join('/');
  return same ? (LAYOUTS[format.name] ?? GENERIC) : GENERIC;
}
