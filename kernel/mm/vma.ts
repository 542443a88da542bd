/**
 * Virtual memory areas: the address-space map of a process, as a sorted array of VMAs.
 *
 *   for consecutive VMAs a, b:  a.start < a.end <= b.start           (sorted, disjoint)
 *   every start and end is a multiple of the page size
 *   every VMA owns one live kernel object from the vm_area_struct cache (`kobj`)
 *
 * Lookups are binary searches; insertions and removals splice the array (processes have tens
 * of VMAs, not thousands). Splitting needs a new kernel object and can fail: callers check for
 * -ENOMEM before they change anything, so a failed call leaves the map as it was.
 */
import { panic } from '../lib/panic.ts';

// VMA flags (Linux's values).
export const VM_READ = 0x1;
export const VM_WRITE = 0x2;
export const VM_EXEC = 0x4;
export const VM_SHARED = 0x8;
export const VM_MAYREAD = 0x10;
export const VM_MAYWRITE = 0x20;
export const VM_MAYEXEC = 0x40;
export const VM_MAYSHARE = 0x80;
export const VM_GROWSDOWN = 0x100;
export const VM_LOCKED = 0x2000;
export const VM_ACCOUNT = 0x100000;
export const VM_NORESERVE = 0x200000;

export const VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC;

/** What backs a VMA's pages. */
export type VmaBacking =
  | { kind: 'anon' }
  | { kind: 'shmem'; object: SharedAnonObject }
  | { kind: 'file'; file: MappedFile };

/**
 * A file as the memory layer sees it (the file system's inode): what /proc/PID/maps names and
 * what the page cache keys its pages by. Every VMA mapping the file holds one `mapUsers`
 * reference (Linux's vm_file), taken at mmap, fork and split, dropped at unmap and merge.
 */
export interface MappedFile {
  readonly ino: number;
  /** Device number (major << 20 | minor, as the kernel's dev_t). */
  readonly device: number;
  /** Path inside the sandbox, for maps. */
  readonly path: string;
  /** Bytes in the file (i_size). */
  sizeBytes: number;
  /** VMAs mapping the file. */
  mapUsers: number;
  /** page index -> frame holding it (the page cache: each entry holds one frame reference). */
  readonly pages: Map<number, number>;
}

/** A shared anonymous memory object (MAP_SHARED|MAP_ANONYMOUS): its pages outlive any one mapping. */
export interface SharedAnonObject {
  id: number;
  /** page index -> frame holding that page (each entry holds one frame reference). */
  pages: Map<number, number>;
  /** Number of VMAs referring to this object. */
  users: number;
  /**
   * The object's size in pages, fixed when mmap made it (Linux's shmem file has i_size): a
   * mapping grown past it by mremap gets SIGBUS where it touches beyond.
   */
  sizePages: number;
}

/** The shared lineage of anonymous pages (Linux's anon_vma): fork shares it with the child. */
export interface AnonFamily {
  id: number;
}

/** Allocation of the kernel objects VMAs live in (the vm_area_struct slab cache). */
export interface VmaObjectPool {
  /** A new object's address, or -1 when the cache cannot grow. */
  alloc(): number;
  free(address: number): void;
}

export class Vma {
  start: number;
  end: number;
  flags: number;
  backing: VmaBacking;
  /** Page offset into the file of `start` (file mappings); 0 for anonymous ones. */
  pgoff: number;
  /**
   * The anonymous pages' index of an address here is va / pageBytes + anonDelta (Linux's
   * linear_page_index over an anon vm_pgoff). 0 until mremap moves the VMA: the moved pages
   * keep their index, so reclaim still finds them through the anon family.
   */
  anonDelta: number;
  anon: AnonFamily | null;
  /** Address of this VMA's vm_area_struct object in kernel memory. */
  kobj: number;
  /** A label for /proc/PID/maps ('[heap]', '[stack]' are derived, not stored). */
  name: string | undefined;

  constructor(fields: {
    start: number;
    end: number;
    flags: number;
    backing: VmaBacking;
    pgoff?: number;
    anonDelta?: number;
    anon?: AnonFamily | null;
    kobj: number;
    name?: string;
  }) {
    this.start = fields.start;
    this.end = fields.end;
    this.flags = fields.flags;
    this.backing = fields.backing;
    this.pgoff = fields.pgoff ?? 0;
    this.anonDelta = fields.anonDelta ?? 0;
    this.anon = fields.anon ?? null;
    this.kobj = fields.kobj;
    this.name = fields.name;
  }

  get length(): number {
    return this.end - this.start;
  }

  contains(va: number): boolean {
    return va >= this.start && va < this.end;
  }

  isAnonymous(): boolean {
    return this.backing.kind === 'anon';
  }

  isShared(): boolean {
    return (this.flags & VM_SHARED) !== 0;
  }

  /** The anonymous-page index of `va` (pages.index of an anonymous page mapped there). */
  anonIndex(va: number, pageBytes: number): number {
    return Math.floor(va / pageBytes) + this.anonDelta;
  }
}

