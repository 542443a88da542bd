/**
 * The kernel: boot (allocators, kernel caches), processes (spawn, fork, execve, exit, wait,
 * kill), the scheduler's run loop, and the page-fault entry. The kernel's own state is its
 * xstate actor (kernelMachine); each process's state is its task's actor.
 *
 * The run loop: fire due clock events; take the next ready task; switch to it (context-switch
 * cycles, address-space switch: ASID or TLB flush); run its program generator until its
 * quantum is spent, it blocks, yields, exits or is killed. Nothing is ready and tasks are
 * alive: the kernel idles and the clock jumps to the next event. No task is alive: halted.
 *
 * Nothing a workload does can crash the kernel: a user program's bad access is a signal for that
 * process, a user program's own exception kills that process with SIGABRT, and a failed
 * allocation is an error number or the OOM killer. A KernelPanic (a broken invariant) stops the
 * machine in the 'panic' state.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createActor } from 'xstate';
import { FdTable } from '../fs/fdtable.ts';
import {
  type FileCallEnv,
  sysClose,
  sysFstat,
  sysFsync,
  sysFtruncate,
  sysLseek,
  sysOpen,
  sysRead,
  sysUnlink,
  sysWrite,
} from '../fs/filecalls.ts';
import { canRead, canWrite, FileSystem, type Inode } from '../fs/vfs.ts';
import type { Clock } from '../hw/clock.ts';
import { BlockDevice, type DiskProfileName } from '../hw/disk.ts';
import type { Mmu } from '../hw/mmu.ts';
import { ACCESS_NAMES, ACCESS_WRITE, type MmuFault, MODE_KERNEL, MODE_USER } from '../hw/mmu.ts';
import type { PagingFormat } from '../hw/paging/format.ts';
import type { PhysicalMemory } from '../hw/physmem.ts';
import { EBADF, ECHILD, EFAULT, EINVAL, ENODEV, ENOENT, ENOMEM, ESRCH } from '../lib/errno.ts';
import { KernelPanic, panic } from '../lib/panic.ts';
import { Prng } from '../lib/prng.ts';
import {
  describeStatus,
  exitStatus,
  SIGABRT,
  SIGBUS,
  SIGKILL,
  SIGSEGV,
  signaledStatus,
  signalIsIgnoredByDefault,
  signalName,
} from '../lib/signals.ts';
import type { BuddyAllocator } from '../mm/buddy.ts';
import {
  FAULT_OOM,
  FAULT_SWAP_IN_MAJOR,
  FAULT_SWAP_IN_MINOR,
  type FaultResult,
  handleFault,
} from '../mm/fault.ts';
import { PageCache } from '../mm/filemap.ts';
import { createKernelCaches, type KernelCaches } from '../mm/kobjects.ts';
import {
  AddressSpace,
  DEFAULT_MM_TUNABLES,
  layoutFor,
  type MmServices,
  type MmTunables,
  putPage,
} from '../mm/mm.ts';
import {
  doBrk,
  doMadvise,
  doMincore,
  doMmap,
  doMprotect,
  doMremap,
  doMsync,
  doMunmap,
  type MmapEnv,
  VM_RAND_READ,
} from '../mm/mmap.ts';
import { type PageFrames, PG_ANON, PG_FILE } from '../mm/page.ts';
import { createPolicy } from '../mm/policy/index.ts';
import type { ReplacementPolicy } from '../mm/policy/types.ts';
import { NP_SWAP, PteCodec } from '../mm/pte.ts';
import { type MemoryGroup, Reclaimer, type ReclaimScope, type ReclaimWho } from '../mm/reclaim.ts';
import type { SlabAllocator } from '../mm/slab.ts';
import type { SwapArea } from '../mm/swap.ts';
import {
  type AnonFamily,
  type MappedFile,
  type SharedAnonObject,
  VM_ACCOUNT,
  VM_EXEC,
  VM_GROWSDOWN,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYWRITE,
  VM_READ,
  VM_WRITE,
  type Vma,
} from '../mm/vma.ts';
import { type EventLog, FAULT_SAMPLE } from '../observe/eventlog.ts';
import { VmEvents } from '../observe/vmevents.ts';
import { buildImageFile, imageLayout } from './binfmt.ts';
import { kernelMachine } from './machines.ts';
import { RoundRobin, type SchedPolicy } from './sched.ts';
import { GC_PAUSES_KEPT, Task } from './task.ts';
import {
  CLOCK_MONOTONIC,
  CLOCK_PROCESS_CPUTIME_ID,
  CLOCK_REALTIME,
  type GcReport,
  type PageInfo,
  type ProgramImage,
  type ProgramLoader,
  type Syscalls,
  TIMESPEC_BYTES,
  type UserCpu,
  type UserMain,
  WNOHANG,
} from './uapi.ts';

/** Thrown through a program's generator to end it: exit() or a fatal signal. */
export class ProcessEnd extends Error {
  constructor(readonly waitStatus: number) {
    super('process end');
  }
}

/** Thrown through a program's generator when execve replaced it. */
class ExecReplaced extends Error {}

/** Thrown out of a kernel-mode access of bad user memory: the syscall returns -EFAULT. */
class UserFault extends Error {}

export interface KernelTunables extends MmTunables {
  /** Scheduler quantum. */
  quantumCycles: number;
  /** Pages one reclaim pass frees at most (Linux's SWAP_CLUSTER_MAX). */
  reclaimBatchPages: number;
  /** Run kswapd (background reclaim between the low and high watermarks). */
  kswapd: boolean;
  /** vm.overcommit_memory: 0 heuristic, 1 always, 2 never beyond CommitLimit. */
  overcommitMemory: 0 | 1 | 2;
  /** vm.overcommit_ratio: percent of RAM in CommitLimit (mode 2). */
  overcommitRatio: number;
  /** Pid of the first process. */
  firstPid: number;
  /**
   * Bytes the program counter advances through the text at each instruction boundary (yield):
   * each boundary fetches one instruction there, so text pages are faulted in from the image
   * file and stay referenced. 0: no instruction fetches.
   */
  fetchStrideBytes: number;
  /** Readahead window on the first sequential miss, and its largest size, in pages (read_ahead_kb). */
  readaheadInitPages: number;
  readaheadMaxPages: number;
  /** vm.dirty_writeback_centisecs: how often the flusher wakes while file pages are dirty. */
  dirtyWritebackCycles: number;
  /** vm.dirty_expire_centisecs: a page dirty this long is written by the next flusher pass. */
  dirtyExpireCycles: number;
  /** vm.dirty_background_ratio: percent of dirtyable memory past which the flusher starts at once. */
  dirtyBackgroundRatio: number;
  /** vm.dirty_ratio: percent past which a writing process writes back itself and waits. */
  dirtyRatio: number;
}

export const DEFAULT_KERNEL_TUNABLES: Readonly<KernelTunables> = {
  ...DEFAULT_MM_TUNABLES,
  quantumCycles: 1_000_000,
  reclaimBatchPages: 32,
  kswapd: true,
  overcommitMemory: 0,
  overcommitRatio: 50,
  firstPid: 2,
  fetchStrideBytes: 64,
  readaheadInitPages: 4,
  readaheadMaxPages: 32, // read_ahead_kb 128 with 4 KiB pages
  // Linux's defaults at 1 GHz: 5 s and 30 s.
  dirtyWritebackCycles: 5_000_000_000,
  dirtyExpireCycles: 30_000_000_000,
  dirtyBackgroundRatio: 10,
  dirtyRatio: 20,
};

export interface KernelHardware {
  mem: PhysicalMemory;
  format: PagingFormat;
  pages: PageFrames;
  clock: Clock;
  mmu: Mmu;
  buddy: BuddyAllocator;
  slab: SlabAllocator;
}

/** Memory management choices made at boot. */
export interface KernelMemory {
  policy: ReplacementPolicy;
  swap: SwapArea | null;
  /** 'global': victims from any process; 'local': from the faulting process only. */
  scope: ReclaimScope;
}

/** How a new process starts (spawn from the host side). */
export interface SpawnOptions {
  oomScoreAdj?: number;
  /** Its environment (inherited by fork, kept across execve). */
  env?: Readonly<Record<string, string>>;
}

/** One line of the kernel log (dmesg). */
export interface KernelLogLine {
  time: number;
  text: string;
}

export class Kernel {
  readonly hw: KernelHardware;
  readonly tunables: KernelTunables;
  readonly caches: KernelCaches;
  readonly events = new VmEvents();
  readonly actor = createActor(kernelMachine);
  readonly pte: PteCodec;
  readonly services: MmServices;
  readonly log: KernelLogLine[] = [];
  /** Every task ever created, by pid (zombies and reaped ones included, for summaries). */
  readonly tasks = new Map<number, Task>();
  /** The scheduling policy (round-robin by default). */
  readonly sched: SchedPolicy = new RoundRobin();
  current: Task | null = null;
  /** Cycles the CPU spent idle (nothing ready: waiting for the disk or timers), periods ended. */
  idleCycles = 0;
  /** When the current idle period began (cycles), or -1 while the CPU is not idling. */
  private idleFrom = -1;

