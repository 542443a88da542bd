/**
 * pymalloc: CPython's small-object allocator (Objects/obmalloc.c), as CPython 3.9 has it:
 * 256 KiB arenas mapped with mmap, 4 KiB pools each serving one size class, 32 size classes of
 * 16 bytes up to 512 bytes; larger requests (and requests of 0 bytes) go to the C library's
 * malloc, which CPython calls PyMem_RawMalloc. Every structure is in the process's emulated
 * memory: pool headers at the front of each pool, free lists through the free blocks, the
 * arena objects in an array obtained from malloc (and grown with realloc, as CPython does),
 * usedpools and nfp2lasta in a page of their own.
 *
 *   arena: ARENA_SIZE bytes from mmap, cut into POOL_SIZE pools (one fewer when the mapping is
 *   not pool-aligned)
 *   +--------+--------+--------+-- ... --+--------+------------------+
 *   | pool   | pool   | pool   |         | pool   | never used       |
 *   +--------+--------+--------+-- ... --+--------+------------------+
 *   ^ address (first pool at the next POOL_SIZE boundary)   ^ pool_address
 *
 *   pool: a header, then blocks of INDEX2SIZE(szidx) bytes
 *   +----------------+---------+---------+-- ... --+---------+--------------+
 *   | pool_header    | block   | block   |         | block   | not carved   |
 *   +----------------+---------+---------+-- ... --+---------+--------------+
 *   0                POOL_OVERHEAD (48)                      nextoffset     POOL_SIZE
 *
 *   pool_header (48 bytes)            arena_object (48 bytes)
 *     0  ref.count     u32 (8-byte slot)  0  address       u64 (0: no arena)
 *     8  freeblock     u64                8  pool_address  u64
 *    16  nextpool      u64               16  nfreepools    u32
 *    24  prevpool      u64               20  ntotalpools   u32
 *    32  arenaindex    u32               24  freepools     u64
 *    36  szidx         u32               32  nextarena     u64
 *    40  nextoffset    u32               40  prevarena     u64
 *    44  maxnextoffset u32
 *
 *   a free block:  word 0 = the next free block of its pool (0 ends the list),
 *                  word 1 = FREE_BLOCK_MARK (cleared when the block is handed out)
 *
 *   statics page: usedpools[2 * NB_SMALL_SIZE_CLASSES] at +16, nfp2lasta[MAX_POOLS_IN_ARENA + 1]
 *   after it. usedpools[2i] and usedpools[2i + 1] are the nextpool and prevpool of a pretend
 *   pool header at PTA(i) = &usedpools[2i] - 16 (CPython's trick): the head of the circular
 *   list of the pools of class i that have both used and free blocks.
 *
 * Invariants (checkInvariants proves each):
 *   carved(pool) = (nextoffset - POOL_OVERHEAD) / size;  count + |freeblock list| == carved
 *   a pool with 0 < count and freeblock != 0 is on usedpools[szidx]; a full one (freeblock 0)
 *   is on no list; an empty one (count 0) is on its arena's freepools
 *   nfreepools == |freepools| + (ntotalpools - carved pools of the arena)
 *   usable_arenas == the arenas with nfreepools > 0, sorted by nfreepools ascending (the
 *   fullest first, so the emptiest can empty and go back to the kernel);
 *   nfp2lasta[n] == the last arena of usable_arenas with nfreepools n, or 0
 *   unused_arena_objects == the table entries with address 0; |unused| + narenas == maxarenas
 *
 * An arena whose last pool is freed is munmap'ed, unless it is the last of usable_arenas
 * (CPython bpo-37257: keeping one wholly free arena stops a loop that allocates and frees one
 * object from mapping and unmapping an arena each time); destroy() unmaps every arena.
 *
 * Beyond CPython (whose allocator cannot tell a free block from a used one): the mark in word 1
 * of free blocks makes isAllocatedBlock and the block walk exact and catches a double free, and
 * free() checks that a pointer in an arena is a block boundary of a pool in use. Errors throw
 * MallocAbort (the process ends with SIGABRT), as the C library's allocators do.
 */
import type { UserCpu } from '../../kernel/proc/uapi.ts';
import type { Libc } from '../libc/libc.ts';
import { Malloc } from '../libc/malloc.ts';
import { MallocAbort } from '../malloc/allocator.ts';

export const ALIGNMENT = 16;
export const ALIGNMENT_SHIFT = 4;
/** Requests up to this many bytes are pymalloc's; larger ones go to malloc. */
export const SMALL_REQUEST_THRESHOLD = 512;
export const NB_SMALL_SIZE_CLASSES = SMALL_REQUEST_THRESHOLD / ALIGNMENT;
export const POOL_SIZE = 4 << 10;
export const ARENA_SIZE = 256 << 10;
export const MAX_POOLS_IN_ARENA = ARENA_SIZE / POOL_SIZE;
export const POOL_OVERHEAD = 48;
/** Arena objects of the first table; it doubles when every arena object is in use. */
export const INITIAL_ARENA_OBJECTS = 16;
export const ARENA_OBJECT_BYTES = 48;
/** Word 1 of every free block. Odd, so no pointer (16-aligned) and no gc_refs value (even) equals it. */
export const FREE_BLOCK_MARK = 0xf7eeb10cd00d;