/** Can `a` (ending where `b` starts) and `b` be one VMA? */
export function canMerge(a: Vma, b: Vma, pageBytes: number): boolean {
  if (a.end !== b.start || a.flags !== b.flags || a.name !== b.name) return false;
  if (a.backing.kind !== b.backing.kind) return false;
  // Shared mappings never hold anonymous pages: their object's offsets must run on.
  if (a.backing.kind === 'shmem' && b.backing.kind === 'shmem') {
    return a.backing.object === b.backing.object && a.pgoff + (a.end - a.start) / pageBytes === b.pgoff;
  }
  // The anonymous families must agree (Linux's is_mergeable_anon_vma): the same one, or one
  // side without.
  if (a.anon !== b.anon && a.anon !== null && b.anon !== null) return false;
  if (a.backing.kind === 'file' && b.backing.kind === 'file') {
    if (a.backing.file !== b.backing.file || a.pgoff + (a.end - a.start) / pageBytes !== b.pgoff)
      return false;
    // The file offset is the pgoff Linux checks; the copied pages' indices, where both sides
    // have some, must run on too (a side without takes the other's anonDelta).
    return a.anon === null || b.anon === null || a.anonDelta === b.anonDelta;
  }
  // Anonymous memory: anonDelta is Linux's vm_pgoff, which must run on across the seam even
  // where a side has no pages yet (an empty VMA left by MREMAP_DONTUNMAP stays apart).
  return a.anonDelta === b.anonDelta;
}

export class VmaSet {
  private readonly list: Vma[] = [];
  readonly pageBytes: number;
  private readonly pool: VmaObjectPool;

  constructor(pageBytes: number, pool: VmaObjectPool) {
    this.pageBytes = pageBytes;
    this.pool = pool;
  }

  get count(): number {
    return this.list.length;
  }

  /** The VMAs in address order (do not mutate the array). */
  all(): readonly Vma[] {
    return this.list;
  }

  /** The VMA containing `va`, or undefined. */
  find(va: number): Vma | undefined {
    const i = this.indexAtOrAfter(va);
    const v = this.list[i];
    return v !== undefined && v.start <= va ? v : undefined;
  }

  /** The first VMA ending above `va` (Linux's find_vma), or undefined. */
  findNext(va: number): Vma | undefined {
    return this.list[this.indexAtOrAfter(va)];
  }

  /** The VMA just below `vma`, or undefined. */
  prev(vma: Vma): Vma | undefined {
    const i = this.list.indexOf(vma);
    return i > 0 ? this.list[i - 1] : undefined;
  }

  /** The VMA just above `vma`, or undefined. */
  next(vma: Vma): Vma | undefined {
    const i = this.list.indexOf(vma);
    return i >= 0 ? this.list[i + 1] : undefined;
  }

  /** True when some VMA overlaps [start, end). */
  overlaps(start: number, end: number): boolean {
    const v = this.findNext(start);
    return v !== undefined && v.start < end;
  }

  /** The VMAs overlapping [start, end), in order. */
  overlapping(start: number, end: number): Vma[] {
    const out: Vma[] = [];
    for (let i = this.indexAtOrAfter(start); i < this.list.length && this.list[i]!.start < end; i++) {
      out.push(this.list[i]!);
    }
    return out;
  }

  /**
   * Make a VMA for [start, end) with a fresh kernel object and insert it. Returns the VMA, or
   * undefined when no kernel object could be allocated. Panics on overlap (callers unmap first).
   */
  create(fields: Omit<ConstructorParameters<typeof Vma>[0], 'kobj'>): Vma | undefined {
    const kobj = this.pool.alloc();
    if (kobj < 0) return undefined;
    const vma = new Vma({ ...fields, kobj });
    this.insert(vma);
    return vma;
  }

  /** Insert an existing VMA object. Panics if it overlaps another or is malformed. */
  insert(vma: Vma): void {
    this.checkShape(vma, 'vmaInsert');
    const i = this.indexAtOrAfter(vma.start);
    const at = this.list[i];
    if (at !== undefined && at.start < vma.end) {
      panic(`vmaInsert: [${hex(vma.start)}, ${hex(vma.end)}) overlaps [${hex(at.start)}, ${hex(at.end)})`);
    }
    this.list.splice(i, 0, vma);
  }

  /** Remove a VMA and free its kernel object. */
  destroy(vma: Vma): void {
    const i = this.list.indexOf(vma);
    if (i < 0) panic(`vmaDestroy: [${hex(vma.start)}, ${hex(vma.end)}) is not in this address space`);
    this.list.splice(i, 1);
    this.pool.free(vma.kobj);
    vma.kobj = -1;
  }

