import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PhysicalMemory } from '../kernel/hw/physmem.ts';
import { KernelPanic } from '../kernel/lib/panic.ts';
import { BuddyAllocator, type PcpMode, type PoisonMode } from '../kernel/mm/buddy.ts';
import {
  KMALLOC_SIZES,
  Kmalloc,
  kmallocCacheName,
  kmallocSizeClass,
  ZERO_SIZE_PTR,
} from '../kernel/mm/kmalloc.ts';
import { createKernelCaches, type KernelCaches, KernelObject, SlabRef } from '../kernel/mm/kobjects.ts';
import { PageFrames, PG_ALLOCATED, PG_HEAD, PG_LARGE_KMALLOC, PG_SLAB, PG_TAIL } from '../kernel/mm/page.ts';
import {
  calculateOrder,
  getOrder,
  type KmemCache,
  POISON_END,
  POISON_FREE,
  SlabAllocator,
  slabGeometry,
} from '../kernel/mm/slab.ts';

function machine(
  options: {
    frames?: number;
    pageBytes?: number;
    poison?: PoisonMode;
    pcp?: PcpMode;
    minFreeKbytes?: number;
  } = {},
) {
  const frames = options.frames ?? 512;
  const pageBytes = options.pageBytes ?? 4096;
  const memory = new PhysicalMemory({ frameCount: frames, pageBytes });
  const pages = new PageFrames(frames);
  const buddy = new BuddyAllocator({
    memory,
    pages,
    zones: 'normal',
    reserved: [],
    minFreeKbytes: options.minFreeKbytes ?? 0,
    pcp: options.pcp ?? 'off',
    poison: options.poison ?? 'off',
  });
  const slab = new SlabAllocator({ buddy });
  return { memory, pages, buddy, slab };
}

function panicMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof KernelPanic) return e.message;
    throw e;
  }
  throw new Error('expected a kernel panic');
}

const hex = (n: number): string => `0x${n.toString(16)}`;

describe('slab geometry (SLUB calculate_order, 4 KiB pages, slub_min_objects 8, slub_max_order 3)', () => {
  const geometry = (objectSize: number, align = 8, pageBytes = 4096) =>
    slabGeometry(objectSize, { align, freePointer: 'inside', pageBytes, minObjects: 8, maxOrder: 3 });

  it.each([
    [8, 8, 0, 512],
    [96, 96, 0, 42],
    [176, 176, 0, 23],
    [192, 192, 0, 21],
    [576, 576, 1, 14],
    [1024, 1024, 1, 8],
    [4096, 4096, 3, 8],
    [8192, 8192, 3, 4],
    [9792, 9792, 3, 3],
    [100000, 100000, 5, 1],
  ])('objects of %i bytes: size %i, order %i, %i per slab', (objectSize, size, order, objects) => {
    expect(geometry(objectSize)).toEqual({ size, offset: 0, order, objectsPerSlab: objects });
  });

  it('aligns the slot size and moves the free pointer after the object when asked', () => {
    expect(geometry(7744, 64)).toEqual({ size: 7744, offset: 0, order: 3, objectsPerSlab: 4 });
    expect(geometry(100, 64).size).toBe(128);
    expect(geometry(3).size).toBe(8);
    const after = slabGeometry(176, {
      align: 8,
      freePointer: 'after',
      pageBytes: 4096,
      minObjects: 8,
      maxOrder: 3,
    });
    expect(after).toEqual({ size: 184, offset: 176, order: 0, objectsPerSlab: 22 });
  });

  it('works with small and large pages', () => {
    expect(geometry(8192, 8, 256)).toEqual({ size: 8192, offset: 0, order: 5, objectsPerSlab: 1 });
    expect(geometry(64, 8, 256)).toEqual({ size: 64, offset: 0, order: 1, objectsPerSlab: 8 });
    expect(geometry(8, 8, 65536)).toEqual({ size: 8, offset: 0, order: 0, objectsPerSlab: 8192 });
    expect(getOrder(4097, 4096)).toBe(1);
    expect(calculateOrder(5 * 1024 * 1024, 4096, 8, 3)).toBe(-1);
  });
});

