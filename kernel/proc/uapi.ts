/**
 * The user-space API: everything a program may know of the kernel. Userland imports this module
 * (types and constants) and nothing else from kernel/.
 *
 * A program is a generator function. Its loads and stores go through `cpu` (the MMU in user
 * mode); its system calls through `sys`. Each `yield` is an instruction boundary where the
 * scheduler may preempt it or put it to sleep. Blocking calls are generators used with
 * `yield*`: `const pid = yield* sys.wait4(-1, statusVa, 0)`.
 *
 * Raw system calls return -errno on failure, as Linux's do (libc turns that into errno).
 */

export { SEEK_CUR, SEEK_END, SEEK_SET, STAT_BYTES } from '../fs/filecalls.ts';
export {
  O_ACCMODE,
  O_APPEND,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_RDONLY,
  O_RDWR,
  O_TRUNC,
  O_WRONLY,
} from '../fs/vfs.ts';
export * from '../lib/errno.ts';
export * from '../lib/signals.ts';
export {
  MADV_DONTNEED,
  MADV_FREE,
  MADV_NORMAL,
  MADV_RANDOM,
  MADV_SEQUENTIAL,
  MADV_WILLNEED,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_GROWSDOWN,
  MAP_NORESERVE,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_STACK,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  MS_ASYNC,
  MS_INVALIDATE,
  MS_SYNC,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '../mm/mmap.ts';

export const WNOHANG = 1;

/** clock_gettime(2) clocks. Emulated time: the machine boots at 0 (REALTIME counts from there too). */
export const CLOCK_REALTIME = 0;
export const CLOCK_MONOTONIC = 1;
export const CLOCK_PROCESS_CPUTIME_ID = 2;
/** struct timespec: tv_sec and tv_nsec, 8 bytes each (x86-64 layout). */
export const TIMESPEC_BYTES = 16;

/**
 * What a managed runtime (userland/gc) tells the kernel after each collection, through the
 * vmlab_gc_report call: /proc/PID/gc, the run summary, the timeline and the report show it.
 * Times are emulated nanoseconds; sizes are bytes.
 */
export interface GcReport {
  /** The collector's name (marksweep, markcompact, generational, refcount, …). */
  collector: string;
  /** Bytes the heap holds from the kernel now (spans, arenas, semispaces, metadata). */
  heapBytes: number;
  /** Bytes of live objects found by the last collection (refcount: allocated and not freed). */
  liveBytes: number;
  /** Heap size at which the next collection starts (the pacer's goal; 0 when none). */
  nextGcBytes: number;
  minorCollections: number;
  majorCollections: number;
  pauseTotalNs: number;
  pauseMaxNs: number;
  /** The pause of the collection (or mark slice) this report follows. */
  lastPauseNs: number;
  objectsAllocated: number;
  bytesAllocated: number;
  objectsFreed: number;
  bytesFreed: number;
  objectsMoved: number;
  bytesMoved: number;
  objectsPromoted: number;
  /** Object bytes marked (traced) over all collections, and the emulated time spent marking. */
  bytesMarked: number;
  markNs: number;
  /** Pointer stores that ran the write barrier, and those that took its slow path (shaded, carded). */
  barrierStores: number;
  barrierHits: number;
}

/** The CPU's memory instructions, in user mode, through the MMU. */
export interface UserCpu {
  load8(va: number): number;
  load16(va: number): number;
  load32(va: number): number;
  /** 64-bit load as a number (exact below 2^53). */
  load64(va: number): number;
  store8(va: number, value: number): void;
  store16(va: number, value: number): void;
  store32(va: number, value: number): void;
  store64(va: number, value: number): void;
  /** Copy memory at `va` into `dst` (one translation per page). */
  loadBytes(va: number, dst: Uint8Array, dstOffset?: number, length?: number): void;
  storeBytes(va: number, src: Uint8Array): void;
  fillBytes(va: number, length: number, value: number): void;
  /** Fetch an instruction byte (an execute access). */
  fetch8(va: number): number;
  /** Spend `cycles` of computation (work that touches no memory). */
  compute(cycles: number): void;
}

/** What vmlab_pageinfo reports about one virtual page (an introspection call, not Linux's). */
export interface PageInfo {
  /** Physical address behind the virtual address, or -1 when the page is not present. */
  physAddr: number;
  present: boolean;
  writable: boolean;
  dirty: boolean;
  accessed: boolean;
  /** Mapped by more than one page-table entry (shared after fork, or shared memory). */
  shared: boolean;
  /** Read-only in the page table but writable in the VMA: the next write copies. */
  copyOnWrite: boolean;
  swapped: boolean;
  mapCount: number;
  refCount: number;
}

/** One mapping of a process (what a line of /proc/self/maps says). */
export interface MapEntry {
  start: number;
  end: number;
  /** PROT_* bits. */
  prot: number;
  shared: boolean;
}

export interface Syscalls {
  getpid(): number;
  getppid(): number;
  /** Raw brk: returns the new break, or the current one when refused. */
  brk(addr: number): number;
  mmap(addr: number, length: number, prot: number, flags: number, fd: number, offset: number): number;
  munmap(addr: number, length: number): number;
  /** mremap(2): the (possibly moved) mapping's address, or -errno. */
  mremap(oldAddr: number, oldLength: number, newLength: number, flags: number, newAddr: number): number;
  mprotect(addr: number, length: number, prot: number): number;
  madvise(addr: number, length: number, advice: number): number;
  /** Writes one byte per page of [addr, addr+length) to user memory at `vecVa`. */
  mincore(addr: number, length: number, vecVa: number): number;
  /**
   * Fork: the child gets a copy-on-write copy of the address space and starts in `child`
   * (JavaScript cannot clone a running generator, so the child's code is given here; its
   * memory is the parent's). Returns the child's pid, or -errno.
   */
  fork(child: UserMain): number;
  /** Replace the program. Does not return on success; returns -errno on failure. */
  execve(path: string, argv: string[]): number;
  exit(code: number): never;
  /** Wait for a child; writes the status to `wstatusVa` when non-zero. */
  wait4(pid: number, wstatusVa: number, options: number): Generator<void, number, void>;
  kill(pid: number, sig: number): number;
  sched_yield(): Generator<void, number, void>;
  nanosleep(nanoseconds: number): Generator<void, number, void>;
  /** clock_gettime(2): writes a struct timespec (TIMESPEC_BYTES) at `tsVa`; 0, -EINVAL or -EFAULT. */
  clock_gettime(clockId: number, tsVa: number): number;
  /**
   * write(2): to a file through the page cache, or to the process's captured stdout (1) or
   * stderr (2). Bytes written, or -errno.
   */
  write(fd: number, va: number, length: number): number;
  /** read(2): bytes read (0 at end of file), or -errno. A read from the disk sleeps at the next yield. */
  read(fd: number, va: number, length: number): number;
  pread64(fd: number, va: number, length: number, offset: number): number;
  pwrite64(fd: number, va: number, length: number, offset: number): number;
  /** open(2) inside the machine's sandbox root: a descriptor, or -errno. `mode` defaults to 0644. */
  open(path: string, flags: number, mode?: number): number;
  close(fd: number): number;
  lseek(fd: number, offset: number, whence: number): number;
  /** fstat(2): writes a struct stat (x86-64 layout, STAT_BYTES bytes) at `statVa`. */
  fstat(fd: number, statVa: number): number;
  ftruncate(fd: number, length: number): number;
  /** fsync(2): the file's dirty pages go to the disk; the caller sleeps until they are written. */
  fsync(fd: number): number;
  fdatasync(fd: number): number;
  unlink(path: string): number;
  /** msync(2) on shared file mappings (MS_SYNC waits for the disk). */
  msync(addr: number, length: number, flags: number): number;
  /** vmlab introspection: what backs the page holding `va` in this process. */
  vmlab_pageinfo(va: number): PageInfo;
  /** vmlab introspection: this process's mappings, as /proc/self/maps lists them. */
  vmlab_maps(): MapEntry[];
  /** vmlab introspection: publish a managed runtime's statistics (a copy is kept); 0 or -EINVAL. */
  vmlab_gc_report(report: Readonly<GcReport>): number;
}

export interface UserContext {
  cpu: UserCpu;
  sys: Syscalls;
  argv: readonly string[];
  /** The environment (envp): VMLAB_MALLOC names the C library's allocator, for instance. */
  env: Readonly<Record<string, string>>;
  /** Emulated-time seed for programs that want repeatable pseudo-random choices. */
  seed: number;
}

/** A program's body: a generator; the return value is the exit code. */
export type UserMain = (ctx: UserContext) => Generator<void, number | undefined, void>;

/** A program as execve loads it: its segments and its code. */
export interface ProgramImage {
  /** Path shown in /proc/PID/maps and comm (e.g. /bin/touch). */
  path: string;
  textBytes: number;
  dataBytes: number;
  bssBytes: number;
  main: UserMain;
  /**
   * No segments and no stack: an empty address space that the host-side tool driving it maps
   * itself (trace replays, whose addresses may lie anywhere).
   */
  bare?: boolean;
}

/** Finds programs for execve: built-ins, or user TypeScript files the boot code loaded. */
export type ProgramLoader = (path: string) => ProgramImage | undefined;
