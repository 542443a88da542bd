/**
 * The machine builder: the one place where the hardware is wired together. Every tunable sits
 * in MachineConfig with its unit in its name and a default in DEFAULT_MACHINE; ranges are
 * checked once, here.
 */

import { cpSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Clock } from '../hw/clock.ts';
import { type CostModel, resolveCostModel } from '../hw/cost.ts';
import { BlockDevice, DiskError, type DiskProfileName } from '../hw/disk.ts';
import { Mmu } from '../hw/mmu.ts';
import type { PagingFormat } from '../hw/paging/format.ts';
import { PhysicalMemory } from '../hw/physmem.ts';
import type { TlbReplacement } from '../hw/tlb.ts';
import { BuddyAllocator, type PoisonMode } from '../mm/buddy.ts';
import { Kmalloc } from '../mm/kmalloc.ts';
import { memLayoutOf } from '../mm/memlayout.ts';
import { PageFrames } from '../mm/page.ts';
import { createPolicy } from '../mm/policy/index.ts';
import type { PolicyFactory, ReplacementPolicy } from '../mm/policy/types.ts';
import type { ReclaimScope } from '../mm/reclaim.ts';
import { SlabAllocator } from '../mm/slab.ts';
import { SwapArea } from '../mm/swap.ts';
import { procSource } from '../observe/procfs.ts';
import { Kernel, type KernelTunables } from '../proc/kernel.ts';
import type { ProgramLoader } from '../proc/uapi.ts';
import { InputError } from './configfile.ts';
import { resolveFormat } from './formatfile.ts';

export interface MachineConfig {
  /** Emulated RAM in bytes (a whole number of pages). */
  memoryBytes: number;
  /** Paging format: a preset name, a format file, or a compiled format. */
  format: string | PagingFormat;
  cpuHz: number;
  tlbEntries: number;
  tlbWays: number;
  tlbReplacement: TlbReplacement;
  /**
   * The second-level TLB (x86's STLB): entries (0: none) and ways. Unless set, a
   * hardware-managed TLB gets DEFAULT_STLB and a software-managed one none.
   */
  stlbEntries?: number;
  stlbWays?: number;
  /** 0: no ASIDs, a switch flushes the TLB. */
  asidBits: number;
  splitTlb: boolean;
  tlbManagement: 'hardware' | 'software';
  cost: Partial<CostModel>;
  seed: number;
}

/** The second-level TLB of a hardware-managed machine unless told otherwise: Skylake's STLB. */
export const DEFAULT_STLB = { entries: 1536, ways: 12 } as const;

export const DEFAULT_MACHINE: Readonly<MachineConfig> = {
  memoryBytes: 64 * 1024 * 1024,
  format: 'x86-64',
  cpuHz: 1e9,
  tlbEntries: 64,
  tlbWays: 4,
  tlbReplacement: 'lru',
  asidBits: 12,
  splitTlb: false,
  tlbManagement: 'hardware',
  cost: {},
  seed: 0,
};

export interface Machine {
  config: MachineConfig;
  format: PagingFormat;
  mem: PhysicalMemory;
  frames: PageFrames;
  clock: Clock;
  mmu: Mmu;
}