describe('objects and free lists in emulated memory', () => {
  it('threads the free list through the free objects, tagged pointers at offset 0', () => {
    const { memory, pages, slab } = machine();
    const cache = slab.createCache('things', 64);
    const a = cache.alloc();
    const slabPfn = a / 4096;
    expect(Number.isInteger(slabPfn)).toBe(true);
    expect(pages.flags[slabPfn]).toBe(PG_SLAB);
    expect(pages.owner[slabPfn]).toBe(cache.id);
    expect(pages.inuse[slabPfn]).toBe(1);
    expect(pages.priv[slabPfn]).toBe(a + 64); // the next free object
    // object 1 holds a pointer to object 2: low word the address, high word the tag 0x5a1
    expect(memory.read32(a + 64)).toBe(a + 128);
    expect(memory.read32(a + 68)).toBe((0x5a1 << 21) >>> 0);
    // the last object ends the list
    const last = a + 63 * 64;
    expect(memory.read32(last)).toBe(0xffffffff);
    expect(memory.read32(last + 4)).toBe(0xb43fffff);
    const b = cache.alloc();
    expect(b).toBe(a + 64);
    cache.free(a);
    expect(pages.priv[slabPfn]).toBe(a);
    expect(memory.read32(a)).toBe(a + 128); // a now points at the old head
    slab.checkInvariants();
  });

  it('spans several frames per slab with head and tail frames', () => {
    const { pages, slab, buddy } = machine();
    const cache = slab.createCache('big', 1024); // order 1, 8 per slab
    const objs = Array.from({ length: 8 }, () => cache.alloc());
    const head = objs[0]! / 4096;
    expect(pages.flags[head]).toBe(PG_SLAB | PG_HEAD);
    expect(pages.flags[head + 1]).toBe(PG_SLAB | PG_TAIL);
    expect(pages.compoundHead[head + 1]).toBe(head);
    expect(objs[7]).toBe(objs[0]! + 7 * 1024); // in the tail frame
    cache.free(objs[7]!);
    expect(cache.nrPartial).toBe(1);
    slab.checkInvariants();
    buddy.checkInvariants();
  });

  it('runs the constructor once per object when a slab is made, not on allocation', () => {
    const { slab, memory } = machine();
    const seen: number[] = [];
    const cache = slab.createCache('ctored', 200, {
      ctor: (addr) => {
        seen.push(addr);
        memory.write32(addr, 0x1234);
      },
    });
    expect(cache.offset).toBe(200); // the free pointer must not clobber constructed state
    const a = cache.alloc();
    expect(seen).toHaveLength(cache.objectsPerSlab);
    expect(memory.read32(a)).toBe(0x1234);
    cache.free(a);
    expect(memory.read32(a)).toBe(0x1234);
    cache.alloc();
    expect(seen).toHaveLength(cache.objectsPerSlab);
    slab.checkInvariants();
  });

  it('zeroes an object on request (kmem_cache_zalloc)', () => {
    const { slab, memory } = machine();
    const cache = slab.createCache('z', 96);
    const a = cache.alloc();
    memory.write32(a + 40, 0xffffffff);
    cache.free(a);
    const b = cache.alloc({ contents: 'zeroed' });
    expect(b).toBe(a);
    for (let i = 0; i < 96; i += 4) expect(memory.read32(b + i)).toBe(0);
  });
});

describe('slab lists', () => {
  it('moves slabs between partial, full and empty and shrinks empties back to the buddy allocator', () => {
    const { slab, buddy } = machine();
    const before = buddy.freePages();
    const cache = slab.createCache('k1024', 1024); // 8 objects in an order-1 slab
    const objs = Array.from({ length: 9 }, () => cache.alloc());
    expect([cache.nrFull, cache.nrPartial, cache.nrEmpty]).toEqual([1, 1, 0]);
    expect([cache.activeObjects, cache.totalObjects, cache.pages]).toEqual([9, 16, 4]);
    cache.free(objs[8]!);
    expect([cache.nrFull, cache.nrPartial, cache.nrEmpty]).toEqual([1, 0, 1]);
    cache.free(objs[0]!);
    expect([cache.nrFull, cache.nrPartial, cache.nrEmpty]).toEqual([0, 1, 1]);
    slab.checkInvariants();
    expect(cache.shrink()).toBe(2);
    expect(cache.nrEmpty).toBe(0);
    for (const o of objs.slice(1, 8)) cache.free(o);
    expect(cache.shrink()).toBe(2);
    expect(buddy.freePages()).toBe(before);
    slab.checkInvariants();
    buddy.checkInvariants();
  });

  it('keeps at most minPartial empty slabs and gives the rest back at once', () => {
    const { slab } = machine();
    const cache = slab.createCache('k4k', 4096); // 8 per order-3 slab
    expect(cache.minPartial).toBe(6); // ilog2(4096) / 2
    const objs = Array.from({ length: 8 * 9 }, () => cache.alloc());
    expect(cache.nrFull).toBe(9);
    for (const o of objs) cache.free(o);
    expect(cache.nrEmpty).toBe(6);
    expect(cache.nrSlabs).toBe(6);
    slab.checkInvariants();
  });

  it('reuses an empty slab before asking the buddy allocator', () => {
    const { slab, buddy } = machine();
    const cache = slab.createCache('x', 512);
    const a = cache.alloc();
    cache.free(a);
    const failuresBefore = buddy.pgalloc[0];
    expect(cache.alloc()).toBe(a);
    expect(buddy.pgalloc[0]).toBe(failuresBefore);
  });
});