  /** Idle cycles up to now, the current idle period included (for samplers that fire in it). */
  idleCyclesNow(): number {
    return this.idleCycles + (this.idleFrom < 0 ? 0 : this.hw.clock.now - this.idleFrom);
  }
  private readonly loader: ProgramLoader;
  private readonly prng: Prng;
  private nextPid: number;
  private nextAsid = 1;
  private nextShmemId = 1;
  private lastRun: Task | null = null;
  private readonly syscallCost: number;

  readonly reclaimer: Reclaimer;
  readonly swap: SwapArea | null;
  readonly scope: ReclaimScope;
  readonly groups = new Map<string, MemoryGroup>();
  kswapdTask: Task | null = null;
  /** The files processes open and map, inside the sandbox root. */
  readonly fs: FileSystem;
  /** File pages in frames, shared by every reader and mapper. */
  readonly pageCache: PageCache;
  /** The disk files' data moves through. */
  readonly fileDisk: BlockDevice;
  private readonly scratchRoot: boolean;
  /** A page-sized kernel buffer for moving file data to and from user memory. */
  private readonly bounce: Uint8Array;
  /** FaultMemory: did the last filePage have to read from the disk? */
  fileReadWasMajor = false;

  constructor(
    hw: KernelHardware,
    options: {
      loader: ProgramLoader;
      seed: number;
      tunables?: Partial<KernelTunables>;
      memory?: Partial<Omit<KernelMemory, 'swap'>>;
      /** Make the swap area once the kernel caches exist (its slot map uses one). */
      makeSwap?: (caches: KernelCaches) => SwapArea | null;
      /**
       * The file system: its sandbox root (default: a scratch directory removed at shutdown)
       * and the disk its files' data moves through (default: a timing-only ssd).
       */
      files?: { root?: string; disk?: BlockDevice; profile?: DiskProfileName };
    },
  ) {
    this.hw = hw;
    this.tunables = { ...DEFAULT_KERNEL_TUNABLES, ...options.tunables };
    this.loader = options.loader;
    this.prng = new Prng(options.seed);
    this.nextPid = this.tunables.firstPid;
    this.pte = new PteCodec(hw.format);
    this.syscallCost = hw.mmu.cost.syscallCycles;
    this.actor.start();
    const scale = Math.min(1, hw.format.pageBytes / 4096);
    const objectBytes =
      scale < 1
        ? { task: Math.max(64, Math.floor(7744 * scale)), mm: Math.max(64, Math.floor(1088 * scale)) }
        : undefined;
    this.caches = createKernelCaches(hw.slab, { objectBytes });
    const vmaCache = this.caches.vma;
    const mmCache = this.caches.mm;
    this.services = {
      mem: hw.mem,
      fmt: hw.format,
      pte: this.pte,
      pages: hw.pages,
      buddy: hw.buddy,
      mmu: hw.mmu,
      events: this.events,
      vmaPool: { alloc: () => vmaCache.alloc(), free: (a) => vmaCache.free(a) },
      mmPool: { alloc: () => mmCache.alloc({ contents: 'zeroed' }), free: (a) => mmCache.free(a) },
      tunables: this.tunables,
      swapFree: (slot) => this.swapArea().put(slot),
      swapDup: (slot) => this.swapArea().dup(slot),
      newAnonFamily: (mm) => this.reclaimer.newFamily(mm),
      joinAnonFamily: (family, mm) => this.reclaimer.joinFamily(family, mm),
      leaveAnonFamilies: (mm) => this.reclaimer.leaveFamilies(mm),
      pageReleased: (pfn) => this.reclaimer.released(pfn),
      overcommitMode: () => this.tunables.overcommitMemory,
      commit: (pages) => this.vmEnoughMemory(pages),
      uncommit: (pages) => {
        this.committedAs -= pages;
      },
      newShmem: (sizePages) => ({ id: this.nextShmemId++, pages: new Map(), users: 1, sizePages }),
      putShmem: (obj) => this.putShmem(obj),
      fileMapped: (file, mm) => {
        file.mapUsers++;
        this.pageCache.addMapper(file, mm);
      },
      fileDirtied: (pfn) => this.pageCache.markDirty(pfn),
      fileVmaGone: (_mm, vma) => this.fileVmaGone(vma),
      mmGone: (mm) => this.pageCache.removeMapper(mm),
    };
    this.swap = options.makeSwap?.(this.caches) ?? null;
    this.scope = options.memory?.scope ?? 'global';
    const policy = options.memory?.policy ?? createPolicy('lru-2list', { frameCount: hw.pages.count });
    const anonVma = this.caches.anonVma;
    const anonVmaChain = this.caches.anonVmaChain;
    this.reclaimer = new Reclaimer(this.services, policy, {
      swap: this.swap,
      random: (b) => this.prng.below(b),
      pools: {
        anonVma: { alloc: () => anonVma.alloc(), free: (a) => anonVma.free(a) },
        anonVmaChain: { alloc: () => anonVmaChain.alloc(), free: (a) => anonVmaChain.free(a) },
      },
    });
    this.fileDisk =
      options.files?.disk ??
      new BlockDevice({
        path: null,
        sizeBytes: 0,
        profile: options.files?.profile ?? 'ssd',
        clock: hw.clock,
      });
    this.scratchRoot = options.files?.root === undefined;
    const root = options.files?.root ?? (() => mkdtempSync(join(tmpdir(), 'vmlab-files-')));
    this.pageCache = new PageCache(
      this.services,
      {
        // A page read for a running process (a fault, a read()) is charged to its limits.
        allocFrame: (reclaim) => this.allocFrame(this.current?.pid ?? -1, PG_FILE, reclaim),
        loaded: (pfn) => this.reclaimer.loadedFile(pfn),
        emptied: (file) => this.fs.maybeFree(file as Inode),
        dirtied: () => this.pageDirtied(),
        disk: this.fileDisk,
      },
      {
        readaheadInitPages: this.tunables.readaheadInitPages,
        readaheadMaxPages: this.tunables.readaheadMaxPages,
      },
    );
    this.reclaimer.files = this.pageCache;
    this.fs = new FileSystem(root, {
      caches: { inode: this.caches.inode, dentry: this.caches.dentry, file: this.caches.file },
      truncatePages: (inode, fromBytes) => this.pageCache.truncate(inode, fromBytes),
    });
    this.bounce = new Uint8Array(hw.format.pageBytes);
    if (policy.wantsEveryReference) {
      const reclaimer = this.reclaimer;
      hw.mmu.referenceHook = (pfn, access) => reclaimer.referencedBy(pfn, access === ACCESS_WRITE);
    }
    if (policy.tickCycles > 0) this.scheduleTick(policy.tickCycles);
    hw.mmu.setFaultHandler((fault) => this.pageFault(fault));
    if (this.tunables.kswapd) this.startKswapd();
    this.actor.send({ type: 'BOOTED' });
  }

  /** Committed_AS in pages: what every address space has committed. */
  committedAs = 0;

  /** CommitLimit in pages: swap + RAM x overcommit_ratio (the mode-2 ceiling). */
  commitLimit(): number {
    const ram = this.hw.buddy.managedPages();
    const swap = this.swap?.usableSlots ?? 0;
    return Math.floor((ram * this.tunables.overcommitRatio) / 100) + swap;
  }

  /** Linux's __vm_enough_memory: may `pages` more be committed? Commits them when yes. */
  private vmEnoughMemory(pages: number): boolean {
    const mode = this.tunables.overcommitMemory;
    if (mode === 0) {
      const total = this.hw.buddy.managedPages() + (this.swap?.usableSlots ?? 0);
      if (pages > total) return false;
    } else if (mode === 2) {
      if (this.committedAs + pages > this.commitLimit()) return false;
    }
    this.committedAs += pages;
    return true;
  }

  private swapArea(): SwapArea {
    if (this.swap === null) panic('swap: a swap entry exists but no swap area is configured');
    return this.swap;
  }

  private scheduleTick(period: number): void {
    this.hw.clock.after(period, 'policy tick', () => {
      // Tick while anything may still run (a live process, or a pending delayed start or I/O).
      if (this.liveTasks().length === 0 && this.hw.clock.pending() === 0) return;
      this.reclaimer.policy.onTick(this.reclaimer.view);
      this.scheduleTick(period);
    });
  }

  // ---- kswapd ----

