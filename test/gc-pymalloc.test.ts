import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SIGABRT, type UserContext, WTERMSIG } from '../kernel/proc/uapi.ts';
import {
  ARENA_SIZE,
  classBytes,
  MAX_POOLS_IN_ARENA,
  POOL_OVERHEAD,
  POOL_SIZE,
  Pymalloc,
  SMALL_REQUEST_THRESHOLD,
  sizeClassOf,
} from '../userland/gc/pymalloc.ts';
import { Libc } from '../userland/libc/libc.ts';
import { bootTestMachine, settleFreePages } from './helpers/kernel.ts';
import { runAllocatorProgram, runChecked } from './helpers/malloc.ts';

/** Blocks of the 512-byte class in one pool, and in one arena (mmap gives pool-aligned arenas). */
const BLOCKS_512_PER_POOL = Math.floor((POOL_SIZE - POOL_OVERHEAD) / 512);
const BLOCKS_512_PER_ARENA = BLOCKS_512_PER_POOL * MAX_POOLS_IN_ARENA;

const isMapped = (ctx: UserContext, va: number): boolean =>
  ctx.sys.vmlab_maps().some((e) => e.start <= va && va < e.end);

/** The pool a block of pymalloc's lies in. */
const poolOf = (p: number): number => p - (p % POOL_SIZE);

describe('size classes', () => {
  it('maps requests to 16-byte classes up to 512 bytes, the rest to malloc', () => {
    for (let n = 1; n <= 16; n++) expect(classBytes(sizeClassOf(n))).toBe(16);
    for (let n = 17; n <= 32; n++) expect(classBytes(sizeClassOf(n))).toBe(32);
    expect(sizeClassOf(33)).toBe(2);
    expect(classBytes(sizeClassOf(497))).toBe(512);
    expect(sizeClassOf(512)).toBe(31);
    expect(sizeClassOf(513)).toBe(-1);
    expect(sizeClassOf(0)).toBe(-1);
    expect(sizeClassOf(-1)).toBe(-1);
    expect(sizeClassOf(1.5)).toBe(-1);
    expect(SMALL_REQUEST_THRESHOLD).toBe(512);
  });

  it('serves each small size from a pool of its class and sends 0 and 513 bytes to malloc', () => {
    runChecked('pymalloc', (ctx) => {
      const pm = new Pymalloc(new Libc(ctx));
      for (let n = 1; n <= 512; n += 7) {
        const p = pm.malloc(n);
        expect(pm.addressInRange(p)).toBe(true);
        expect(pm.isAllocatedBlock(p)).toBe(true);
        expect(pm.usableSize(p)).toBe(classBytes(sizeClassOf(n)));
        expect((p - poolOf(p) - POOL_OVERHEAD) % classBytes(sizeClassOf(n))).toBe(0);
      }
      for (const n of [0, 513, 4000]) {
        const p = pm.malloc(n);
        expect(p).not.toBe(0);
        expect(pm.addressInRange(p)).toBe(false);
        expect(pm.isAllocatedBlock(p)).toBe(false);
        expect(pm.usableSize(p)).toBeGreaterThanOrEqual(n);
        expect(pm.rawBlockBytes()).toBeGreaterThanOrEqual(n);
        pm.free(p);
      }
      expect(pm.rawBlockBytes()).toBe(0);
      expect(pm.alloc(513)).toBe(0);
      expect(pm.arenaCount()).toBe(1);
      pm.checkInvariants();
    });
  });
});

/**
 * The live blocks: address -> requested bytes and fill byte. A new block must overlap none (one
 * sorted neighbour check), a freed one must still hold its byte.
 */
class BlockModel {
  readonly live = new Map<number, { bytes: number; fill: number }>();
  private stamp = 0;

  constructor(private readonly ctx: UserContext) {}

  add(p: number, bytes: number): void {
    expect(p).not.toBe(0);
    expect(p % 16).toBe(0);
    const overlapping = [...this.live].find(
      ([q, b]) => p < q + Math.max(b.bytes, 1) && q < p + Math.max(bytes, 1),
    );
    expect(overlapping).toBeUndefined();
    const fill = (++this.stamp % 255) + 1;
    this.ctx.cpu.fillBytes(p, bytes, fill);
    this.live.set(p, { bytes, fill });
  }