describe('running out', () => {
  it('returns -1, never throws, and recovers when memory comes back', () => {
    const { slab, buddy } = machine({ frames: 16 });
    const cache = slab.createCache('hog', 2048); // 8 per order-2 slab
    const objs: number[] = [];
    for (;;) {
      const o = cache.alloc();
      if (o < 0) break;
      objs.push(o);
    }
    expect(objs).toHaveLength(32);
    expect(cache.alloc()).toBe(-1);
    expect(cache.allocFailures).toBe(2);
    expect(buddy.freePages()).toBe(0);
    cache.free(objs.pop()!);
    expect(cache.alloc()).toBeGreaterThanOrEqual(0);
    slab.checkInvariants();
  });
});

describe('panics', () => {
  it('double free', () => {
    const { slab } = machine();
    const cache = slab.createCache('vm_area_struct', 176);
    const a = cache.alloc();
    cache.alloc();
    cache.free(a);
    expect(panicMessage(() => cache.free(a))).toBe(
      `kmemCacheFree: double free of ${hex(a)} in vm_area_struct`,
    );
  });

  it('double free of the only object (the slab is empty and kept)', () => {
    const { slab } = machine();
    const cache = slab.createCache('one', 64);
    const a = cache.alloc();
    cache.free(a);
    expect(panicMessage(() => cache.free(a))).toBe(`kmemCacheFree: double free of ${hex(a)} in one`);
  });

  it('a pointer that is not the start of an object', () => {
    const { slab } = machine();
    const cache = slab.createCache('c', 176);
    const a = cache.alloc();
    expect(panicMessage(() => cache.free(a + 8))).toBe(
      `kmemCacheFree: ${hex(a + 8)} is not the start of an object of c`,
    );
    // past the last object, in the slab's leftover bytes
    expect(panicMessage(() => cache.free(a + 23 * 176))).toMatch(
      /^kmemCacheFree: 0x[0-9a-f]+ is not the start of an object/,
    );
  });

  it('freeing to the wrong cache', () => {
    const { slab } = machine();
    const a = slab.createCache('a', 64);
    const b = slab.createCache('b', 64);
    const obj = a.alloc();
    expect(panicMessage(() => b.free(obj))).toBe(`kmemCacheFree: object ${hex(obj)} belongs to a, not b`);
  });

  it('an address outside any slab', () => {
    const { slab, buddy } = machine();
    const cache = slab.createCache('c', 64);
    const page = buddy.alloc(0) * 4096;
    expect(panicMessage(() => cache.free(page))).toBe(
      `kmemCacheFree: ${hex(page)} is not in a slab (freeing to c)`,
    );
    expect(panicMessage(() => cache.free(-5))).toMatch(/^kmemCacheFree: .* is not a physical address/);
    expect(panicMessage(() => cache.free(512 * 4096))).toMatch(
      /^kmemCacheFree: .* is not a physical address/,
    );
  });

  it('a write over a free object corrupts the list and is caught on allocation', () => {
    const { slab, memory } = machine();
    const cache = slab.createCache('c', 64);
    const a = cache.alloc();
    cache.alloc();
    cache.free(a);
    memory.write32(a + 4, 0); // clobber the tag of a's free pointer
    expect(panicMessage(() => cache.alloc())).toBe(
      `kmemCacheAlloc: free list of c corrupt at object ${hex(a)} (written after free?)`,
    );
  });

  it('destroying a cache that still has objects; using a destroyed cache', () => {
    const { slab, buddy } = machine();
    const cache = slab.createCache('d', 64);
    const a = cache.alloc();
    expect(panicMessage(() => slab.destroyCache(cache))).toBe(
      'kmemCacheDestroy: cache d still has 1 objects',
    );
    cache.free(a);
    slab.destroyCache(cache);
    expect(slab.findCache('d')).toBeUndefined();
    expect(buddy.freePages()).toBe(512);
    expect(panicMessage(() => cache.alloc())).toBe('kmemCacheAlloc: cache d was destroyed');
    expect(panicMessage(() => cache.free(a))).toMatch(/^kmemCacheFree: 0x[0-9a-f]+ is not in a slab/);
    expect(panicMessage(() => slab.destroyCache(cache))).toBe('kmemCacheDestroy: d is not a live cache');
  });

  it('bad cache parameters', () => {
    const { slab } = machine();
    slab.createCache('taken', 8);
    expect(panicMessage(() => slab.createCache('has space', 8))).toBe(
      "kmemCacheCreate: bad cache name 'has space'",
    );
    expect(panicMessage(() => slab.createCache('taken', 8))).toBe(
      'kmemCacheCreate: a cache named taken exists',
    );
    expect(panicMessage(() => slab.createCache('zero', 0))).toBe(
      'kmemCacheCreate: bad object size 0 for zero',
    );
    expect(panicMessage(() => slab.createCache('odd', 8, { align: 24 }))).toBe(
      'kmemCacheCreate: bad alignment 24 for odd',
    );
    expect(panicMessage(() => slab.createCache('huge', 8 << 20))).toMatch(
      /^kmemCacheCreate: objects of \d+ bytes do not fit/,
    );
  });

  it('checkInvariants catches a broken count or list', () => {
    const { slab, pages } = machine();
    const cache = slab.createCache('c', 64);
    const a = cache.alloc();
    cache.alloc();
    pages.inuse[a / 4096] = 5;
    expect(panicMessage(() => slab.checkInvariants())).toMatch(/^kmemCacheCheck: /);
    pages.inuse[a / 4096] = 2;
    slab.checkInvariants();
    pages.priv[a / 4096] = a + 8; // free list head not at an object start
    expect(panicMessage(() => slab.checkInvariants())).toMatch(/^kmemCacheCheck: free pointer/);
  });
});