/** Build a machine from `overrides` on DEFAULT_MACHINE. Throws InputError for impossible settings. */
export function buildMachine(overrides: Partial<MachineConfig> = {}): Machine {
  const config: MachineConfig = { ...DEFAULT_MACHINE, ...overrides };
  const hardware = config.tlbManagement === 'hardware';
  config.stlbEntries ??= hardware ? DEFAULT_STLB.entries : 0;
  // Ways unless given: the most of 12, 16, 8, 4, 2, 1 that divides the entries.
  config.stlbWays ??= [12, 16, 8, 4, 2, 1].find((w) => config.stlbEntries! % w === 0) ?? 1;
  const format = typeof config.format === 'string' ? resolveFormat(config.format) : config.format;
  if (config.memoryBytes % format.pageBytes !== 0 || config.memoryBytes < format.pageBytes) {
    throw new InputError(
      `machine.memory: ${config.memoryBytes} bytes is not a whole number of ${format.pageBytes}-byte pages`,
    );
  }
  const frameCount = config.memoryBytes / format.pageBytes;
  if (frameCount > format.maxPfn + 1) {
    throw new InputError(
      `machine.memory: ${frameCount} frames exceed the ${format.pfnWidth}-bit frame numbers of ${format.name}`,
    );
  }
  if (frameCount > 2 ** 26) {
    throw new InputError(
      `machine.memory: ${frameCount} frames; vmlab models at most 2^26 frames (256 GiB of 4 KiB pages)`,
    );
  }
  let clock: Clock;
  let mem: PhysicalMemory;
  let cost: CostModel;
  let mmu: Mmu;
  try {
    clock = new Clock({ hz: config.cpuHz });
    mem = new PhysicalMemory({ frameCount, pageBytes: format.pageBytes });
    cost = resolveCostModel(config.cost);
    mmu = new Mmu(mem, format, {
      tlb: {
        entries: config.tlbEntries,
        ways: config.tlbWays,
        replacement: config.tlbReplacement,
        seed: config.seed,
      },
      stlb: config.stlbEntries > 0 ? { entries: config.stlbEntries, ways: config.stlbWays } : undefined,
      splitTlb: config.splitTlb,
      tlbManagement: config.tlbManagement,
      asidBits: config.asidBits,
      cost,
      clock,
    });
  } catch (err) {
    if (err instanceof RangeError) throw new InputError(`machine: ${err.message}`);
    throw err;
  }
  return { config, format, mem, frames: new PageFrames(frameCount), clock, mmu };
}

/** The machine's configuration as `ARG name value` lines. */
export function describeMachine(m: Machine): string[] {
  const c = m.config;
  return [
    `ARG seed ${c.seed}`,
    `ARG memory ${c.memoryBytes} bytes (${m.mem.frameCount} frames of ${m.format.pageBytes} bytes)`,
    `ARG format ${m.format.name} (levels ${m.format.levelBits.join('/')}, ${m.format.entryBytes}-byte entries, ${m.format.vaBits}-bit VA)`,
    `ARG cpu ${c.cpuHz} Hz`,
    `ARG tlb ${c.tlbEntries} entries, ${c.tlbWays}-way, ${c.tlbReplacement}, ${c.tlbManagement}-managed${c.splitTlb ? ', split I/D' : ''}`,
    `ARG stlb ${c.stlbEntries ? `${c.stlbEntries} entries, ${c.stlbWays}-way, unified` : 'none'}`,
    `ARG asid bits ${c.asidBits}`,
  ];
}

export interface BootOptions {
  loader: ProgramLoader;
  /** Replacement policy name (see kernel/mm/policy/index.ts); default lru-2list. */
  policy?: string;
  /** A policy from elsewhere (a student's file); wins over `policy`. */
  policyFactory?: PolicyFactory;
  scope?: ReclaimScope;
  /** A swap area: its size, its host file (default: a scratch file removed at shutdown), its disk. */
  swap?: { bytes: number; path?: string; profile?: DiskProfileName };
  tunables?: Partial<KernelTunables>;
  /** Page poisoning in the allocators (costs host memory: every freed frame is written). */
  poison?: PoisonMode;
  /**
   * The files processes see: `from` is a host folder; the sandbox root is a scratch copy of it
   * (removed at shutdown) unless `writeThrough`, when the processes work on the folder itself.
   * Without `from`, an empty scratch root. `profile`: the disk the files' data moves through.
   */
  files?: { from?: string; writeThrough?: boolean; profile?: DiskProfileName };
}