  freed(p: number): void {
    const b = this.live.get(p)!;
    const got = new Uint8Array(b.bytes);
    this.ctx.cpu.loadBytes(p, got);
    expect(got.every((x) => x === b.fill)).toBe(true);
    this.live.delete(p);
  }

  victim(pick: number): number {
    if (this.live.size === 0) return 0;
    let i = pick % this.live.size;
    for (const p of this.live.keys()) if (i-- === 0) return p;
    return 0;
  }

  sorted(): number[] {
    return [...this.live.keys()].sort((a, b) => a - b);
  }
}

describe('pymalloc against a model', () => {
  const size = fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 1, max: 512 }) },
    { weight: 1, arbitrary: fc.integer({ min: 513, max: 3000 }) },
    { weight: 1, arbitrary: fc.constant(0) },
  );
  const op = fc.record({
    kind: fc.constantFrom('malloc', 'malloc', 'malloc', 'free', 'free', 'free', 'burst', 'freeHalf'),
    pick: fc.nat(),
    size,
  });
  /** A burst: this many blocks of one small size at once (enough for arenas to fill, empty and slide). */
  const BURST = 400;

  it('blocks never overlap, keep their bytes, sit in pools of their class, and the walk finds exactly the small ones', () => {
    let mostArenas = 0;
    runChecked('pymalloc', (ctx) => {
      fc.assert(
        fc.property(fc.array(op, { minLength: 1, maxLength: 60 }), (ops) => {
          const pm = new Pymalloc(new Libc(ctx));
          const model = new BlockModel(ctx);
          const small = new Set<number>();
          const allocate = (n: number) => {
            const p = pm.malloc(n);
            model.add(p, n);
            const cls = sizeClassOf(n);
            expect(pm.addressInRange(p)).toBe(cls >= 0);
            expect(pm.isAllocatedBlock(p)).toBe(cls >= 0);
            if (cls >= 0) {
              expect(pm.usableSize(p)).toBe(classBytes(cls));
              small.add(p);
            }
          };
          const release = (p: number) => {
            model.freed(p);
            pm.free(p);
            small.delete(p);
            expect(pm.isAllocatedBlock(p)).toBe(false);
          };
          for (const o of ops) {
            const victim = model.victim(o.pick);
            if (o.kind === 'burst') for (let i = 0; i < BURST; i++) allocate(385 + (o.size % 128));
            else if (o.kind === 'freeHalf')
              for (const p of model.sorted().filter((_, i) => i % 2 === o.pick % 2)) release(p);
            else if (o.kind === 'malloc' || victim === 0) allocate(o.size);
            else release(victim);
            pm.checkInvariants();
          }
          const walked: number[] = [];
          pm.forEachBlock((p, bytes) => {
            expect(bytes).toBe(pm.usableSize(p));
            walked.push(p);
          });
          expect(walked).toEqual([...small].sort((a, b) => a - b));
          for (const p of model.sorted()) release(p);
          pm.checkInvariants();
          mostArenas = Math.max(mostArenas, pm.arenaHistory().highwater);
          expect(pm.arenaCount()).toBeLessThanOrEqual(1);
          expect(pm.rawBlockBytes()).toBe(0);
          pm.destroy();
        }),
        { seed: 16, numRuns: 40 },
      );
    });
    expect(mostArenas).toBeGreaterThanOrEqual(3);
  });
});