describe('poisoning', () => {
  it('fills free objects with 0x6b and a final 0xa5, from slab creation on', () => {
    const { slab, memory } = machine({ poison: 'poison' });
    const cache = slab.createCache('p', 64);
    expect(cache.offset).toBe(64);
    expect(cache.size).toBe(72);
    const a = cache.alloc();
    const b = cache.alloc();
    expect(memory.read8(b)).toBe(POISON_FREE); // never written: still the poison of a fresh slab
    memory.write32(a, 0x01020304);
    cache.free(a);
    for (let i = 0; i < 63; i++) expect(memory.read8(a + i)).toBe(POISON_FREE);
    expect(memory.read8(a + 63)).toBe(POISON_END);
    slab.checkInvariants();
  });

  it('strict mode catches a write after free on the next allocation', () => {
    const { slab, memory } = machine({ poison: 'strict' });
    const cache = slab.createCache('s', 64);
    const a = cache.alloc();
    cache.alloc();
    cache.free(a);
    memory.write8(a + 10, 0);
    expect(panicMessage(() => slab.checkInvariants())).toMatch(
      /^kmemCacheCheck: object .* written after free/,
    );
    expect(panicMessage(() => cache.alloc())).toBe(
      `kmemCacheAlloc: object ${hex(a)} of s was written after free (byte 10 is 0x0)`,
    );
  });

  it('never poisons caches with a constructor', () => {
    const { slab, memory } = machine({ poison: 'strict' });
    const cache = slab.createCache('c', 64, { ctor: (addr) => memory.write8(addr, 7) });
    expect(cache.poison).toBe('off');
    const a = cache.alloc();
    cache.free(a);
    expect(memory.read8(a)).toBe(7);
  });
});