/** pool_header field offsets. */
const P_COUNT = 0;
const P_FREEBLOCK = 8;
const P_NEXTPOOL = 16;
const P_PREVPOOL = 24;
const P_ARENAINDEX = 32;
const P_SZIDX = 36;
const P_NEXTOFFSET = 40;
const P_MAXNEXTOFFSET = 44;
/** szidx of a freshly carved pool (no class yet). */
const DUMMY_SIZE_IDX = 0xffff;

/** arena_object field offsets. */
const A_ADDRESS = 0;
const A_POOL_ADDRESS = 8;
const A_NFREEPOOLS = 16;
const A_NTOTALPOOLS = 20;
const A_FREEPOOLS = 24;
const A_NEXTARENA = 32;
const A_PREVARENA = 40;

/** The statics page: usedpools, then nfp2lasta. */
const USEDPOOLS_OFFSET = 16;
const NFP2LASTA_OFFSET = USEDPOOLS_OFFSET + 2 * NB_SMALL_SIZE_CLASSES * 8;
const STATICS_BYTES = NFP2LASTA_OFFSET + (MAX_POOLS_IN_ARENA + 1) * 8;

/** Size class of a request of `nbytes` (1 .. 512): (nbytes - 1) >> 4; -1 for what goes to malloc. */
export function sizeClassOf(nbytes: number): number {
  if (!Number.isInteger(nbytes) || nbytes < 1 || nbytes > SMALL_REQUEST_THRESHOLD) return -1;
  return (nbytes - 1) >>> ALIGNMENT_SHIFT;
}

/** Block bytes of size class `szidx`: CPython's INDEX2SIZE. */
export function classBytes(szidx: number): number {
  return (szidx + 1) << ALIGNMENT_SHIFT;
}

/** The process's malloc, one per C library (ptmalloc's heap is its own: two would share the break). */
const processMallocs = new WeakMap<Libc, Malloc>();

/** The Malloc of the process whose C library is `libc` (made on first use): PyMem_RawMalloc's allocator. */
export function processMalloc(libc: Libc): Malloc {
  let malloc = processMallocs.get(libc);
  if (malloc === undefined) {
    malloc = new Malloc(libc);
    processMallocs.set(libc, malloc);
  }
  return malloc;
}

export interface PymallocOptions {
  /** The raw allocator (PyMem_RawMalloc) for large requests and the arena table; default processMalloc(libc). */
  raw?: Malloc;
  /** Arena bytes plus raw block bytes may not exceed this (0: no limit but the kernel's). */
  maxBytes?: number;
}

export class Pymalloc {
  readonly raw: Malloc;
  private readonly libc: Libc;
  private readonly cpu: UserCpu;
  private readonly maxBytes: number;
  /** The statics page (usedpools, nfp2lasta). */
  private readonly statics: number;
  private readonly usedpools: number;
  private readonly nfp2lasta: number;
  /** The arena objects: [arenas, arenas + 48 * maxarenas), from raw malloc; 0 before the first arena. */
  private arenas = 0;
  private maxarenas = 0;
  /** Singly linked through nextarena: arena objects with no arena. */
  private unusedArenaObjects = 0;
  /** Doubly linked, sorted by nfreepools ascending: arenas with a free pool. */
  private usableArenas = 0;
  private narenasCurrentlyAllocated = 0;
  private narenasHighwater = 0;
  private ntimesArenaAllocated = 0;
  /** Usable bytes of the raw blocks handed out now. */
  private rawBytes = 0;

  /** Maps the statics page; throws MallocAbort when the kernel refuses it. */
  constructor(libc: Libc, options: PymallocOptions = {}) {
    this.libc = libc;
    this.cpu = libc.ctx.cpu;
    this.raw = options.raw ?? processMalloc(libc);
    this.maxBytes = options.maxBytes ?? 0;
    if (!Number.isSafeInteger(this.maxBytes) || this.maxBytes < 0)
      throw new RangeError(`pymalloc: maxBytes ${this.maxBytes} is not a whole number >= 0`);
    const statics = libc.mapAnonymous(STATICS_BYTES);
    if (statics === -1) throw new MallocAbort(`pymalloc: cannot map its statics (errno ${libc.errno})`);
    this.statics = statics;
    this.usedpools = statics + USEDPOOLS_OFFSET;
    this.nfp2lasta = statics + NFP2LASTA_OFFSET;
    for (let i = 0; i < NB_SMALL_SIZE_CLASSES; i++) {
      const pta = this.pta(i);
      this.cpu.store64(pta + P_NEXTPOOL, pta);
      this.cpu.store64(pta + P_PREVPOOL, pta);
    }
  }

  /**
   * pymalloc_alloc: a block of `nbytes` (1 .. 512) rounded up to its class, or 0 when no arena
   * can be mapped (or `nbytes` is not a small request). The block's contents are stale but for
   * word 1, which is 0.
   */
  alloc(nbytes: number): number {
    const size = sizeClassOf(nbytes);
    if (size < 0) return 0;
    const cpu = this.cpu;
    const pool = cpu.load64(this.usedpools + 16 * size);
    if (pool === cpu.load64(pool + P_NEXTPOOL)) return this.allocateFromNewPool(size);
    cpu.store32(pool + P_COUNT, cpu.load32(pool + P_COUNT) + 1);
    const bp = cpu.load64(pool + P_FREEBLOCK);
    const next = cpu.load64(bp);
    cpu.store64(pool + P_FREEBLOCK, next);
    cpu.store64(bp + 8, 0);
    if (next === 0) this.extendPool(pool, size);
    return bp;
  }