describe('pools and arenas', () => {
  it('reuses the last freed block of a class first (the pool free list is LIFO)', () => {
    runChecked('pymalloc', (ctx) => {
      const pm = new Pymalloc(new Libc(ctx));
      const a = pm.malloc(40);
      const b = pm.malloc(40);
      const c = pm.malloc(40);
      expect(b - a).toBe(48);
      expect(c - b).toBe(48);
      pm.free(a);
      pm.free(c);
      expect(pm.malloc(33)).toBe(c);
      expect(pm.malloc(48)).toBe(a);
      expect(pm.malloc(40)).toBe(c + 48);
      pm.checkInvariants();
    });
  });

  it('a full pool leaves usedpools and comes back first when one of its blocks is freed', () => {
    runChecked('pymalloc', (ctx) => {
      const pm = new Pymalloc(new Libc(ctx));
      const first: number[] = [];
      for (let i = 0; i < BLOCKS_512_PER_POOL; i++) first.push(pm.malloc(512));
      const second = pm.malloc(512);
      expect(poolOf(second)).not.toBe(poolOf(first[0]!));
      expect(new Set(first.map(poolOf)).size).toBe(1);
      pm.checkInvariants();
      pm.free(first[3]!);
      pm.checkInvariants();
      expect(pm.malloc(500)).toBe(first[3]);
      pm.free(first[5]!);
      pm.free(second);
      pm.checkInvariants();
    });
  });

  it('frees an arena back to the kernel when its last pool empties, keeping one wholly free arena (bpo-37257)', () => {
    runChecked('pymalloc', (ctx) => {
      const pm = new Pymalloc(new Libc(ctx));
      const blocks: number[] = [];
      for (let i = 0; i < 3 * BLOCKS_512_PER_ARENA + 1; i++) blocks.push(pm.malloc(512));
      expect(pm.arenaCount()).toBe(4);
      pm.checkInvariants();
      const heapBefore = pm.heapBytes();
      for (const p of blocks) pm.free(p);
      pm.checkInvariants();
      expect(pm.arenaCount()).toBe(1);
      expect(pm.heapBytes()).toBe(heapBefore - 3 * ARENA_SIZE);
      // Blocks fill the arenas one after the other: exactly one arena's blocks are still mapped.
      const mappedArenas = new Set(
        blocks.flatMap((p, i) => (isMapped(ctx, p) ? [Math.floor(i / BLOCKS_512_PER_ARENA)] : [])),
      );
      expect(mappedArenas.size).toBe(1);
      expect(blocks.filter((p) => isMapped(ctx, p)).length).toBe(
        [...mappedArenas][0] === 3 ? 1 : BLOCKS_512_PER_ARENA,
      );
      expect(pm.arenaHistory()).toEqual({ highwater: 4, allocated: 4 });
      pm.destroy();
      expect(blocks.some((p) => isMapped(ctx, p))).toBe(false);
    });
  });

  it('keeps usable_arenas sorted by free pools and allocates from the fullest arena', () => {
    runChecked('pymalloc', (ctx) => {
      const pm = new Pymalloc(new Libc(ctx));
      const blocks: number[] = [];
      for (let i = 0; i < 3 * BLOCKS_512_PER_ARENA; i++) blocks.push(pm.malloc(512));
      expect(pm.arenaCount()).toBe(3);
      // Empty 10 pools of the first arena, 3 of the second, 20 of the third.
      const emptyPools = (arena: number, pools: number) => {
        const from = arena * BLOCKS_512_PER_ARENA;
        for (let i = from; i < from + pools * BLOCKS_512_PER_POOL; i++) pm.free(blocks[i]!);
      };
      emptyPools(0, 10);
      emptyPools(1, 3);
      emptyPools(2, 20);
      pm.checkInvariants();
      const order: number[] = [];
      pm.forEachUsableArena((_address, nfree, total) => {
        expect(total).toBe(MAX_POOLS_IN_ARENA);
        order.push(nfree);
      });
      expect(order).toEqual([3, 10, 20]);
      const fullest = blocks[BLOCKS_512_PER_ARENA]!;
      const p = pm.malloc(200);
      expect(Math.abs(p - fullest)).toBeLessThan(ARENA_SIZE);
      pm.checkInvariants();
    });
  });

  it('grows the arena table with realloc past 16 arenas', () => {
    runChecked('pymalloc', (ctx) => {
      const pm = new Pymalloc(new Libc(ctx));
      const blocks: number[] = [];
      for (let i = 0; i < 17 * BLOCKS_512_PER_ARENA + 1; i++) blocks.push(pm.malloc(512));
      expect(pm.arenaCount()).toBe(18);
      pm.checkInvariants();
      for (const p of blocks) expect(pm.addressInRange(p)).toBe(true);
      for (const p of blocks) pm.free(p);
      expect(pm.arenaCount()).toBe(1);
      pm.checkInvariants();
    });
  });

  it('maxBytes refuses the arena past the limit; an emptied pool then serves another class', () => {
    runChecked('pymalloc', (ctx) => {
      const pm = new Pymalloc(new Libc(ctx), { maxBytes: ARENA_SIZE });
      const blocks: number[] = [];
      for (let p = pm.alloc(512); p !== 0; p = pm.alloc(512)) blocks.push(p);
      expect(blocks.length).toBe(BLOCKS_512_PER_ARENA);
      expect(pm.malloc(512)).toBe(0);
      expect(pm.malloc(1000)).toBe(0);
      expect(pm.alloc(16)).toBe(0);
      for (const p of blocks.slice(0, BLOCKS_512_PER_POOL)) pm.free(p);
      pm.checkInvariants();
      const small = pm.alloc(16);
      expect(poolOf(small)).toBe(poolOf(blocks[0]!));
      expect(pm.usableSize(small)).toBe(16);
      expect(small).toBe(poolOf(small) + POOL_OVERHEAD);
      pm.checkInvariants();
    });
  });
});