  /**
   * Split `vma` at `at` (page-aligned, strictly inside). The lower part stays `vma`; the upper
   * part is a new VMA, returned. Undefined when no kernel object is available (nothing changed).
   * A shared anonymous object gains a user: both parts refer to it.
   */
  split(vma: Vma, at: number): Vma | undefined {
    if (at <= vma.start || at >= vma.end || at % this.pageBytes !== 0) {
      panic(`vmaSplit: ${hex(at)} is not a page boundary inside [${hex(vma.start)}, ${hex(vma.end)})`);
    }
    const kobj = this.pool.alloc();
    if (kobj < 0) return undefined;
    const upper = new Vma({
      start: at,
      end: vma.end,
      flags: vma.flags,
      backing: vma.backing,
      pgoff: vma.pgoff + (at - vma.start) / this.pageBytes,
      anonDelta: vma.anonDelta,
      anon: vma.anon,
      kobj,
      name: vma.name,
    });
    vma.end = at;
    this.list.splice(this.list.indexOf(vma) + 1, 0, upper);
    if (upper.backing.kind === 'shmem') upper.backing.object.users++;
    if (upper.backing.kind === 'file') upper.backing.file.mapUsers++;
    return upper;
  }

  /**
   * Split VMAs so that `start` and `end` fall on VMA boundaries. Returns false (with the map
   * as it was) when a kernel object for a split cannot be had.
   */
  carve(start: number, end: number): boolean {
    const first = this.find(start);
    let upper: Vma | undefined;
    if (first !== undefined && first.start < start) {
      upper = this.split(first, start);
      if (upper === undefined) return false;
    }
    const last = this.find(end - 1);
    if (last !== undefined && last.end > end && this.split(last, end) === undefined) {
      if (upper !== undefined) this.mergeAround(upper);
      return false;
    }
    return true;
  }

  /**
   * Merge `vma` with its neighbours where compatible; returns the surviving VMA. A merged-away
   * VMA of a shared anonymous object gives up its user of the object (the survivor keeps one).
   */
  mergeAround(vma: Vma): Vma {
    let v = vma;
    const before = this.prev(v);
    if (before !== undefined && canMerge(before, v, this.pageBytes)) {
      before.end = v.end;
      if (before.anon === null) {
        before.anon = v.anon;
        before.anonDelta = v.anonDelta;
      }
      this.absorb(v);
      v = before;
    }
    const after = this.next(v);
    if (after !== undefined && canMerge(v, after, this.pageBytes)) {
      v.end = after.end;
      if (v.anon === null) {
        v.anon = after.anon;
        v.anonDelta = after.anonDelta;
      }
      this.absorb(after);
    }
    return v;
  }

  /** Destroy a VMA whose range a neighbour has taken over (same backing). */
  private absorb(gone: Vma): void {
    if (gone.backing.kind === 'shmem') gone.backing.object.users--;
    if (gone.backing.kind === 'file') gone.backing.file.mapUsers--;
    this.destroy(gone);
  }

  /** Merge every compatible neighbour pair inside [start, end) and at its edges. */
  mergeRange(start: number, end: number): void {
    let v = this.findNext(Math.max(0, start - 1));
    while (v !== undefined && v.start <= end) {
      v = this.mergeAround(v);
      v = this.next(v);
    }
  }

  /**
   * A free gap of `length` bytes, searching top-down below `below` and not under `above`,
   * with `gapBelowStack` bytes kept free beneath any VM_GROWSDOWN VMA. Returns the start, or -1.
   */
  findFreeTopDown(length: number, options: { below: number; above: number; stackGap: number }): number {
    let ceiling = options.below;
    for (let i = this.list.length - 1; i >= -1; i--) {
      const v = this.list[i];
      const floor = v === undefined ? options.above : Math.max(v.end, options.above);
      if (ceiling - floor >= length) return ceiling - length;
      if (v === undefined) break;
      ceiling = Math.min(ceiling, this.gapStart(v, options.stackGap));
    }
    return -1;
  }

  /** Where the free space below `v` ends: its start, less the stack guard gap for stacks. */
  gapStart(v: Vma, stackGap: number): number {
    return (v.flags & VM_GROWSDOWN) !== 0 ? Math.max(0, v.start - stackGap) : v.start;
  }

  /** Check the map's invariants; panics naming the broken rule. */
  checkInvariants(): void {
    let prevEnd = -1;
    for (const v of this.list) {
      this.checkShape(v, 'vmaCheck');
      if (v.start < prevEnd) panic(`vmaCheck: [${hex(v.start)}, ${hex(v.end)}) overlaps the VMA before it`);
      if (v.kobj < 0) panic(`vmaCheck: [${hex(v.start)}, ${hex(v.end)}) has no kernel object`);
      prevEnd = v.end;
    }
  }

  private checkShape(v: Vma, who: string): void {
    if (!(v.start < v.end) || v.start % this.pageBytes !== 0 || v.end % this.pageBytes !== 0) {
      panic(`${who}: malformed VMA [${hex(v.start)}, ${hex(v.end)})`);
    }
  }

  /** Index of the first VMA with end > va. */
  private indexAtOrAfter(va: number): number {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.list[mid]!.end <= va) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}