  /** Start kswapd: a kernel thread that reclaims from below the low watermark up to high. */
  private startKswapd(): void {
    const task = Task.create(this.caches, this.nextPid++, 1, 'kswapd0');
    if (task === null) panic('kswapd: no memory for its task');
    task.kernelThread = true;
    this.tasks.set(task.pid, task);
    const k = this;
    task.program = (function* kswapd(): Generator<void, number | undefined, void> {
      for (;;) {
        while (k.belowHighWatermark()) {
          k.hw.slab.shrinkSlabs();
          const freed = k.reclaim(k.tunables.reclaimBatchPages, 'kswapd');
          if (freed === 0) break;
          yield;
        }
        task.blockOn = 'sleep';
        yield;
      }
    })();
    task.send({ type: 'ADMIT' });
    task.send({ type: 'DISPATCH' });
    task.send({ type: 'BLOCK_SLEEP' });
    this.kswapdTask = task;
    this.hw.buddy.onWatermarkCrossing((c) => {
      if (c.to === 'below-low' || c.to === 'below-min') this.wake(task);
    });
  }

  /**
   * kswapd works while the node is unbalanced: as Linux's pgdat_balanced, the node is balanced
   * as soon as one zone has free pages above its high watermark.
   */
  private belowHighWatermark(): boolean {
    const b = this.hw.buddy;
    for (let z = 0; z < b.zoneCount; z++) if (b.watermarkState(z) === 'above-high') return false;
    return true;
  }

  /** The kernel machine's state: 'booting', 'running', 'idle', 'halted' or 'panic'. */
  get state(): string {
    return String(this.actor.getSnapshot().value);
  }

  printk(text: string): void {
    this.log.push({ time: this.hw.clock.now, text });
    this.eventLog?.subsystem('kernel').info(text);
  }

  private eventLogSink: EventLog | null = null;

  /** The structured event log, when the run asked for one. */
  get eventLog(): EventLog | null {
    return this.eventLogSink;
  }

  /** Attach the event log (before processes start): reclaim and swap report to it too. */
  set eventLog(log: EventLog | null) {
    this.eventLogSink = log;
    this.reclaimer.trace =
      log === null
        ? null
        : {
            swapPages: log.swapPages,
            pass: (who, scope, scanned, freed) =>
              log.subsystem('reclaim').info({ event: 'reclaim', who, scope, scanned, freed }, 'reclaim pass'),
            swapOut: (pfn, slot) => log.subsystem('swap').debug({ event: 'swap_out', pfn, slot }, 'swap out'),
          };
  }

  // ---- processes ----

  /**
   * Start a program as a new process (a child of init). Returns the task, or an errno (negative)
   * when the program does not exist or memory is short.
   */
  spawn(path: string, argv: string[], options: SpawnOptions = {}): Task | number {
    const image = this.loader(path);
    if (image === undefined) return -ENOENT;
    return this.spawnImage(image, argv, options);
  }

  /** Start a program image as a new process (a child of init): the task, or -errno. */
  spawnImage(image: ProgramImage, argv: string[], options: SpawnOptions = {}): Task | number {
    if (this.state === 'halted' || this.state === 'panic') {
      throw new Error(`spawn: the kernel is ${this.state}; boot a new machine to run more programs`);
    }
    const task = Task.create(this.caches, this.nextPid, 1, baseName(image.path));
    if (task === null) return -ENOMEM;
    this.nextPid++;
    task.oomScoreAdj = options.oomScoreAdj ?? 0;
    task.env = { ...options.env };
    task.startTime = this.hw.clock.now;
    const files = this.consoleFiles();
    if (files === null) {
      task.destroy();
      return -ENOMEM;
    }
    task.files = files;
    this.tasks.set(task.pid, task);
    const err = this.loadImage(task, image, argv);
    if (err < 0) {
      this.tasks.delete(task.pid);
      files.destroy(this.fs);
      task.files = null;
      task.destroy();
      return err;
    }
    this.admit(task);
    this.eventLog
      ?.process(task.pid, task.comm)
      .info({ event: 'spawn', ppid: task.ppid, argv }, 'process started');
    return task;
  }

  /** A descriptor table holding stdin, stdout and stderr (0, 1, 2), or null when memory is short. */
  private consoleFiles(): FdTable | null {
    const table = FdTable.create(this.caches.files);
    if (table === null) return null;
    for (const stream of ['stdin', 'stdout', 'stderr'] as const) {
      const f = this.fs.openConsole(stream);
      if (f === null) {
        table.destroy(this.fs);
        return null;
      }
      table.install(f);
    }
    return table;
  }

  /**
   * Write every dirty file page to its file and let go of the host (the machine is shutting
   * down). A scratch sandbox root is removed.
   */
  shutdown(): void {
    this.pageCache.syncAll();
    this.fs.shutdown();
    if (this.scratchRoot && this.fs.hasRoot) rmSync(this.fs.root, { recursive: true, force: true });
  }

  /**
   * Map [start, end) anonymous read-write-execute memory into `task` directly (host-side tools
   * such as trace replay, which place memory where a trace says, fetches included). Returns 0 or
   * -errno.
   */
  mapAnonymous(task: Task, start: number, end: number): number {
    const mm = task.mm;
    if (mm === null) return -EINVAL;
    const page = this.hw.format.pageBytes;
    if (start % page !== 0 || end % page !== 0 || start >= end || end > 2 ** this.hw.format.vaBits)
      return -EINVAL;
    if (mm.vmas.overlaps(start, end)) return -EINVAL;
    const flags = VM_READ | VM_WRITE | VM_EXEC | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_ACCOUNT;
    const v = mm.vmas.create({ start, end, flags, backing: { kind: 'anon' } });
    if (v === undefined) return -ENOMEM;
    mm.vmas.mergeAround(v);
    return 0;
  }

  /** Tasks that are neither zombies nor reaped. */
  liveTasks(): Task[] {
    return [...this.tasks.values()].filter((t) => t.isAlive() && !t.kernelThread);
  }

  /**
   * Run until every process has exited, or until emulated time `untilCycles`. Returns the
   * kernel state ('halted', 'idle'/'running' when stopped by time, 'panic').
   */
  run(options: { untilCycles?: number } = {}): string {
    const until = options.untilCycles ?? Number.POSITIVE_INFINITY;
    const clock = this.hw.clock;
    try {
      while (this.state !== 'halted' && this.state !== 'panic') {
        if (clock.now >= until) break;
        clock.fireDue();
        const live = this.liveTasks().length;
        const task = live === 0 ? undefined : this.sched.pickNext();
        if (task === undefined) {
          const pendingEvents = clock.pending();
          this.actor.send({ type: 'NOTHING_READY', liveTasks: live, pendingEvents });
          if (live === 0 && pendingEvents === 0) break;
          if (pendingEvents === 0) {
            // Only observers (samplers) are left: nothing can ever wake these tasks.
            panic(`schedule: ${live} tasks alive, none ready and no event pending (deadlock)`);
          }
          this.idleFrom = clock.now;
          clock.runUntil(Math.min(clock.nextEventTime(), until));
          this.idleCycles += clock.now - this.idleFrom;
          this.idleFrom = -1;
          continue;
        }
        this.dispatch(task, until);
      }
    } catch (err) {
      if (err instanceof KernelPanic) {
        this.printk(`Kernel panic - not syncing: ${err.message}`);
        this.actor.send({ type: 'PANIC', message: err.message });
        return this.state;
      }
      throw err;
    }
    return this.state;
  }

  /** Check every allocator and address space (tests call this after each step). */
  checkInvariants(): void {
    this.hw.buddy.checkInvariants();
    this.hw.slab.checkInvariants();
    const mmu = this.hw.mmu;
    mmu.dtlb.checkInvariants();
    if (mmu.itlb !== mmu.dtlb) mmu.itlb.checkInvariants();
    mmu.stlb?.checkInvariants();
    let anonMapped = 0;
    for (const t of this.tasks.values()) {
      if (t.mm !== null) {
        t.mm.checkInvariants();
        anonMapped += t.mm.rss();
      }
    }
    this.pageCache.checkInvariants();
    this.fs.checkInvariants();
    const pages = this.hw.pages;
    let mapcountSum = 0;
    for (let pfn = 0; pfn < pages.count; pfn++)
      if (pages.has(pfn, PG_ANON) || pages.has(pfn, PG_FILE)) mapcountSum += pages.mapcount[pfn]!;
    if (mapcountSum !== anonMapped)
      panic(`kernelCheck: ${mapcountSum} user mappings counted by frames, ${anonMapped} by address spaces`);
  }

  // ---- the scheduler ----

  private admit(task: Task): void {
    task.send({ type: 'ADMIT' });
    this.makeReady(task, 'admit');
  }

  private makeReady(task: Task, reason: 'admit' | 'preempt' | 'yield' | 'wake'): void {
    this.sched.enqueue(task, reason);
    if (this.state === 'idle') this.actor.send({ type: 'TASK_READY' });
  }