describe('kmalloc', () => {
  it('creates Linux-named caches for the 13 size classes', () => {
    const { slab } = machine();
    const km = new Kmalloc(slab);
    expect(km.caches.map((c) => c.name)).toEqual([
      'kmalloc-8',
      'kmalloc-16',
      'kmalloc-32',
      'kmalloc-64',
      'kmalloc-96',
      'kmalloc-128',
      'kmalloc-192',
      'kmalloc-256',
      'kmalloc-512',
      'kmalloc-1k',
      'kmalloc-2k',
      'kmalloc-4k',
      'kmalloc-8k',
    ]);
    expect(kmallocCacheName(96)).toBe('kmalloc-96');
  });

  it.each([
    [1, 8],
    [8, 8],
    [9, 16],
    [33, 64],
    [64, 64],
    [65, 96],
    [96, 96],
    [97, 128],
    [129, 192],
    [193, 256],
    [257, 512],
    [1000, 1024],
    [4097, 8192],
    [8192, 8192],
  ])('kmalloc(%i) comes from the %i-byte class', (size, cls) => {
    expect(KMALLOC_SIZES[kmallocSizeClass(size)]).toBe(cls);
    const { slab } = machine();
    const km = new Kmalloc(slab);
    const addr = km.kmalloc(size);
    expect(slab.cacheOf(addr)?.name).toBe(kmallocCacheName(cls));
    expect(km.ksize(addr)).toBe(cls);
    km.kfree(addr);
    slab.checkInvariants();
  });

  it('gives larger requests buddy blocks of order ceil(log2(pages)), and kfree tells them apart', () => {
    const { slab, buddy, pages } = machine();
    const km = new Kmalloc(slab);
    const free0 = buddy.freePages();
    const addr = km.kmalloc(8193); // 3 pages -> order 2
    expect(addr % 4096).toBe(0);
    const pfn = addr / 4096;
    expect(pages.flags[pfn]).toBe(PG_ALLOCATED | PG_HEAD | PG_LARGE_KMALLOC);
    expect(pages.order[pfn]).toBe(2);
    expect(km.largePages).toBe(4);
    expect(km.ksize(addr)).toBe(16384);
    km.checkInvariants();
    expect(panicMessage(() => km.kfree(addr + 4096))).toBe(
      `kfree: ${hex(addr + 4096)} is not the start of a kmalloc block`,
    );
    km.kfree(addr);
    expect(km.largePages).toBe(0);
    expect(buddy.freePages()).toBe(free0);
    km.checkInvariants();
    buddy.checkInvariants();
  });

  it('handles 0, NULL, huge and hostile sizes', () => {
    const { slab, buddy } = machine();
    const km = new Kmalloc(slab);
    expect(km.kmalloc(0)).toBe(ZERO_SIZE_PTR);
    km.kfree(ZERO_SIZE_PTR);
    km.kfree(-1);
    expect(km.kmalloc(2 ** 40)).toBe(-1);
    expect(km.kmalloc(4096 * 1024 + 1)).toBe(-1); // beyond an order-10 block
    expect(panicMessage(() => km.kmalloc(-1))).toBe('kmalloc: size -1 is not a byte count');
    expect(panicMessage(() => km.kmalloc(1.5))).toBe('kmalloc: size 1.5 is not a byte count');
    expect(panicMessage(() => km.kmalloc(Number.NaN))).toBe('kmalloc: size NaN is not a byte count');
    const page = buddy.alloc(0) * 4096;
    expect(panicMessage(() => km.kfree(page))).toBe(
      `kfree: ${hex(page)} is not the start of a kmalloc block`,
    );
    expect(panicMessage(() => km.kfree(2 ** 50))).toMatch(/^kfree: \d+ is not a physical address/);
  });

  it('zeroes with kzalloc, for slab objects and large blocks', () => {
    const { slab, memory } = machine({ poison: 'poison' });
    const km = new Kmalloc(slab);
    const small = km.kzalloc(100);
    for (let i = 0; i < 100; i++) expect(memory.read8(small + i)).toBe(0);
    const large = km.kzalloc(20000);
    for (let i = 0; i < 20000; i += 1000) expect(memory.read8(large + i)).toBe(0);
  });

  it('frees objects of named caches too', () => {
    const { slab } = machine();
    const km = new Kmalloc(slab);
    const cache = slab.createCache('other', 40);
    const a = cache.alloc();
    km.kfree(a);
    expect(cache.activeObjects).toBe(0);
  });

  it('runs out like everything else: -1, no exception', () => {
    const { slab } = machine({ frames: 32 });
    const km = new Kmalloc(slab);
    let n = 0;
    while (km.kmalloc(3000) >= 0) n++;
    expect(n).toBe(32); // kmalloc-4k: four order-3 slabs of eight fill the 32 frames
    expect(km.kmalloc(20000)).toBe(-1);
  });
});