  /** _PyObject_Malloc: a pymalloc block for a small request, else (or when that fails) raw malloc; 0 when both fail. */
  malloc(nbytes: number): number {
    const bp = this.alloc(nbytes);
    return bp !== 0 ? bp : this.rawMalloc(nbytes);
  }

  /** _PyObject_Free: `p` back to its pool when address_in_range says it is pymalloc's, else to raw free. free(0) does nothing. */
  free(p: number): void {
    if (p === 0) return;
    const pool = p - (p % POOL_SIZE);
    if (!this.addressInRange(p, pool)) {
      this.rawFree(p);
      return;
    }
    this.freeToPool(p, pool);
  }

  /**
   * CPython's address_in_range: is `p` inside an arena? Reads the pool header at p's pool
   * address whatever `p` is, as CPython does: a malloc'd block's page is mapped, so the read is
   * safe for any pointer this allocator or malloc handed out (pages are 4 KiB or larger).
   */
  addressInRange(p: number, pool = p - (p % POOL_SIZE)): boolean {
    const arenaindex = this.cpu.load32(pool + P_ARENAINDEX);
    if (arenaindex >= this.maxarenas) return false;
    const address = this.cpu.load64(this.arenas + ARENA_OBJECT_BYTES * arenaindex + A_ADDRESS);
    const offset = p - address;
    return address !== 0 && offset >= 0 && offset < ARENA_SIZE;
  }

  /**
   * Is `p` the start of an allocated pymalloc block? Reads only the allocator's own memory (the
   * arena table, then the pool's header), so any number may be asked about.
   */
  isAllocatedBlock(p: number): boolean {
    if (this.arenaContaining(p) === 0) return false;
    const pool = p - (p % POOL_SIZE);
    const offset = this.blockOffset(p, pool);
    return offset >= 0 && this.cpu.load64(p + 8) !== FREE_BLOCK_MARK;
  }

  /** Usable bytes of block `p`: its class's size, or malloc_usable_size for a raw block. */
  usableSize(p: number): number {
    const pool = p - (p % POOL_SIZE);
    if (!this.addressInRange(p, pool)) return this.raw.mallocUsableSize(p);
    return classBytes(this.cpu.load32(pool + P_SZIDX));
  }

  /**
   * Call `fn(block, blockBytes)` for every allocated pymalloc block, in address order (arenas
   * by address, their pools, their blocks). Raw blocks are not walked. `fn` must not allocate
   * or free.
   */
  forEachBlock(fn: (block: number, blockBytes: number) => void): void {
    const cpu = this.cpu;
    for (let ao = this.nextArenaByAddress(-1); ao !== 0; ao = this.nextArenaByAddress(cpu.load64(ao))) {
      const end = cpu.load64(ao + A_POOL_ADDRESS);
      for (let pool = this.firstPool(ao); pool < end; pool += POOL_SIZE) {
        if (cpu.load32(pool + P_COUNT) === 0) continue;
        const size = classBytes(cpu.load32(pool + P_SZIDX));
        const carvedEnd = pool + cpu.load32(pool + P_NEXTOFFSET);
        for (let bp = pool + POOL_OVERHEAD; bp < carvedEnd; bp += size)
          if (cpu.load64(bp + 8) !== FREE_BLOCK_MARK) fn(bp, size);
      }
    }
  }

  /** Call `fn(address, nfreepools, ntotalpools)` for each arena of usable_arenas, in list order. */
  forEachUsableArena(fn: (address: number, nfreepools: number, ntotalpools: number) => void): void {
    const cpu = this.cpu;
    for (
      let ao = this.usableArenas, n = 0;
      ao !== 0 && n <= this.maxarenas;
      ao = cpu.load64(ao + A_NEXTARENA), n++
    )
      fn(cpu.load64(ao + A_ADDRESS), cpu.load32(ao + A_NFREEPOOLS), cpu.load32(ao + A_NTOTALPOOLS));
  }

  /** Arenas mapped now. */
  arenaCount(): number {
    return this.narenasCurrentlyAllocated;
  }

  /** The most arenas mapped at once, and arenas mapped in all (CPython's narenas_highwater, ntimes_arena_allocated). */
  arenaHistory(): { highwater: number; allocated: number } {
    return { highwater: this.narenasHighwater, allocated: this.ntimesArenaAllocated };
  }

  /** Bytes held for the heap: the statics page, the arena table, the arenas, the raw blocks handed out. */
  heapBytes(): number {
    return (
      STATICS_BYTES +
      ARENA_OBJECT_BYTES * this.maxarenas +
      ARENA_SIZE * this.narenasCurrentlyAllocated +
      this.rawBytes
    );
  }

  /** Usable bytes of the raw blocks handed out now. */
  rawBlockBytes(): number {
    return this.rawBytes;
  }

  /**
   * Unmap every arena and the statics page, free the arena table and trim malloc (malloc_trim).
   * Raw blocks still handed out stay the caller's. The allocator is unusable after.
   */
  destroy(): void {
    const cpu = this.cpu;
    for (let i = 0; i < this.maxarenas; i++) {
      const ao = this.arenas + ARENA_OBJECT_BYTES * i;
      const address = cpu.load64(ao + A_ADDRESS);
      if (address !== 0 && this.libc.munmap(address, ARENA_SIZE) !== 0)
        throw new MallocAbort(`pymalloc destroy: munmap of the arena at 0x${hex(address)} failed`);
    }
    if (this.arenas !== 0) this.raw.free(this.arenas);
    this.arenas = 0;
    this.maxarenas = 0;
    this.unusedArenaObjects = 0;
    this.usableArenas = 0;
    this.narenasCurrentlyAllocated = 0;
    this.libc.munmap(this.statics, STATICS_BYTES);
    this.raw.allocator.releaseMemory?.();
  }