  /** Switch to `task` and run its program for one quantum (or less). */
  private dispatch(task: Task, until: number): void {
    const { clock, mmu } = this.hw;
    if (!task.send({ type: 'DISPATCH' })) panic(`dispatch: pid ${task.pid} is ${task.state}, not ready`);
    if (this.lastRun !== task) {
      clock.now += mmu.cost.contextSwitchCycles;
      this.events.context_switches++;
      this.lastRun = task;
    }
    if (task.mm !== null) {
      mmu.switchAddressSpace(task.mm.tables.root, task.mm.asid);
      mmu.setMode(MODE_USER);
    } else {
      mmu.setMode(MODE_KERNEL); // a kernel thread borrows the last address space
    }
    this.current = task;
    const sliceStart = clock.now;
    this.sliceStart = sliceStart;
    const sliceEnd = Math.min(clock.now + this.tunables.quantumCycles, until);
    try {
      this.runSlice(task, sliceEnd);
    } finally {
      task.cpuCycles += clock.now - sliceStart;
      this.current = null;
    }
  }

  private runSlice(task: Task, sliceEnd: number): void {
    const clock = this.hw.clock;
    const fetchStride = task.mm === null ? 0 : this.tunables.fetchStrideBytes;
    for (;;) {
      let step: IteratorResult<void, number | undefined>;
      try {
        step = task.program!.next();
        // The next instruction is fetched when the program goes on (not when it just blocked).
        if (fetchStride > 0 && !step.done && task.blockOn === null && task.pendingEnd === null)
          this.fetchInstruction(task, fetchStride);
      } catch (err) {
        if (err instanceof ExecReplaced) continue;
        if (err instanceof ProcessEnd) {
          this.terminate(task, task.pendingEnd ?? err.waitStatus);
          return;
        }
        if (err instanceof KernelPanic) throw err;
        this.printk(`${task.comm}[${task.pid}]: program error: ${(err as Error).message ?? String(err)}`);
        this.terminate(task, signaledStatus(SIGABRT));
        return;
      }
      if (task.pendingEnd !== null) {
        this.terminate(task, task.pendingEnd);
        return;
      }
      if (step.done) {
        this.terminate(task, exitStatus(step.value ?? 0));
        return;
      }
      if (task.blockOn !== null) {
        this.block(task);
        return;
      }
      if (task.yieldRequested) {
        task.yieldRequested = false;
        task.send({ type: 'YIELD' });
        this.makeReady(task, 'yield');
        return;
      }
      if (clock.now >= sliceEnd) {
        task.send({ type: 'PREEMPT' });
        this.makeReady(task, 'preempt');
        return;
      }
    }
  }

  /**
   * The instruction fetch at an instruction boundary: the program counter walks the text
   * `stride` bytes at a time and wraps, as a program looping through its code. A fault here is
   * an ordinary page fault of the process (a text page read from its image file).
   */
  private fetchInstruction(task: Task, stride: number): void {
    const mm = task.mm;
    if (mm === null) return; // execve failed half-way, or the task is ending
    const span = mm.endCode - mm.startCode;
    if (span <= 0) return;
    const va = mm.startCode + task.textOffset;
    task.textOffset = (task.textOffset + stride) % span;
    this.hw.mmu.fetch8(va);
  }

  private block(task: Task): void {
    const reason = task.blockOn!;
    task.blockOn = null;
    task.send({ type: reason === 'io' ? 'BLOCK_IO' : reason === 'wait' ? 'BLOCK_WAIT' : 'BLOCK_SLEEP' });
    if (reason === 'io') {
      this.hw.clock.schedule(task.ioDoneAt, `io done pid ${task.pid}`, () => this.wake(task));
    }
  }

  /** Make a blocked task ready again (no-op for any other state). */
  wake(task: Task): void {
    if (task.state.startsWith('blocked') && task.send({ type: 'WAKE' })) this.makeReady(task, 'wake');
  }

  // ---- exit, wait, signals ----

  /**
   * End a task with `waitStatus`: free its address space, make it a zombie, hand its children
   * to init, and notify its parent (init reaps at once).
   */
  private terminate(task: Task, waitStatus: number): void {
    const sig = waitStatus & 0x7f;
    const ok =
      sig !== 0
        ? task.send({ type: 'KILL', signal: sig })
        : task.send({ type: 'EXIT', code: (waitStatus >> 8) & 0xff });
    if (!ok) panic(`terminate: pid ${task.pid} cannot end from state ${task.state}`);
    task.waitStatus = waitStatus;
    task.endTime = this.hw.clock.now;
    this.eventLog?.process(task.pid, task.comm).info(
      {
        event: 'exit',
        status: waitStatus,
        how: describeStatus(waitStatus),
        minflt: task.minFlt,
        majflt: task.majFlt,
      },
      'process ended',
    );
    this.sched.remove(task);
    if (task !== this.current && task.program !== null) {
      try {
        task.program.return(undefined);
      } catch {
        // a program's finally block misbehaving cannot stop its death
      }
    }
    task.program = null;
    if (task.files !== null) {
      task.files.destroy(this.fs);
      task.files = null;
    }
    if (task.mm !== null) {
      task.peakRssPages = Math.max(task.peakRssPages, task.mm.hiwaterRss);
      task.swapPagesAtEnd = task.mm.swapEntries;
      task.mm.destroy();
      task.mm = null;
    }
    for (const child of task.children) {
      child.ppid = 1;
      if (child.state === 'zombie') this.reap(child);
    }
    task.children = [];
    const parent = this.tasks.get(task.ppid);
    if (parent === undefined || !parent.isAlive()) {
      this.reap(task);
    } else if (parent.state === 'blocked.wait') {
      this.wake(parent);
    }
    if (this.lastRun === task) this.lastRun = null;
  }

  /** Reap a zombie: REAP, free the task_struct, add its fault counts to the parent's. */
  private reap(task: Task): void {
    if (!task.send({ type: 'REAP' })) panic(`reap: pid ${task.pid} is ${task.state}, not a zombie`);
    const parent = this.tasks.get(task.ppid);
    if (parent !== undefined) {
      parent.cminFlt += task.minFlt + task.cminFlt;
      parent.cmajFlt += task.majFlt + task.cmajFlt;
      parent.children = parent.children.filter((c) => c !== task);
    }
    task.destroy();
  }

  /** Send signal `sig` to `target`. Default actions only: terminate, or ignore. */
  private signal(target: Task, sig: number): void {
    this.eventLogSink
      ?.process(target.pid, target.comm)
      .info({ event: 'signal', sig, from: this.current?.pid ?? 0 }, 'signal');
    if (signalIsIgnoredByDefault(sig) || !target.isAlive()) return;
    if (target === this.current) this.endCurrent(signaledStatus(sig));
    this.terminate(target, signaledStatus(sig));
  }

  // ---- page faults ----

  /** The MMU's page-fault trap. Returns to retry the access; throws to abandon it. */
  private pageFault(fault: Readonly<MmuFault>): void {
    const task = this.current;
    if (task === null || task.mm === null)
      panic(`pageFault: ${fault.kind} fault at 0x${fault.va.toString(16)} with no current process`);
    if (fault.kind === 'reserved' || fault.kind === 'bus') {
      panic(
        `pageFault: ${fault.kind} fault at 0x${fault.va.toString(16)} level ${fault.level}: corrupt page table`,
      );
    }
    const result: FaultResult =
      fault.kind === 'address-size' || fault.kind === 'tlb-miss'
        ? { kind: 'sigsegv', code: 1 }
        : handleFault(task.mm, fault, this);
    switch (result.kind) {
      case 'handled':
        this.events.pgfault++;
        if (this.eventLogSink !== null) this.logFault(task, fault, result);
        if (result.major) {
          this.events.pgmajfault++;
          task.majFlt++;
        } else {
          task.minFlt++;
        }
        return;
      case 'oom':
        this.outOfMemory(task, fault);
        return;
      case 'sigsegv':
      case 'sigbus': {
        if (fault.mode === MODE_KERNEL) throw new UserFault();
        const sig = result.kind === 'sigsegv' ? SIGSEGV : SIGBUS;
        this.eventLogSink
          ?.process(task.pid, task.comm)
          .info(
            { event: 'signal', sig, va: fault.va, from: 0 },
            result.kind === 'sigsegv' ? 'SIGSEGV' : 'SIGBUS',
          );
        this.logSegfault(task, fault, sig);
        this.endCurrent(signaledStatus(sig));
      }
    }
  }

  /** The event log's fault line: every fault at debug level, one in FAULT_SAMPLE at info. */
  private logFault(task: Task, fault: Readonly<MmuFault>, result: FaultResult & { kind: 'handled' }): void {
    const log = this.eventLogSink!;
    const fields = { event: 'fault', va: fault.va, how: result.how, major: result.major };
    if (log.faults) log.process(task.pid, task.comm).debug(fields, 'page fault');
    else if (this.events.pgfault % FAULT_SAMPLE === 0)
      log.process(task.pid, task.comm).info({ ...fields, sampled: FAULT_SAMPLE }, 'page fault (sampled)');
  }