describe('reclaim', () => {
  it('shrinkSlabs runs the shrinkers of reclaimable caches and returns emptied slabs', () => {
    const { slab, buddy } = machine();
    const cache = slab.createCache('dentry', 192, { reclaim: 'reclaimable' });
    const other = slab.createCache('pinned', 192);
    const lru: number[] = Array.from({ length: 21 * 3 }, () => cache.alloc()); // three full slabs
    other.alloc();
    expect(slab.slabPages('reclaimable')).toBe(3);
    expect(slab.slabPages('unreclaimable')).toBe(1);
    slab.registerShrinker(cache, {
      count: () => lru.length,
      scan: (n) => {
        let freed = 0;
        while (freed < n && lru.length > 0) {
          cache.free(lru.pop()!);
          freed++;
        }
        return freed;
      },
    });
    const free0 = buddy.freePages();
    expect(slab.shrinkSlabs({ nrToScan: 21 })).toBe(1); // one slab's worth of objects scanned
    expect(slab.shrinkSlabs()).toBe(2);
    expect(buddy.freePages()).toBe(free0 + 3);
    expect(slab.slabPages('reclaimable')).toBe(0);
    expect(other.nrSlabs).toBe(1);
    expect(panicMessage(() => slab.registerShrinker(other, { count: () => 0, scan: () => 0 }))).toBe(
      'registerShrinker: cache pinned is not reclaimable',
    );
    slab.checkInvariants();
  });
});

class TestTask extends KernelObject {
  state = 'new';
  static create(caches: KernelCaches, pid: number): TestTask | null {
    const ref = SlabRef.alloc(caches.task);
    return ref === null ? null : new TestTask(ref, pid);
  }
  private constructor(
    ref: SlabRef,
    readonly pid: number,
  ) {
    super(ref);
  }
  run(): void {
    this.assertLive('TestTask.run');
    this.state = 'running';
  }
}

describe('kernel objects', () => {
  it('creates the named caches with Linux-like sizes', () => {
    const { slab } = machine();
    const caches = createKernelCaches(slab);
    expect([caches.task.name, caches.task.size, caches.task.objectsPerSlab, caches.task.order]).toEqual([
      'task_struct',
      7744,
      4,
      3,
    ]);
    expect([caches.vma.name, caches.vma.size, caches.vma.objectsPerSlab]).toEqual([
      'vm_area_struct',
      176,
      23,
    ]);
    expect(caches.radixTreeNode.reclaim).toBe('reclaimable');
    expect(caches.mm.name).toBe('mm_struct');
    expect(caches.file.name).toBe('filp');
    expect(caches.anonVma.name).toBe('anon_vma');
    expect(caches.swapMapChunk.objectSize).toBe(256);
    const small = createKernelCaches(machine().slab, { objectBytes: { task: 1024 } });
    expect(small.task.objectSize).toBe(1024);
  });

  it('ties a TS object to its slab allocation: counted while alive, panics after destroy', () => {
    const { slab } = machine();
    const caches = createKernelCaches(slab);
    const t = TestTask.create(caches, 1)!;
    expect(caches.task.activeObjects).toBe(1);
    expect(slab.cacheOf(t.kaddr)).toBe(caches.task);
    expect(t.kcache).toBe(caches.task);
    t.run();
    t.destroy();
    expect(t.isLive).toBe(false);
    expect(caches.task.activeObjects).toBe(0);
    expect(panicMessage(() => t.run())).toBe('TestTask.run: use after free of a task_struct object');
    expect(panicMessage(() => t.kaddr)).toBe('TestTask.kaddr: use after free of a task_struct object');
    expect(panicMessage(() => t.destroy())).toBe('TestTask.destroy: already destroyed (double free)');
  });

  it('returns null when kernel memory runs out', () => {
    const { slab } = machine({ frames: 16 });
    const caches = createKernelCaches(slab);
    const tasks: TestTask[] = [];
    for (;;) {
      const t = TestTask.create(caches, tasks.length);
      if (t === null) break;
      tasks.push(t);
    }
    expect(tasks).toHaveLength(8); // two order-3 slabs of four
    for (const t of tasks) t.destroy();
    expect(TestTask.create(caches, 99)).not.toBeNull();
  });

  it('SlabRef panics on use after release and on double release', () => {
    const { slab } = machine();
    const cache = slab.createCache('r', 32);
    const ref = SlabRef.alloc(cache)!;
    const addr = ref.addr;
    expect(cache.owns(addr)).toBe(true);
    ref.release();
    expect(panicMessage(() => ref.addr)).toBe('SlabRef.addr: use after free of a r object');
    expect(panicMessage(() => ref.release())).toBe('SlabRef.release: double free of a r object');
  });
});