  /** Walk every arena, pool, free list and list; MallocAbort naming the first broken invariant (see the header). */
  checkInvariants(): void {
    const usedPools = this.checkArenas();
    const listed = this.checkUsedpools();
    if (listed !== usedPools)
      this.fail(`${usedPools} pools are partly used but ${listed} are on the usedpools lists`);
    this.checkUsableArenas();
    this.checkUnusedArenaObjects();
  }

  // ---- allocation's slow paths ----

  /** pymalloc_pool_extend: carve the next block off the pool, or unlink the now-full pool from usedpools. */
  private extendPool(pool: number, size: number): void {
    const cpu = this.cpu;
    const nextoffset = cpu.load32(pool + P_NEXTOFFSET);
    if (nextoffset <= cpu.load32(pool + P_MAXNEXTOFFSET)) {
      const bp = pool + nextoffset;
      cpu.store64(pool + P_FREEBLOCK, bp);
      cpu.store32(pool + P_NEXTOFFSET, nextoffset + classBytes(size));
      this.markFree(bp, 0);
      return;
    }
    const next = cpu.load64(pool + P_NEXTPOOL);
    const prev = cpu.load64(pool + P_PREVPOOL);
    cpu.store64(next + P_PREVPOOL, prev);
    cpu.store64(prev + P_NEXTPOOL, next);
  }

  /** allocate_from_new_pool: take a pool from the first usable arena (mapping one if none), front-link it to usedpools[size]. */
  private allocateFromNewPool(size: number): number {
    const cpu = this.cpu;
    if (this.usableArenas === 0) {
      const ao = this.newArena();
      if (ao === 0) return 0;
      this.usableArenas = ao;
      cpu.store64(ao + A_NEXTARENA, 0);
      cpu.store64(ao + A_PREVARENA, 0);
      this.setLastWith(cpu.load32(ao + A_NFREEPOOLS), ao);
    }
    const ao = this.usableArenas;
    const nf = cpu.load32(ao + A_NFREEPOOLS);
    if (this.lastWith(nf) === ao) this.setLastWith(nf, 0);
    if (nf > 1) this.setLastWith(nf - 1, ao);
    const pool = this.takePool(ao);
    const head = this.pta(size);
    cpu.store64(pool + P_NEXTPOOL, head);
    cpu.store64(pool + P_PREVPOOL, head);
    cpu.store64(head + P_NEXTPOOL, pool);
    cpu.store64(head + P_PREVPOOL, pool);
    cpu.store32(pool + P_COUNT, 1);
    if (cpu.load32(pool + P_SZIDX) === size) {
      // An empty pool of this class: every carved block (two at least) is on its free list.
      const bp = cpu.load64(pool + P_FREEBLOCK);
      cpu.store64(pool + P_FREEBLOCK, cpu.load64(bp));
      cpu.store64(bp + 8, 0);
      return bp;
    }
    return this.initPool(pool, size);
  }

  /**
   * A pool out of arena `ao` (the head of usable_arenas): a cached free one, else a new one
   * carved at pool_address. An arena left with no free pool leaves usable_arenas.
   */
  private takePool(ao: number): number {
    const cpu = this.cpu;
    let pool = cpu.load64(ao + A_FREEPOOLS);
    if (pool !== 0) {
      cpu.store64(ao + A_FREEPOOLS, cpu.load64(pool + P_NEXTPOOL));
    } else {
      pool = cpu.load64(ao + A_POOL_ADDRESS);
      cpu.store32(pool + P_ARENAINDEX, (ao - this.arenas) / ARENA_OBJECT_BYTES);
      cpu.store32(pool + P_SZIDX, DUMMY_SIZE_IDX);
      cpu.store64(ao + A_POOL_ADDRESS, pool + POOL_SIZE);
    }
    const nf = cpu.load32(ao + A_NFREEPOOLS) - 1;
    cpu.store32(ao + A_NFREEPOOLS, nf);
    if (nf === 0) {
      const next = cpu.load64(ao + A_NEXTARENA);
      this.usableArenas = next;
      if (next !== 0) cpu.store64(next + A_PREVARENA, 0);
    }
    return pool;
  }

  /** A pool's first use by class `size`: the first block is returned, the second starts the free list. */
  private initPool(pool: number, size: number): number {
    const cpu = this.cpu;
    const bytes = classBytes(size);
    cpu.store32(pool + P_SZIDX, size);
    cpu.store32(pool + P_NEXTOFFSET, POOL_OVERHEAD + 2 * bytes);
    cpu.store32(pool + P_MAXNEXTOFFSET, POOL_SIZE - bytes);
    const bp = pool + POOL_OVERHEAD;
    cpu.store64(pool + P_FREEBLOCK, bp + bytes);
    this.markFree(bp + bytes, 0);
    cpu.store64(bp + 8, 0);
    return bp;
  }