  /** End the running task: record the status and unwind its program. */
  private endCurrent(waitStatus: number): never {
    const task = this.current;
    if (task === null) panic('endCurrent: no current task');
    if (task.pendingEnd === null) task.pendingEnd = waitStatus;
    throw new ProcessEnd(task.pendingEnd);
  }

  /** Linux's "segfault at" line. vmlab has no instruction pointer: the text start stands in for ip. */
  private logSegfault(task: Task, fault: Readonly<MmuFault>, sig: number): void {
    const mm = task.mm!;
    let error = 0;
    if (fault.kind === 'protection') error |= 1;
    if (fault.access === ACCESS_WRITE) error |= 2;
    if (fault.mode === MODE_USER) error |= 4;
    if (ACCESS_NAMES[fault.access] === 'execute') error |= 16;
    const hex16 = (n: number): string => n.toString(16).padStart(16, '0');
    const what = sig === SIGSEGV ? 'segfault' : 'bus error';
    this.printk(
      `${task.comm}[${task.pid}]: ${what} at ${fault.va.toString(16)} ip ${hex16(mm.startCode)} sp ${hex16(mm.startStack)} ` +
        `error ${error} in ${task.comm}[${mm.startCode.toString(16)}+${(mm.endCode - mm.startCode).toString(16)}]`,
    );
  }

  /** No memory for a fault: the OOM killer picks a victim; the access retries if it was not us. */
  private outOfMemory(task: Task, fault: Readonly<MmuFault>): void {
    const victim = this.oomVictim();
    if (victim === undefined) {
      this.printk(
        `Out of memory and no killable process: killing ${task.comm}[${task.pid}] (faulting at 0x${fault.va.toString(16)})`,
      );
      this.endCurrent(signaledStatus(SIGKILL));
    }
    this.oomKill(victim);
    if (victim === task) this.endCurrent(signaledStatus(SIGKILL));
  }

  /** The OOM killer's totalpages: RAM and swap, as Linux's totalram_pages() + total_swap_pages. */
  oomTotalPages(): number {
    return this.hw.buddy.managedPages() + (this.swap?.usableSlots ?? 0);
  }

  /** Linux's badness: rss + swap entries + page-table pages, adjusted by oom_score_adj. */
  oomBadness(task: Task): number {
    if (task.mm === null || task.oomScoreAdj === -1000) return Number.NEGATIVE_INFINITY;
    const totalPages = this.oomTotalPages();
    const points = task.mm.rss() + task.mm.swapEntries + task.mm.tables.tablePages;
    // Linux: adj *= totalpages / 1000 (integer division), points += adj.
    return points + task.oomScoreAdj * Math.floor(totalPages / 1000);
  }

  private oomVictim(): Task | undefined {
    let best: Task | undefined;
    let bestScore = Number.NEGATIVE_INFINITY;
    for (const t of this.liveTasks()) {
      const s = this.oomBadness(t);
      if (s > bestScore) {
        best = t;
        bestScore = s;
      }
    }
    return best;
  }

  private oomKill(victim: Task): void {
    const mm = victim.mm!;
    const kb = this.hw.format.pageBytes / 1024;
    this.printk(
      `Out of memory: Killed process ${victim.pid} (${victim.comm}) total-vm:${mm.totalVm() / 1024}kB, ` +
        `anon-rss:${(mm.rssAnon * kb).toFixed(0)}kB, file-rss:${(mm.rssFile * kb).toFixed(0)}kB, ` +
        `shmem-rss:${(mm.rssShmem * kb).toFixed(0)}kB, UID:0 pgtables:${(mm.tables.tablePages * kb).toFixed(0)}kB oom_score_adj:${victim.oomScoreAdj}`,
    );
    this.events.oom_kill++;
    this.eventLog
      ?.subsystem('oom')
      .info({ event: 'oom_kill', pid: victim.pid, comm: victim.comm, rss: mm.rss() }, 'OOM kill');
    if (victim !== this.current) this.terminate(victim, signaledStatus(SIGKILL));
  }

  /** A zeroed user frame for `pid`, or -1 (FaultMemory). */
  allocUserFrame(pid: number): number {
    return this.allocFrame(pid, PG_ANON, 'yes');
  }

  /**
   * A zeroed frame typed `owner` (PG_ANON for `pid`, or PG_FILE for the page cache), reclaiming
   * when memory is short and `reclaim` is 'yes' (readahead asks with 'no'). -1 when none.
   */
  private allocFrame(pid: number, owner: number, reclaim: 'yes' | 'no'): number {
    if (reclaim === 'no') return this.hw.buddy.alloc(0, { owner, contents: 'zeroed' });
    const task = this.tasks.get(pid);
    const mm = task?.mm ?? null;
    if (task !== undefined) this.enforceResidentLimits(task);
    let pfn = this.hw.buddy.alloc(0, { owner, contents: 'zeroed' });
    if (pfn < 0) {
      this.events.allocstall_movable++;
      this.hw.slab.shrinkSlabs(); // reclaimable slab caches give back their empty slabs first
      const local = this.scope === 'local' && mm !== null;
      this.reclaim(this.tunables.reclaimBatchPages, 'direct', local ? { mm } : {});
      pfn = this.hw.buddy.alloc(0, { owner, contents: 'zeroed' });
      if (pfn < 0 && local) {
        this.reclaim(this.tunables.reclaimBatchPages, 'direct');
        pfn = this.hw.buddy.alloc(0, { owner, contents: 'zeroed' });
      }
    }
    if (pfn < 0) return -1;

    this.hw.pages.owner[pfn] = pid;
    return pfn;
  }

  /**
   * Before a page becomes resident in `task` (allocated, or a cached file page mapped): keep
   * its resident limit and its group's limit (local and group replacement).
   */
  private enforceResidentLimits(task: Task): void {
    const mm = task.mm;
    if (mm === null) return;
    const limit = task.residentLimitPages;
    if (limit > 0 && mm.rss() >= limit) this.reclaim(mm.rss() - limit + 1, 'direct', { mm });
    const group = task.group;
    if (group !== null && this.groupRss(group) >= group.limitPages) {
      this.reclaim(this.groupRss(group) - group.limitPages + 1, 'direct', { group });
    }
  }

  /**
   * Reclaim up to `count` pages (Reclaimer.reclaim); the running task (the faulting process, or
   * kswapd) then sleeps at its next yield until what reclaim wrote out has reached the disk.
   */
  private reclaim(
    count: number,
    who: ReclaimWho,
    scope: { mm?: AddressSpace; group?: MemoryGroup } = {},
  ): number {
    const freed = this.reclaimer.reclaim(count, who, scope);
    this.waitForIo(this.reclaimer.writeDoneAt);
    return freed;
  }

  /** Resident pages of a group's members. */
  groupRss(group: MemoryGroup): number {
    let n = 0;
    for (const mm of group.members) n += mm.rss();
    return n;
  }

  /** FaultMemory: a private anonymous page became resident. */
  pageLoaded(pfn: number, family: AnonFamily, write: boolean): void {
    this.reclaimer.loaded(pfn, family, write);
  }

  /** FaultMemory: may a swap-cache page be written in place? */
  reuseSwapCachePage(pfn: number): boolean {
    return this.reclaimer.reuseSwapCachePage(pfn);
  }

  /**
   * FaultMemory: bring swap slot `slot` back for `as` at `va` (entry at `pa`). A page still in
   * the swap cache (another process brought it in) is a minor fault; otherwise the page is read
   * from the disk (a major fault: the process sleeps at its next yield until the read is done).
   */
  swapIn(as: AddressSpace, vma: Vma, va: number, pa: number, slot: number): FaultResult {
    const swap = this.swapArea();
    const pages = this.hw.pages;
    const cached = swap.cachePfn[slot]!;
    if (cached >= 0) {
      as.tables.write(pa, 0, 0);
      pages.refcount[cached]!++;
      if (!as.installPage(vma, va, cached, { writable: false, dirty: false })) {
        panic('swapIn: the page table vanished under a swap entry');
      }
      as.swapEntries--;
      swap.put(slot);
      return FAULT_SWAP_IN_MINOR;
    }
    if (vma.anon === null) {
      const family = this.reclaimer.newFamily(as);
      if (family === undefined) return FAULT_OOM;
      vma.anon = family;
    }
    const pfn = this.allocUserFrame(as.ownerPid);
    if (pfn < 0) return FAULT_OOM;
    const done = swap.readIn(slot, pfn);
    const task = this.current;
    if (task !== null) {
      task.blockOn = 'io';
      task.ioDoneAt = Math.max(task.ioDoneAt, done);
    }
    swap.dup(slot);
    this.reclaimer.attachSwapCache(pfn, slot);
    pages.index[pfn] = vma.anonIndex(va, as.pageBytes);
    as.tables.write(pa, 0, 0);
    as.swapEntries--;
    swap.put(slot);
    const exclusive = swap.count[slot] === 1;
    if (
      !as.installPage(vma, va, pfn, { writable: exclusive && (vma.flags & VM_WRITE) !== 0, dirty: false })
    ) {
      panic('swapIn: the page table vanished under a swap entry');
    }
    const shadow = swap.shadow[slot]!;
    const distance = shadow >= 0 ? this.reclaimer.evictions - shadow : undefined;
    if (distance !== undefined) this.events.workingset_refault_anon++;
    this.reclaimer.loaded(pfn, vma.anon, false, distance);
    this.events.pswpin++;
    this.events.pgpgin += this.hw.format.pageBytes / 1024;
    if (this.eventLogSink?.swapPages)
      this.eventLogSink
        .subsystem('swap')
        .debug({ event: 'swap_in', pid: as.ownerPid, va, slot, pfn }, 'swap in');
    return FAULT_SWAP_IN_MAJOR;
  }