describe('misuse', () => {
  it('a double free aborts', () => {
    const { t, lastLog } = runAllocatorProgram('pymalloc', (ctx) => {
      const pm = new Pymalloc(new Libc(ctx));
      const p = pm.malloc(64);
      pm.malloc(64);
      pm.free(p);
      pm.free(p);
    });
    expect(WTERMSIG(t.waitStatus)).toBe(SIGABRT);
    expect(lastLog).toMatch(/pymalloc free\(\): double free of 0x[0-9a-f]+/);
  });

  it('a free of a pointer inside a block aborts', () => {
    const { t, lastLog } = runAllocatorProgram('pymalloc', (ctx) => {
      const pm = new Pymalloc(new Libc(ctx));
      const p = pm.malloc(64);
      pm.free(p + 16);
    });
    expect(WTERMSIG(t.waitStatus)).toBe(SIGABRT);
    expect(lastLog).toMatch(/pymalloc free\(\): invalid pointer 0x[0-9a-f]+/);
  });

  it('isAllocatedBlock says no to unmapped, interior, uncarved and freed addresses without faulting', () => {
    runChecked('pymalloc', (ctx) => {
      const pm = new Pymalloc(new Libc(ctx));
      const p = pm.malloc(100);
      const q = pm.malloc(100);
      expect(pm.isAllocatedBlock(p)).toBe(true);
      expect(pm.isAllocatedBlock(p + 16)).toBe(false);
      expect(pm.isAllocatedBlock(poolOf(p))).toBe(false);
      expect(pm.isAllocatedBlock(q + 112)).toBe(false);
      expect(pm.isAllocatedBlock(poolOf(p) + 2 * POOL_SIZE)).toBe(false);
      expect(pm.isAllocatedBlock(0)).toBe(false);
      expect(pm.isAllocatedBlock(2 ** 47 - 16)).toBe(false);
      pm.free(q);
      expect(pm.isAllocatedBlock(q)).toBe(false);
      pm.checkInvariants();
    });
  });
});

describe('memory goes back', () => {
  it('destroy unmaps every arena and the statics, and the process leaves no frame or charge behind', () => {
    const m = bootTestMachine({ memoryMiB: 32 });
    const free0 = settleFreePages(m);
    const committed0 = m.kernel.committedAs;
    const failures: unknown[] = [];
    const t = m.start(function* (ctx) {
      try {
        const libc = new Libc(ctx);
        const before = ctx.sys.vmlab_maps().length;
        const pm = new Pymalloc(libc);
        const blocks: number[] = [];
        for (let i = 0; i < 2 * BLOCKS_512_PER_ARENA; i++) blocks.push(pm.malloc(300));
        yield;
        expect(pm.arenaCount()).toBe(2);
        pm.destroy();
        expect(blocks.some((p) => isMapped(ctx, p))).toBe(false);
        expect(ctx.sys.vmlab_maps().length).toBeLessThanOrEqual(before + 1);
      } catch (err) {
        failures.push(err);
      }
      return 0;
    });
    m.runToEnd();
    if (failures.length > 0) throw failures[0];
    expect(t.waitStatus).toBe(0);
    expect(m.kernel.committedAs).toBe(committed0);
    expect(settleFreePages(m)).toBe(free0);
  });
});