  /**
   * new_arena: an arena object (doubling the table with realloc when none is unused: no pointer
   * into it exists then, as usable_arenas is empty) and ARENA_SIZE bytes from mmap; 0 when the
   * table or the arena cannot be had, or maxBytes would be passed.
   */
  private newArena(): number {
    const cpu = this.cpu;
    if (this.unusedArenaObjects === 0 && !this.growArenaTable()) return 0;
    if (this.maxBytes > 0 && this.blockBytes() + ARENA_SIZE > this.maxBytes) return 0;
    const ao = this.unusedArenaObjects;
    const address = this.libc.mapAnonymous(ARENA_SIZE);
    if (address === -1) return 0;
    this.unusedArenaObjects = cpu.load64(ao + A_NEXTARENA);
    this.narenasCurrentlyAllocated++;
    this.ntimesArenaAllocated++;
    this.narenasHighwater = Math.max(this.narenasHighwater, this.narenasCurrentlyAllocated);
    cpu.store64(ao + A_ADDRESS, address);
    cpu.store64(ao + A_FREEPOOLS, 0);
    const excess = address % POOL_SIZE;
    const pools = excess === 0 ? MAX_POOLS_IN_ARENA : MAX_POOLS_IN_ARENA - 1;
    cpu.store64(ao + A_POOL_ADDRESS, excess === 0 ? address : address + POOL_SIZE - excess);
    cpu.store32(ao + A_NFREEPOOLS, pools);
    cpu.store32(ao + A_NTOTALPOOLS, pools);
    return ao;
  }

  /** Double the arena table (16 entries the first time); the new entries go on unused_arena_objects. false when realloc fails. */
  private growArenaTable(): boolean {
    const cpu = this.cpu;
    const numarenas = this.maxarenas === 0 ? INITIAL_ARENA_OBJECTS : 2 * this.maxarenas;
    const table = this.raw.realloc(this.arenas, numarenas * ARENA_OBJECT_BYTES);
    if (table === 0) return false;
    this.arenas = table;
    for (let i = this.maxarenas; i < numarenas; i++) {
      const ao = table + ARENA_OBJECT_BYTES * i;
      cpu.store64(ao + A_ADDRESS, 0);
      cpu.store64(ao + A_NEXTARENA, i < numarenas - 1 ? ao + ARENA_OBJECT_BYTES : 0);
    }
    this.unusedArenaObjects = table + ARENA_OBJECT_BYTES * this.maxarenas;
    this.maxarenas = numarenas;
    return true;
  }

  private rawMalloc(nbytes: number): number {
    if (this.maxBytes > 0 && this.blockBytes() + nbytes > this.maxBytes) return 0;
    const p = this.raw.malloc(nbytes);
    if (p !== 0) this.rawBytes += this.raw.mallocUsableSize(p);
    return p;
  }

  private rawFree(p: number): void {
    this.rawBytes -= this.raw.mallocUsableSize(p);
    this.raw.free(p);
  }

  // ---- free ----

  /** pymalloc_free after address_in_range: link `p` first on its pool's free list, then move the pool as its count says. */
  private freeToPool(p: number, pool: number): void {
    const cpu = this.cpu;
    const count = cpu.load32(pool + P_COUNT);
    if (count === 0 || this.blockOffset(p, pool) < 0)
      throw new MallocAbort(`pymalloc free(): invalid pointer 0x${hex(p)}`);
    if (cpu.load64(p + 8) === FREE_BLOCK_MARK)
      throw new MallocAbort(`pymalloc free(): double free of 0x${hex(p)}`);
    const lastfree = cpu.load64(pool + P_FREEBLOCK);
    this.markFree(p, lastfree);
    cpu.store64(pool + P_FREEBLOCK, p);
    cpu.store32(pool + P_COUNT, count - 1);
    if (lastfree === 0) this.insertToUsedpool(pool);
    else if (count === 1) this.insertToFreepool(pool);
  }

  /**
   * A full pool got a free block (it keeps a used one: every class has 7 or more a pool): link
   * it first on usedpools[szidx], so the next allocations of the class fill it (LRU order).
   */
  private insertToUsedpool(pool: number): void {
    const cpu = this.cpu;
    const next = cpu.load64(this.pta(cpu.load32(pool + P_SZIDX)) + P_NEXTPOOL);
    const prev = cpu.load64(next + P_PREVPOOL);
    cpu.store64(pool + P_NEXTPOOL, next);
    cpu.store64(pool + P_PREVPOOL, prev);
    cpu.store64(next + P_PREVPOOL, pool);
    cpu.store64(prev + P_NEXTPOOL, pool);
  }