  /** FaultMemory: the page-cache frame for page `index` of `file`; the process waits for a read. */
  filePage(file: MappedFile, index: number, vma: Vma): number {
    if (this.current !== null) this.enforceResidentLimits(this.current);
    const pattern = (vma.flags & VM_RAND_READ) !== 0 ? 'random' : 'sequential';
    const pfn = this.pageCache.getPage(file as Inode, index, pattern);
    if (pfn < 0) return -1;
    this.fileReadWasMajor = this.pageCache.lastMajor;
    this.waitForIo(this.pageCache.lastReadyAt);
    return pfn;
  }

  // ---- writeback (the flusher) ----

  /** The flusher's next pass (cycles), or Infinity when none is armed. */
  private writebackAt = Number.POSITIVE_INFINITY;

  /**
   * Dirty-page limits in pages, from the dirtyable memory (free pages and the page cache, as
   * Linux's global_dirtyable_memory): past `background` the flusher writes at once; past
   * `throttle` a writing process writes back itself.
   */
  dirtyLimits(): { background: number; throttle: number } {
    const dirtyable = this.hw.buddy.freePages() + this.pageCache.nrPages;
    return {
      background: Math.floor((dirtyable * this.tunables.dirtyBackgroundRatio) / 100),
      throttle: Math.floor((dirtyable * this.tunables.dirtyRatio) / 100),
    };
  }

  /** A file page became dirty: arm the flusher (now, past the background limit). */
  private pageDirtied(): void {
    const overBackground = this.pageCache.nrDirty > this.dirtyLimits().background;
    this.armWriteback(overBackground ? 0 : this.tunables.dirtyWritebackCycles);
  }

  /** Make sure a flusher pass runs at most `delay` cycles from now. */
  private armWriteback(delay: number): void {
    const at = this.hw.clock.now + delay;
    if (at >= this.writebackAt) return;
    this.writebackAt = at;
    this.hw.clock.schedule(
      at,
      'writeback',
      () => {
        if (this.writebackAt !== at) return; // superseded by an earlier pass
        this.writebackAt = Number.POSITIVE_INFINITY;
        this.writebackPass();
      },
      { background: true },
    );
  }

  /**
   * One flusher pass (Linux's wb_workfn): write the pages dirty for longer than the expire
   * interval, and, past the background limit, the oldest others until below it. Writes are
   * queued on the disk; no process waits for them. Re-arms while dirty pages remain.
   */
  private writebackPass(): void {
    const pc = this.pageCache;
    const excess = Math.max(0, pc.nrDirty - this.dirtyLimits().background);
    const expired = this.hw.clock.now - this.tunables.dirtyExpireCycles;
    const batch: number[] = [];
    for (const pfn of pc.dirtyPages(pc.nrDirty)) {
      if (pc.dirtiedAt[pfn]! > expired && batch.length >= excess) break;
      batch.push(pfn);
    }
    pc.writePages(batch);
    const written = batch.length;
    if (written > 0) {
      this.eventLog?.subsystem('writeback').debug({ event: 'writeback', pages: written }, 'flusher pass');
    }
    if (pc.nrDirty > 0) this.armWriteback(this.tunables.dirtyWritebackCycles);
  }

  /**
   * Linux's balance_dirty_pages: a process that dirtied pages past the throttle limit writes
   * back the oldest dirty pages down to the background limit and sleeps until they are written.
   */
  private throttleWriter(): void {
    const pc = this.pageCache;
    const limits = this.dirtyLimits();
    if (pc.nrDirty <= limits.throttle) return;
    this.waitForIo(pc.writePages(pc.dirtyPages(pc.nrDirty - limits.background)));
  }

  /** After a write(): throttle the writer when too much is dirty. Returns `result`. */
  private written(result: number): number {
    if (result > 0) this.throttleWriter();
    return result;
  }

  /** The running process sleeps (at its next yield) until emulated time `time`. */
  private waitForIo(time: number): void {
    const task = this.current;
    if (task === null || time <= this.hw.clock.now) return;
    task.blockOn = 'io';
    task.ioDoneAt = Math.max(task.ioDoneAt, time);
  }

  /** A VMA of a file is gone: a shared one's dirty pages go to the file; the file loses a user. */
  private fileVmaGone(vma: Vma): void {
    if (vma.backing.kind !== 'file') return;
    const file = vma.backing.file as Inode;
    if (vma.isShared())
      this.pageCache.syncRange(file, vma.pgoff, vma.pgoff + vma.length / this.hw.format.pageBytes);
    file.mapUsers--;
    this.fs.maybeFree(file);
  }

  private putShmem(obj: SharedAnonObject): void {
    if (--obj.users > 0) return;
    for (const pfn of obj.pages.values()) putPage(this.services, pfn);
    obj.pages.clear();
  }

  // ---- address spaces and programs ----

  private newAddressSpace(pid: number): AddressSpace | undefined {
    const layout = layoutFor(this.hw.format, this.tunables, this.prng);
    const mm = AddressSpace.create(this.services, layout);
    if (mm === undefined) return undefined;
    mm.ownerPid = pid;
    mm.asid = this.hw.mmu.asidBits === 0 ? 0 : this.allocAsid();
    return mm;
  }

  private allocAsid(): number {
    const limit = 2 ** this.hw.mmu.asidBits;
    const asid = this.nextAsid;
    this.nextAsid = this.nextAsid + 1 >= limit ? 1 : this.nextAsid + 1;
    if (this.nextAsid === 1) this.hw.mmu.flushTlb(); // generation roll-over: old tags may be reused
    this.hw.mmu.invalidateAsid(asid);
    return asid;
  }

  /**
   * Give `task` a fresh address space laid out for `image` (text, data, bss, heap start, stack)
   * and a fresh program. Returns 0 or -ENOMEM (the task is left as it was).
   */
  private loadImage(task: Task, image: ProgramImage, argv: string[]): number {
    const mm = this.newAddressSpace(task.pid);
    if (mm === undefined) return -ENOMEM;
    const page = this.hw.format.pageBytes;
    const up = (n: number): number => Math.ceil(n / page) * page;
    const layout = imageLayout(image, page);
    const textStart = mm.layout.textStart;
    const textEnd = textStart + layout.textFileBytes;
    const dataEnd = textEnd + up(image.dataBytes);
    const bssEnd = dataEnd + up(image.bssBytes);
    const stackTop = mm.layout.stackTop;
    const stackStart = stackTop - 32 * page > bssEnd ? stackTop - 32 * page : stackTop - page;
    if (image.bare !== true) {
      const rw = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_ACCOUNT;
      const err = this.mapImage(mm, image, { textStart, textEnd, dataEnd, bssEnd });
      const mapped =
        err < 0 ? err : this.mapSegment(mm, { start: stackStart, end: stackTop, flags: rw | VM_GROWSDOWN });
      if (mapped < 0) {
        mm.destroy();
        return mapped;
      }
    }
    mm.startCode = textStart;
    mm.endCode = image.bare === true ? textStart : textEnd;
    mm.startData = textEnd;
    mm.endData = dataEnd;
    mm.startBrk = bssEnd + mm.layout.brkOffset;
    mm.brk = mm.startBrk;
    mm.startStack = stackTop - page;
    mm.updateHiwater();
    if (task.mm !== null) {
      task.peakRssPages = Math.max(task.peakRssPages, task.mm.hiwaterRss);
      task.mm.destroy();
    }
    task.mm = mm;
    task.comm = baseName(image.path).slice(0, 15);
    this.startProgram(task, image.main, argv);
    return 0;
  }