// ---- property test against a model ----

interface SlabOp {
  kind: 'alloc' | 'free' | 'kmalloc' | 'shrink';
  cache: number;
  size: number;
  pick: number;
}

const slabOpArb: fc.Arbitrary<SlabOp> = fc.record({
  kind: fc.constantFrom<SlabOp['kind']>('alloc', 'alloc', 'kmalloc', 'free', 'free', 'shrink'),
  cache: fc.nat({ max: 3 }),
  size: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 20000 })),
  pick: fc.nat(),
});

describe('property: random slab and kmalloc sequences against a model', () => {
  it('keeps every invariant, never overlaps live objects, and returns all memory at the end', () => {
    fc.assert(
      fc.property(
        fc.record({
          pageBytes: fc.constantFrom(256, 4096),
          frames: fc.integer({ min: 8, max: 160 }),
          poison: fc.constantFrom<PoisonMode>('off', 'strict'),
          pcp: fc.constantFrom<PcpMode>('on', 'off'),
        }),
        fc.array(slabOpArb, { maxLength: 50 }),
        (config, ops) => {
          const { buddy, slab, memory } = machine(config);
          const boot = buddy.freeListSnapshot();
          const km = new Kmalloc(slab);
          const caches: KmemCache[] = [
            slab.createCache('tiny', 8),
            slab.createCache('vma', 176),
            slab.createCache('ctor', 300, { ctor: (a) => memory.write8(a, 1), reclaim: 'reclaimable' }),
            slab.createCache('wide', 1500, { align: 64 }),
          ];
          const owner = new Uint8Array(memory.sizeBytes);
          const live: Array<{ addr: number; bytes: number; cache: KmemCache | null }> = [];
          const claim = (addr: number, bytes: number, value: 0 | 1): void => {
            for (let i = addr; i < addr + bytes; i++) {
              if (value === 1) expect(owner[i]).toBe(0);
              owner[i] = value;
            }
          };
          for (const op of ops) {
            if (op.kind === 'shrink') {
              slab.shrinkSlabs();
            } else if (op.kind === 'free' && live.length > 0) {
              const obj = live.splice(op.pick % live.length, 1)[0]!;
              claim(obj.addr, obj.bytes, 0);
              if (obj.cache) obj.cache.free(obj.addr);
              else km.kfree(obj.addr);
            } else if (op.kind === 'alloc') {
              const cache = caches[op.cache]!;
              const addr = cache.alloc();
              if (addr >= 0) {
                claim(addr, cache.objectSize, 1);
                live.push({ addr, bytes: cache.objectSize, cache });
              }
            } else if (op.kind === 'kmalloc') {
              const addr = km.kmalloc(op.size);
              if (op.size === 0) expect(addr).toBe(ZERO_SIZE_PTR);
              else if (addr >= 0) {
                expect(km.ksize(addr)).toBeGreaterThanOrEqual(op.size);
                claim(addr, op.size, 1);
                live.push({ addr, bytes: op.size, cache: null });
              }
            }
            slab.checkInvariants();
            km.checkInvariants();
            buddy.checkInvariants();
          }
          for (const obj of live) {
            if (obj.cache) obj.cache.free(obj.addr);
            else km.kfree(obj.addr);
          }
          slab.shrinkSlabs();
          buddy.drainPcp();
          slab.checkInvariants();
          buddy.checkInvariants();
          expect(km.largePages).toBe(0);
          expect(buddy.freeListSnapshot()).toEqual(boot);
        },
      ),
      { numRuns: 80, seed: 7 },
    );
  });
});