  /**
   * An empty pool: off usedpools, onto its arena's freepools; then the arena management of
   * CPython's insert_to_freepool: free the arena when all its pools are free (unless it is the
   * last of usable_arenas), put it back on usable_arenas when this is its first free pool, or
   * slide it right to keep usable_arenas sorted.
   */
  private insertToFreepool(pool: number): void {
    const cpu = this.cpu;
    const next = cpu.load64(pool + P_NEXTPOOL);
    const prev = cpu.load64(pool + P_PREVPOOL);
    cpu.store64(next + P_PREVPOOL, prev);
    cpu.store64(prev + P_NEXTPOOL, next);
    const ao = this.arenas + ARENA_OBJECT_BYTES * cpu.load32(pool + P_ARENAINDEX);
    cpu.store64(pool + P_NEXTPOOL, cpu.load64(ao + A_FREEPOOLS));
    cpu.store64(ao + A_FREEPOOLS, pool);
    const oldNf = cpu.load32(ao + A_NFREEPOOLS);
    const lastnf = this.lastWith(oldNf);
    if (lastnf === ao) {
      const p = cpu.load64(ao + A_PREVARENA);
      this.setLastWith(oldNf, p !== 0 && cpu.load32(p + A_NFREEPOOLS) === oldNf ? p : 0);
    }
    const nf = oldNf + 1;
    cpu.store32(ao + A_NFREEPOOLS, nf);
    if (nf === cpu.load32(ao + A_NTOTALPOOLS) && cpu.load64(ao + A_NEXTARENA) !== 0) {
      this.freeArena(ao);
      return;
    }
    if (nf === 1) {
      this.pushUsableArena(ao);
      return;
    }
    if (this.lastWith(nf) === 0) this.setLastWith(nf, ao);
    if (ao !== lastnf) this.slideArenaAfter(ao, lastnf);
  }

  /** Case 1: unlink a wholly free arena from usable_arenas, put its object on unused_arena_objects, munmap it. */
  private freeArena(ao: number): void {
    const cpu = this.cpu;
    this.unlinkUsableArena(ao);
    cpu.store64(ao + A_NEXTARENA, this.unusedArenaObjects);
    this.unusedArenaObjects = ao;
    const address = cpu.load64(ao + A_ADDRESS);
    if (this.libc.munmap(address, ARENA_SIZE) !== 0)
      throw new MallocAbort(`pymalloc: munmap of the arena at 0x${hex(address)} failed`);
    cpu.store64(ao + A_ADDRESS, 0);
    this.narenasCurrentlyAllocated--;
  }

  /** Case 2: an arena that had no free pool goes first on usable_arenas (its one free pool is the fewest). */
  private pushUsableArena(ao: number): void {
    const cpu = this.cpu;
    const head = this.usableArenas;
    cpu.store64(ao + A_NEXTARENA, head);
    cpu.store64(ao + A_PREVARENA, 0);
    if (head !== 0) cpu.store64(head + A_PREVARENA, ao);
    this.usableArenas = ao;
    if (this.lastWith(1) === 0) this.setLastWith(1, ao);
  }

  /** Case 3: move `ao` (one more free pool than `lastnf`, which had its old count last) to just after `lastnf`. */
  private slideArenaAfter(ao: number, lastnf: number): void {
    const cpu = this.cpu;
    this.unlinkUsableArena(ao);
    const after = cpu.load64(lastnf + A_NEXTARENA);
    cpu.store64(ao + A_PREVARENA, lastnf);
    cpu.store64(ao + A_NEXTARENA, after);
    if (after !== 0) cpu.store64(after + A_PREVARENA, ao);
    cpu.store64(lastnf + A_NEXTARENA, ao);
  }

  private unlinkUsableArena(ao: number): void {
    const cpu = this.cpu;
    const prev = cpu.load64(ao + A_PREVARENA);
    const next = cpu.load64(ao + A_NEXTARENA);
    if (prev === 0) this.usableArenas = next;
    else cpu.store64(prev + A_NEXTARENA, next);
    if (next !== 0) cpu.store64(next + A_PREVARENA, prev);
  }

  // ---- small helpers ----

  /** The pretend pool header whose nextpool/prevpool are usedpools[2i], usedpools[2i + 1]. */
  private pta(szidx: number): number {
    return this.usedpools + 16 * szidx - 16;
  }

  private lastWith(nf: number): number {
    return this.cpu.load64(this.nfp2lasta + 8 * nf);
  }

  private setLastWith(nf: number, ao: number): void {
    this.cpu.store64(this.nfp2lasta + 8 * nf, ao);
  }

  /** A block joins a free list: word 0 the next free block, word 1 the mark. */
  private markFree(bp: number, next: number): void {
    this.cpu.store64(bp, next);
    this.cpu.store64(bp + 8, FREE_BLOCK_MARK);
  }

  /** Offset of block `p` in `pool` when `p` is a carved block boundary of a pool in use; -1 otherwise. */
  private blockOffset(p: number, pool: number): number {
    const cpu = this.cpu;
    if (cpu.load32(pool + P_COUNT) === 0) return -1;
    const szidx = cpu.load32(pool + P_SZIDX);
    if (szidx >= NB_SMALL_SIZE_CLASSES) return -1;
    const offset = p - pool;
    const ok =
      offset >= POOL_OVERHEAD &&
      (offset - POOL_OVERHEAD) % classBytes(szidx) === 0 &&
      offset < cpu.load32(pool + P_NEXTOFFSET);
    return ok ? offset : -1;
  }

  /** The arena object whose arena holds `p`, from the table alone (0 when none), and `p`'s pool carved. */
  private arenaContaining(p: number): number {
    const cpu = this.cpu;
    for (let i = 0; i < this.maxarenas; i++) {
      const ao = this.arenas + ARENA_OBJECT_BYTES * i;
      const address = cpu.load64(ao + A_ADDRESS);
      if (address === 0 || p < address || p >= address + ARENA_SIZE) continue;
      return p >= this.firstPool(ao) && p < cpu.load64(ao + A_POOL_ADDRESS) ? ao : 0;
    }
    return 0;
  }

