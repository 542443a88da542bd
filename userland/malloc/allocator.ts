/**
 * The interface every user-space allocator implements (the malloc family of a process's libc).
 * Allocators keep all their metadata in the process's emulated memory and reach it through
 * loads and stores, so their faults, TLB misses and swapping are real.
 *
 * Pointers are numbers; 0 is NULL. A failed allocation returns 0 and sets libc's errno to
 * ENOMEM. A corrupt heap, a double free or a bad pointer throws MallocAbort, which ends the
 * process with SIGABRT and the message in the kernel log (as glibc's "free(): double free
 * detected" does).
 */
export const MALLOC_ALIGNMENT = 16;

export class MallocAbort extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MallocAbort';
  }
}

export interface MallocStats {
  /** Bytes obtained from the kernel and held now: the brk extent plus mmapped regions. */
  heapBytes: number;
  /** Bytes handed out in blocks now (usable sizes). */
  inUseBytes: number;
  /** Blocks handed out now. */
  inUseBlocks: number;
}

/**
 * mallinfo2(3): glibc's struct mallinfo2, field for field (bytes unless it says blocks).
 *
 *   arena = uordblks + fordblks  (the heap that is not in mappings of a block's own)
 *   fsmblks <= fordblks; keepcost <= fordblks
 *
 * A field an allocator has no honest figure for is 0 (each allocator says which).
 */
export interface Mallinfo2 {
  /** Bytes of the heap obtained from the kernel, outside hblkhd (glibc: the brk arena). */
  arena: number;
  /** Free blocks (glibc counts the top chunk as one). */
  ordblks: number;
  /** Free small blocks kept apart from the others (glibc: fast-bin chunks). */
  smblks: number;
  /** Blocks in mappings of their own. */
  hblks: number;
  /** Bytes in mappings of a block's own. */
  hblkhd: number;
  /** Always 0 (glibc's too). */
  usmblks: number;
  /** Bytes in the smblks blocks. */
  fsmblks: number;
  /** Bytes of `arena` in use: handed out, with headers, padding and the allocator's own. */
  uordblks: number;
  /** Bytes of `arena` free (the ordblks and smblks blocks, glibc's top chunk among them). */
  fordblks: number;
  /** Free bytes at the heap's end that releaseMemory (malloc_trim) could give back. */
  keepcost: number;
}

/** A mallinfo2 with every field 0. */
export function emptyMallinfo2(): Mallinfo2 {
  return {
    arena: 0,
    ordblks: 0,
    smblks: 0,
    hblks: 0,
    hblkhd: 0,
    usmblks: 0,
    fsmblks: 0,
    uordblks: 0,
    fordblks: 0,
    keepcost: 0,
  };
}

export interface Allocator {
  readonly name: string;
  malloc(size: number): number;
  free(ptr: number): void;
  /** realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and returns NULL (glibc). */
  realloc(ptr: number, size: number): number;
  /** Zeroed n * size bytes; NULL with ENOMEM when the product overflows. */
  calloc(n: number, size: number): number;
  /** A block whose address is a multiple of `alignment` (a power of two). */
  memalign(alignment: number, size: number): number;
  usableSize(ptr: number): number;
  stats(): MallocStats;
  /**
   * mallinfo2, from a walk of the allocator's heap and lists. Optional: without it the C
   * library's mallinfo2 derives arena, uordblks and fordblks from stats() and leaves the rest 0.
   */
  mallinfo2?(): Mallinfo2;
  /** Walk the whole heap checking every tag and link; throws MallocAbort on corruption. */
  checkHeap(): void;
  /**
   * Give free memory back to the kernel (glibc's malloc_trim): consolidate, shrink the heap,
   * unmap or madvise free spans. Allocators with nothing to give back leave it out.
   */
  releaseMemory?(): void;
  /** The blocks handed out now: payload address and usable size, in address order. */
  liveBlocks(): Array<{ ptr: number; size: number }>;
  /** The address ranges the allocator owns (its heap, arenas, metadata), [start, end). */
  ownedRegions(): Array<[number, number]>;
}

/** n * size for calloc, or -1 when it overflows (or either is negative): calloc returns NULL. */
export function callocBytes(n: number, size: number): number {
  const total = n * size;
  if (n < 0 || size < 0 || !Number.isSafeInteger(total) || (n !== 0 && total / n !== size)) return -1;
  return total;
}