export interface BootedMachine extends Machine {
  buddy: BuddyAllocator;
  slab: SlabAllocator;
  kmalloc: Kmalloc;
  kernel: Kernel;
  /** The swap device, if any. */
  swapDevice: BlockDevice | null;
  /** Close host files (the swap file). */
  shutdown(): void;
}

/** Boot the kernel on a machine: buddy allocator, slab and kmalloc caches, kernel caches, the scheduler. */
export function bootKernel(m: Machine, options: BootOptions): BootedMachine {
  const buddy = new BuddyAllocator({
    memory: m.mem,
    pages: m.frames,
    zones: memLayoutOf(m.format).zones,
    poison: options.poison ?? 'off',
  });
  const slab = new SlabAllocator({ buddy });
  const kmalloc = new Kmalloc(slab);
  let policy: ReplacementPolicy;
  try {
    policy =
      options.policyFactory !== undefined
        ? options.policyFactory({ frameCount: m.mem.frameCount })
        : createPolicy(options.policy ?? 'lru-2list', { frameCount: m.mem.frameCount });
  } catch (err) {
    throw new InputError(`machine.policy: ${(err as Error).message}`);
  }
  let swapDevice: BlockDevice | null = null;
  /** The scratch directory of a default swap file, removed with it at shutdown. */
  let scratchDir: string | undefined;
  const swapOpt = options.swap;
  if (swapOpt !== undefined && swapOpt.bytes > 0) {
    const bytes = Math.floor(swapOpt.bytes / m.format.pageBytes) * m.format.pageBytes;
    let path = swapOpt.path;
    if (path === undefined) {
      scratchDir = mkdtempSync(join(tmpdir(), 'vmlab-swap-'));
      path = join(scratchDir, 'swapfile');
    }
    try {
      swapDevice = new BlockDevice({
        path,
        sizeBytes: bytes,
        blockBytes: Math.min(512, m.format.pageBytes),
        profile: swapOpt.profile ?? 'ssd',
        clock: m.clock,
        deleteOnClose: swapOpt.path === undefined,
      });
    } catch (err) {
      if (scratchDir !== undefined) rmSync(scratchDir, { recursive: true, force: true });
      if (err instanceof DiskError) throw new InputError(`machine.swap: ${err.message}`);
      throw err;
    }
  }
  const device = swapDevice;
  let filesRoot: string | undefined;
  let filesScratch: string | undefined;
  const from = options.files?.from;
  if (from !== undefined) {
    if (!existsSync(from) || !statSync(from).isDirectory()) {
      if (scratchDir !== undefined) rmSync(scratchDir, { recursive: true, force: true });
      throw new InputError(`files: ${from} is not a folder`);
    }
    if (options.files?.writeThrough === true) {
      filesRoot = from;
    } else {
      filesScratch = mkdtempSync(join(tmpdir(), 'vmlab-files-'));
      cpSync(from, filesScratch, { recursive: true });
      filesRoot = filesScratch;
    }
  }
  const kernel = new Kernel(
    { mem: m.mem, format: m.format, pages: m.frames, clock: m.clock, mmu: m.mmu, buddy, slab },
    {
      loader: options.loader,
      seed: m.config.seed,
      tunables: options.tunables,
      memory: { policy, scope: options.scope ?? 'global' },
      makeSwap: (caches) =>
        device === null ? null : new SwapArea({ device, mem: m.mem, chunkCache: caches.swapMapChunk }),
      files: { root: filesRoot, profile: options.files?.profile },
    },
  );
  kernel.fs.procfs = (path) => procSource(kernel, path);
  const shutdown = (): void => {
    kernel.shutdown();
    if (filesScratch !== undefined) rmSync(filesScratch, { recursive: true, force: true });
    device?.close();
    if (scratchDir !== undefined) rmSync(scratchDir, { recursive: true, force: true });
  };
  return { ...m, buddy, slab, kmalloc, kernel, swapDevice, shutdown };
}