  /** The arena object with the lowest arena address above `after` (0 when none). */
  private nextArenaByAddress(after: number): number {
    const cpu = this.cpu;
    let best = 0;
    let bestAddress = Number.POSITIVE_INFINITY;
    for (let i = 0; i < this.maxarenas; i++) {
      const ao = this.arenas + ARENA_OBJECT_BYTES * i;
      const address = cpu.load64(ao + A_ADDRESS);
      if (address !== 0 && address > after && address < bestAddress) {
        best = ao;
        bestAddress = address;
      }
    }
    return best;
  }

  private firstPool(ao: number): number {
    const address = this.cpu.load64(ao + A_ADDRESS);
    const excess = address % POOL_SIZE;
    return excess === 0 ? address : address + POOL_SIZE - excess;
  }

  /** Arena bytes plus raw block bytes: what maxBytes limits. */
  private blockBytes(): number {
    return ARENA_SIZE * this.narenasCurrentlyAllocated + this.rawBytes;
  }

  // ---- checkInvariants' parts ----

  private fail(rule: string): never {
    throw new MallocAbort(`pymalloc checkInvariants: ${rule}`);
  }

  /** Every arena's pools and their free lists; the number of partly used pools. */
  private checkArenas(): number {
    const cpu = this.cpu;
    let arenas = 0;
    let partly = 0;
    for (let i = 0; i < this.maxarenas; i++) {
      const ao = this.arenas + ARENA_OBJECT_BYTES * i;
      if (cpu.load64(ao + A_ADDRESS) === 0) continue;
      arenas++;
      const first = this.firstPool(ao);
      const end = cpu.load64(ao + A_POOL_ADDRESS);
      const total = cpu.load32(ao + A_NTOTALPOOLS);
      if (end < first || end > first + total * POOL_SIZE || (end - first) % POOL_SIZE !== 0)
        this.fail(`arena ${i}: pool_address 0x${hex(end)} outside its pools`);
      let empty = 0;
      for (let pool = first; pool < end; pool += POOL_SIZE) {
        const state = this.checkPool(pool, i);
        if (state === 'empty') empty++;
        else if (state === 'partly') partly++;
      }
      const cached = this.checkFreepools(ao, i, first, end);
      if (cached !== empty) this.fail(`arena ${i}: ${empty} empty pools but ${cached} on freepools`);
      const nf = cpu.load32(ao + A_NFREEPOOLS);
      if (nf !== cached + total - (end - first) / POOL_SIZE)
        this.fail(`arena ${i}: nfreepools ${nf} is not |freepools| ${cached} + uncarved pools`);
    }
    if (arenas !== this.narenasCurrentlyAllocated)
      this.fail(
        `${arenas} arenas in the table, narenas_currently_allocated ${this.narenasCurrentlyAllocated}`,
      );
    return partly;
  }

  /** One carved pool: its index, class, offsets, and count + |free list| == carved blocks, every free block marked. */
  private checkPool(pool: number, arenaindex: number): 'empty' | 'partly' | 'full' {
    const cpu = this.cpu;
    if (cpu.load32(pool + P_ARENAINDEX) !== arenaindex)
      this.fail(`pool 0x${hex(pool)}: arenaindex ${cpu.load32(pool + P_ARENAINDEX)}, not ${arenaindex}`);
    const count = cpu.load32(pool + P_COUNT);
    if (count === 0) return 'empty';
    const szidx = cpu.load32(pool + P_SZIDX);
    if (szidx >= NB_SMALL_SIZE_CLASSES) this.fail(`pool 0x${hex(pool)}: szidx ${szidx}`);
    const size = classBytes(szidx);
    const nextoffset = cpu.load32(pool + P_NEXTOFFSET);
    if (cpu.load32(pool + P_MAXNEXTOFFSET) !== POOL_SIZE - size)
      this.fail(`pool 0x${hex(pool)}: maxnextoffset is not POOL_SIZE - ${size}`);
    if ((nextoffset - POOL_OVERHEAD) % size !== 0 || nextoffset > POOL_SIZE)
      this.fail(`pool 0x${hex(pool)}: nextoffset ${nextoffset} is not a block boundary`);
    const carved = (nextoffset - POOL_OVERHEAD) / size;
    let free = 0;
    for (let bp = cpu.load64(pool + P_FREEBLOCK); bp !== 0; bp = cpu.load64(bp)) {
      if (++free > carved) this.fail(`pool 0x${hex(pool)}: the free list is longer than the carved blocks`);
      if (this.blockOffset(bp, pool) < 0)
        this.fail(`pool 0x${hex(pool)}: free block 0x${hex(bp)} is not one of its blocks`);
      if (cpu.load64(bp + 8) !== FREE_BLOCK_MARK)
        this.fail(`pool 0x${hex(pool)}: free block 0x${hex(bp)} lost its mark`);
    }
    if (count + free !== carved)
      this.fail(`pool 0x${hex(pool)}: count ${count} + ${free} free blocks != ${carved} carved`);
    return free === 0 ? 'full' : 'partly';
  }

  /** An arena's freepools: carved pools of that arena with count 0, no repeats; their number. */
  private checkFreepools(ao: number, i: number, first: number, end: number): number {
    const cpu = this.cpu;
    let n = 0;
    for (let pool = cpu.load64(ao + A_FREEPOOLS); pool !== 0; pool = cpu.load64(pool + P_NEXTPOOL)) {
      if (++n > MAX_POOLS_IN_ARENA) this.fail(`arena ${i}: freepools does not end`);
      if (pool < first || pool >= end || (pool - first) % POOL_SIZE !== 0)
        this.fail(`arena ${i}: freepools holds 0x${hex(pool)}, not a carved pool of it`);
      if (cpu.load32(pool + P_COUNT) !== 0) this.fail(`arena ${i}: freepools holds a pool in use`);
    }
    return n;
  }