  /**
   * Map a program's segments from its image file (binfmt.ts): text r-x and data rw-, both
   * private mappings of the file (text shared through the page cache, data copied on write),
   * and bss anonymous. 0 or -errno; on failure the caller destroys `mm`.
   */
  private mapImage(
    mm: AddressSpace,
    image: ProgramImage,
    at: { textStart: number; textEnd: number; dataEnd: number; bssEnd: number },
  ): number {
    const page = this.hw.format.pageBytes;
    const file = this.fs.programImage(image.path, () => buildImageFile(image, page));
    if (typeof file === 'number') return file;
    const rw = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_ACCOUNT;
    const text = VM_READ | VM_EXEC | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
    const dataPgoff = imageLayout(image, page).dataOffset / page;
    const segments = [
      { start: at.textStart, end: at.textEnd, flags: text, file, pgoff: 0 },
      { start: at.textEnd, end: at.dataEnd, flags: rw, file, pgoff: dataPgoff },
      { start: at.dataEnd, end: at.bssEnd, flags: rw },
    ];
    for (const segment of segments) {
      const err = this.mapSegment(mm, segment);
      if (err < 0) {
        this.fs.maybeFree(file);
        return err;
      }
    }
    return 0;
  }

  /** One VMA of a new image: anonymous, or private of `file` from page `pgoff`. 0 or -ENOMEM. */
  private mapSegment(
    mm: AddressSpace,
    s: { start: number; end: number; flags: number; file?: Inode; pgoff?: number },
  ): number {
    if (s.end <= s.start) return 0;
    const page = this.hw.format.pageBytes;
    if ((s.flags & VM_ACCOUNT) !== 0 && !mm.charge((s.end - s.start) / page)) return -ENOMEM;
    const vma = mm.vmas.create({
      start: s.start,
      end: s.end,
      flags: s.flags,
      backing: s.file === undefined ? { kind: 'anon' } : { kind: 'file', file: s.file },
      pgoff: s.pgoff ?? 0,
    });
    if (vma === undefined) {
      if ((s.flags & VM_ACCOUNT) !== 0) mm.uncharge((s.end - s.start) / page);
      return -ENOMEM;
    }
    if (s.file !== undefined) this.services.fileMapped(s.file, mm);
    return 0;
  }

  private startProgram(task: Task, main: UserMain, argv: readonly string[]): void {
    task.textOffset = 0;
    task.ctx = {
      cpu: this.userCpu(),
      sys: this.syscallsFor(task),
      argv,
      env: task.env,
      seed: this.prng.nextU32(),
    };
    task.program = main(task.ctx);
  }

  /** The CPU's user-mode memory instructions (the MMU's own methods, bound once). */
  private userCpuCache: UserCpu | undefined;
  /** When the running task's current slice began (cycles), for CLOCK_PROCESS_CPUTIME_ID. */
  private sliceStart = 0;
  private userCpu(): UserCpu {
    if (this.userCpuCache !== undefined) return this.userCpuCache;
    const mmu = this.hw.mmu;
    const clock = this.hw.clock;
    this.userCpuCache = {
      load8: mmu.load8.bind(mmu),
      load16: mmu.load16.bind(mmu),
      load32: mmu.load32.bind(mmu),
      load64: mmu.load64.bind(mmu),
      store8: mmu.store8.bind(mmu),
      store16: mmu.store16.bind(mmu),
      store32: mmu.store32.bind(mmu),
      store64: mmu.store64.bind(mmu),
      loadBytes: mmu.loadBytes.bind(mmu),
      storeBytes: mmu.storeBytes.bind(mmu),
      fillBytes: mmu.fillBytes.bind(mmu),
      fetch8: mmu.fetch8.bind(mmu),
      compute: (cycles: number) => {
        if (cycles > 0) clock.now += cycles;
      },
    };
    return this.userCpuCache;
  }

  // ---- system calls ----

  /** Enter the kernel for a syscall (cost) and run `body` with the MMU in kernel mode. */
  private enter<T>(body: () => T): T {
    const mmu = this.hw.mmu;
    this.hw.clock.now += this.syscallCost;
    mmu.setMode(MODE_KERNEL);
    try {
      return body();
    } finally {
      mmu.setMode(MODE_USER);
    }
  }

  /** Copy bytes to user memory from the kernel: 0 or -EFAULT. Faults in pages as needed. */
  private copyToUser(va: number, bytes: Uint8Array): number {
    try {
      this.hw.mmu.storeBytes(va, bytes);
      return 0;
    } catch (err) {
      if (err instanceof UserFault) return -EFAULT;
      throw err;
    }
  }

  /** Fill `dst` from user memory: 0 or -EFAULT. */
  private copyFromUserInto(va: number, dst: Uint8Array): number {
    try {
      this.hw.mmu.loadBytes(va, dst);
      return 0;
    } catch (err) {
      if (err instanceof UserFault) return -EFAULT;
      throw err;
    }
  }

  /** What the file calls need, for `task`. */
  private fileEnv(task: Task): FileCallEnv {
    return {
      fs: this.fs,
      cache: this.pageCache,
      get fds(): FdTable {
        return task.files!;
      },
      pageBytes: this.hw.format.pageBytes,
      copyToUser: (va, bytes) => this.copyToUser(va, bytes),
      copyFromUser: (va, dst) => this.copyFromUserInto(va, dst),
      frame: (pfn) => this.hw.mem.frameView(pfn),
      frameForWrite: (pfn) => this.hw.mem.frameViewForWrite(pfn),
      waitFor: (time) => this.waitForIo(time),
      console: (stream, bytes) => {
        const text = new TextDecoder().decode(bytes);
        if (stream === 'stdout') task.stdout += text;
        else task.stderr += text;
      },
      bounce: this.bounce,
    };
  }

  private syscallsFor(task: Task): Syscalls {
    const k = this;
    const mm = (): AddressSpace => task.mm!;
    const files = this.fileEnv(task);
    const env: MmapEnv = {
      populate: (va: number, write: boolean): boolean => {
        try {
          if (write) k.hw.mmu.store8(va, k.hw.mmu.load8(va));
          else k.hw.mmu.load8(va);
          return true;
        } catch (err) {
          if (err instanceof UserFault) return false;
          throw err;
        }
      },
      mappableFile: (fd) => {
        const f = task.files?.get(fd);
        if (f === undefined) return -EBADF;
        if (f.kind !== 'regular' || f.inode.isDirectory) return -ENODEV;
        return { file: f.inode, readable: canRead(f), writable: canWrite(f) };
      },
      syncFile: (file, from, to, mode) => {
        const done = k.pageCache.syncRange(file as Inode, from, to);
        if (mode === 'sync') k.waitForIo(done);
      },
    };
    const table: Syscalls = {
      getpid: () => k.enter(() => task.pid),
      getppid: () => k.enter(() => task.ppid),
      brk: (addr) => k.enter(() => doBrk(mm(), addr)),
      mmap: (addr, length, prot, flags, fd, offset) =>
        k.enter(() => doMmap(mm(), { addr, length, prot, flags, fd, offset }, env)),
      munmap: (addr, length) => k.enter(() => doMunmap(mm(), addr, length)),
      mremap: (oldAddr, oldLength, newLength, flags, newAddr) =>
        k.enter(() => doMremap(mm(), oldAddr, oldLength, newLength, flags, newAddr)),
      mprotect: (addr, length, prot) => k.enter(() => doMprotect(mm(), addr, length, prot)),
      madvise: (addr, length, advice) => k.enter(() => doMadvise(mm(), addr, length, advice)),
      mincore: (addr, length, vecVa) =>
        k.enter(() => {
          const vec = doMincore(mm(), addr, length);
          return typeof vec === 'number' ? vec : k.copyToUser(vecVa, vec);
        }),
      fork: (child) => k.enter(() => k.fork(task, child)),
      execve: (path, argv) =>
        k.enter(() => {
          const image = k.loader(path);
          if (image === undefined) return -ENOENT;
          const err = k.loadImage(task, image, argv);
          if (err < 0) return err;
          task.files?.closeOnExec(k.fs);
          k.hw.mmu.switchAddressSpace(task.mm!.tables.root, task.mm!.asid);
          throw new ExecReplaced();
        }),
      exit: (code) => k.endCurrent(exitStatus(code)),
      wait4: function* (pid, wstatusVa, options) {
        for (;;) {
          const r = k.enter(() => k.tryWait(task, pid, wstatusVa, options));
          if (r !== WOULD_BLOCK) return r;
          task.blockOn = 'wait';
          yield;
        }
      },
      kill: (pid, sig) =>
        k.enter(() => {
          if (!Number.isInteger(sig) || sig < 0 || sig >= 64) return -EINVAL;
          const target = k.tasks.get(pid);
          if (target === undefined || !target.isAlive()) return -ESRCH;
          if (sig !== 0) k.signal(target, sig);
          return 0;
        }),
      sched_yield: function* () {
        k.enter(() => 0);
        task.yieldRequested = true;
        yield;
        return 0;
      },
      nanosleep: function* (ns) {
        if (!Number.isFinite(ns) || ns < 0) return -EINVAL;
        k.enter(() => 0);
        const cycles = Math.ceil((ns / 1e9) * k.hw.clock.hz);
        task.blockOn = 'sleep';
        k.hw.clock.after(cycles, `sleep pid ${task.pid}`, () => k.wake(task));
        yield;
        return 0;
      },
      clock_gettime: (clockId, tsVa) => k.enter(() => k.clockGettime(task, clockId, tsVa)),
      write: (fd, va, length) => k.enter(() => k.written(sysWrite(files, fd, va, length))),
      read: (fd, va, length) => k.enter(() => sysRead(files, fd, va, length)),
      pread64: (fd, va, length, offset) => k.enter(() => sysRead(files, fd, va, length, offset)),
      pwrite64: (fd, va, length, offset) => k.enter(() => k.written(sysWrite(files, fd, va, length, offset))),
      open: (path, flags, mode = 0o644) => k.enter(() => sysOpen(files, path, flags, mode)),
      close: (fd) => k.enter(() => sysClose(files, fd)),
      lseek: (fd, offset, whence) => k.enter(() => sysLseek(files, fd, offset, whence)),
      fstat: (fd, statVa) => k.enter(() => sysFstat(files, fd, statVa)),
      ftruncate: (fd, length) => k.enter(() => sysFtruncate(files, fd, length)),
      fsync: (fd) => k.enter(() => sysFsync(files, fd)),
      fdatasync: (fd) => k.enter(() => sysFsync(files, fd)),
      unlink: (path) => k.enter(() => sysUnlink(files, path)),
      msync: (addr, length, flags) => k.enter(() => doMsync(mm(), addr, length, flags, env)),
      vmlab_pageinfo: (va) => k.enter(() => k.pageInfo(task, va)),
      vmlab_gc_report: (report) => k.enter(() => k.gcReport(task, report)),
      vmlab_maps: () =>
        k.enter(() =>
          mm()
            .vmas.all()
            .map((v) => ({
              start: v.start,
              end: v.end,
              prot: (v.flags & VM_READ ? 1 : 0) | (v.flags & VM_WRITE ? 2 : 0) | (v.flags & VM_EXEC ? 4 : 0),
              shared: v.isShared(),
            })),
        ),
    };
    return this.eventLogSink?.syscalls ? this.tracedSyscalls(task, table) : table;
  }