  /** The usedpools lists: circular, well linked, each pool of its class with a used and a free block; how many pools. */
  private checkUsedpools(): number {
    const cpu = this.cpu;
    const limit = this.maxarenas * MAX_POOLS_IN_ARENA;
    let total = 0;
    for (let size = 0; size < NB_SMALL_SIZE_CLASSES; size++) {
      const head = this.pta(size);
      let prev = head;
      for (let pool = cpu.load64(head + P_NEXTPOOL); pool !== head; pool = cpu.load64(pool + P_NEXTPOOL)) {
        if (++total > limit) this.fail(`usedpools[${size}] does not end`);
        if (cpu.load64(pool + P_PREVPOOL) !== prev)
          this.fail(`usedpools[${size}]: 0x${hex(pool)}'s prevpool is wrong`);
        if (this.arenaContaining(pool) === 0)
          this.fail(`usedpools[${size}] holds 0x${hex(pool)}, not a carved pool`);
        if (cpu.load32(pool + P_SZIDX) !== size)
          this.fail(`usedpools[${size}] holds a pool of class ${cpu.load32(pool + P_SZIDX)}`);
        if (cpu.load32(pool + P_COUNT) === 0 || cpu.load64(pool + P_FREEBLOCK) === 0)
          this.fail(`usedpools[${size}] holds an empty or full pool 0x${hex(pool)}`);
        prev = pool;
      }
      if (cpu.load64(head + P_PREVPOOL) !== prev)
        this.fail(`usedpools[${size}]: the head's prevpool is not the last pool`);
    }
    return total;
  }

  /** usable_arenas: well linked, sorted by nfreepools, exactly the arenas with a free pool; nfp2lasta agrees. */
  private checkUsableArenas(): void {
    const cpu = this.cpu;
    let n = 0;
    let prev = 0;
    let prevNf = 0;
    for (let ao = this.usableArenas; ao !== 0; ao = cpu.load64(ao + A_NEXTARENA)) {
      if (++n > this.maxarenas) this.fail('usable_arenas does not end');
      if (cpu.load64(ao + A_PREVARENA) !== prev)
        this.fail(`usable_arenas: arena object ${this.indexOf(ao)}'s prevarena is wrong`);
      if (cpu.load64(ao + A_ADDRESS) === 0) this.fail('usable_arenas holds an arena object with no arena');
      const nf = cpu.load32(ao + A_NFREEPOOLS);
      if (nf === 0 || nf < prevNf)
        this.fail(`usable_arenas is not sorted by nfreepools (${prevNf} then ${nf})`);
      const next = cpu.load64(ao + A_NEXTARENA);
      const last = next === 0 || cpu.load32(next + A_NFREEPOOLS) !== nf;
      if (last && this.lastWith(nf) !== ao)
        this.fail(`nfp2lasta[${nf}] is not the last arena with ${nf} free pools`);
      prev = ao;
      prevNf = nf;
    }
    let withFree = 0;
    for (let i = 0; i < this.maxarenas; i++) {
      const ao = this.arenas + ARENA_OBJECT_BYTES * i;
      if (cpu.load64(ao + A_ADDRESS) !== 0 && cpu.load32(ao + A_NFREEPOOLS) > 0) withFree++;
    }
    if (withFree !== n) this.fail(`${withFree} arenas have a free pool but ${n} are on usable_arenas`);
    for (let nf = 0; nf <= MAX_POOLS_IN_ARENA; nf++) {
      const ao = this.lastWith(nf);
      if (ao !== 0 && (nf === 0 || cpu.load32(ao + A_NFREEPOOLS) !== nf))
        this.fail(`nfp2lasta[${nf}] names an arena with ${cpu.load32(ao + A_NFREEPOOLS)} free pools`);
    }
  }

  /** unused_arena_objects: table entries with no arena, and with the mapped ones, the whole table. */
  private checkUnusedArenaObjects(): void {
    const cpu = this.cpu;
    let n = 0;
    for (let ao = this.unusedArenaObjects; ao !== 0; ao = cpu.load64(ao + A_NEXTARENA)) {
      if (++n > this.maxarenas) this.fail('unused_arena_objects does not end');
      if (this.indexOf(ao) < 0) this.fail(`unused_arena_objects holds 0x${hex(ao)}, not in the table`);
      if (cpu.load64(ao + A_ADDRESS) !== 0)
        this.fail('unused_arena_objects holds an arena object with an arena');
    }
    if (n + this.narenasCurrentlyAllocated !== this.maxarenas)
      this.fail(
        `${n} unused + ${this.narenasCurrentlyAllocated} mapped arena objects != maxarenas ${this.maxarenas}`,
      );
  }

  private indexOf(ao: number): number {
    const offset = ao - this.arenas;
    const ok =
      offset >= 0 && offset % ARENA_OBJECT_BYTES === 0 && offset / ARENA_OBJECT_BYTES < this.maxarenas;
    return ok ? offset / ARENA_OBJECT_BYTES : -1;
  }
}

function hex(n: number): string {
  return n.toString(16);
}