  /**
   * The system calls of `task` with every call written to the event log (debug level): its
   * name, arguments and result (a blocking call is logged as it starts).
   */
  private tracedSyscalls(task: Task, table: Syscalls): Syscalls {
    const log = this.eventLogSink!.subsystem('syscall');
    const traced: Record<string, unknown> = {};
    for (const [name, fn] of Object.entries(table) as Array<[string, (...a: unknown[]) => unknown]>) {
      traced[name] = (...args: unknown[]) => {
        const ret = fn(...args);
        const shown = args.map((a) => (typeof a === 'function' ? '[program]' : a));
        const result = typeof ret === 'number' ? ret : undefined;
        log.debug({ event: 'syscall', pid: task.pid, name, args: shown, ret: result }, name);
        return ret;
      };
    }
    return traced as unknown as Syscalls;
  }

  private fork(parent: Task, childMain: UserMain): number {
    const child = Task.create(this.caches, this.nextPid, parent.pid, parent.comm);
    if (child === null) return -ENOMEM;
    const files = parent.files?.fork() ?? FdTable.create(this.caches.files);
    if (files === null) {
      child.destroy();
      return -ENOMEM;
    }
    const mm = this.newAddressSpace(child.pid);
    if (mm === undefined) {
      files.destroy(this.fs);
      child.destroy();
      return -ENOMEM;
    }
    if (!parent.mm!.forkInto(mm)) {
      mm.destroy();
      files.destroy(this.fs);
      child.destroy();
      return -ENOMEM;
    }
    child.files = files;
    this.nextPid++;
    child.mm = mm;
    child.oomScoreAdj = parent.oomScoreAdj;
    child.env = parent.env;
    child.textOffset = parent.textOffset;
    child.startTime = this.hw.clock.now;
    this.tasks.set(child.pid, child);
    parent.children.push(child);
    this.startProgram(child, childMain, parent.ctx?.argv ?? []);
    this.admit(child);
    this.eventLog?.process(child.pid, child.comm).info({ event: 'fork', ppid: parent.pid }, 'forked');
    return child.pid;
  }

  /** wait4 without blocking: a reaped child's pid, 0 (WNOHANG), -ECHILD, or WOULD_BLOCK. */
  private tryWait(task: Task, pid: number, wstatusVa: number, options: number): number {
    if ((options & ~WNOHANG) !== 0) return -EINVAL;
    const candidates = task.children.filter((c) => pid === -1 || c.pid === pid);
    if (candidates.length === 0) return -ECHILD;
    const zombie = candidates.find((c) => c.state === 'zombie');
    if (zombie === undefined) return (options & WNOHANG) !== 0 ? 0 : WOULD_BLOCK;
    if (wstatusVa !== 0) {
      const buf = new Uint8Array(4);
      new DataView(buf.buffer).setInt32(0, zombie.waitStatus, true);
      const err = this.copyToUser(wstatusVa, buf);
      if (err < 0) return err;
    }
    this.reap(zombie);
    return zombie.pid;
  }

  /** clock_gettime(2) for `task`: the emulated clock, or the task's CPU time so far. */
  private clockGettime(task: Task, clockId: number, tsVa: number): number {
    const clock = this.hw.clock;
    let cycles: number;
    if (clockId === CLOCK_REALTIME || clockId === CLOCK_MONOTONIC) cycles = clock.now;
    else if (clockId === CLOCK_PROCESS_CPUTIME_ID)
      cycles = task.cpuCycles + (this.current === task ? clock.now - this.sliceStart : 0);
    else return -EINVAL;
    const ns = Math.floor((cycles / clock.hz) * 1e9);
    const ts = new Uint8Array(TIMESPEC_BYTES);
    const view = new DataView(ts.buffer);
    const sec = Math.floor(ns / 1e9);
    view.setUint32(0, sec >>> 0, true);
    view.setUint32(4, Math.floor(sec / 2 ** 32), true);
    view.setUint32(8, ns % 1e9, true);
    return this.copyToUser(tsVa, ts);
  }

  /** vmlab_gc_report: keep a copy of the runtime's statistics and its latest pause. */
  private gcReport(task: Task, report: Readonly<GcReport>): number {
    if (typeof report !== 'object' || report === null || typeof report.collector !== 'string') return -EINVAL;
    for (const [key, value] of Object.entries(report))
      if (key !== 'collector' && !(typeof value === 'number' && Number.isFinite(value) && value >= 0))
        return -EINVAL;
    const pausedBefore = task.gc?.pauseTotalNs ?? 0;
    task.gc = { ...report };
    // A report that follows no new pause (the first one, the last one at exit) records none.
    if (report.pauseTotalNs !== pausedBefore && report.lastPauseNs > 0) {
      task.gcPausesNs.push(report.lastPauseNs);
      task.gcPauseTimes.push(this.hw.clock.now);
    }
    if (task.gcPausesNs.length > GC_PAUSES_KEPT) {
      task.gcPausesNs.shift();
      task.gcPauseTimes.shift();
    }
    return 0;
  }

  /** The introspection call behind vmlab_pageinfo. */
  pageInfo(task: Task, va: number): PageInfo {
    const mm = task.mm!;
    const info: PageInfo = {
      physAddr: -1,
      present: false,
      writable: false,
      dirty: false,
      accessed: false,
      shared: false,
      copyOnWrite: false,
      swapped: false,
      mapCount: 0,
      refCount: 0,
    };
    if (!Number.isSafeInteger(va) || va < 0 || va >= 2 ** this.hw.format.vaBits) return info;
    const pa = mm.tables.entryAddress(va, 'lookup');
    if (pa < 0) return info;
    const lo = mm.tables.read(pa);
    const hi = mm.tables.hi;
    const pte = this.pte;
    if (!pte.isPresent(lo, hi)) {
      info.swapped = !pte.isNone(lo, hi) && pte.nonPresentTag(lo, hi) === NP_SWAP;
      return info;
    }
    const pfn = pte.pfnOf(lo, hi);
    const pages = this.hw.pages;
    const page = this.hw.format.pageBytes;
    info.physAddr = pfn * page + (va % page);
    info.present = true;
    info.writable = pte.isWritable(lo, hi);
    info.dirty = pte.isDirty(lo, hi);
    info.accessed = pte.isAccessed(lo, hi);
    info.mapCount = pages.mapcount[pfn]!;
    info.refCount = pages.refcount[pfn]!;
    info.shared = info.mapCount > 1;
    const vma = mm.vmas.find(va);
    info.copyOnWrite = vma !== undefined && (vma.flags & VM_WRITE) !== 0 && !vma.isShared() && !info.writable;
    return info;
  }

  /** A one-line description of how a task ended. */
  describeEnd(task: Task): string {
    return task.isAlive() ? task.state : describeStatus(task.waitStatus);
  }
}

const WOULD_BLOCK = -100000;

function baseName(path: string): string {
  const i = path.lastIndexOf('/');
  return i >= 0 ? path.slice(i + 1) : path;
}

export { signalName, VM_EXEC };
