/**
 * Allocator throughput on a 1 GiB machine (262144 frames of 4 KiB, DMA + DMA32 zones, default
 * reservations and watermarks, no poisoning): buddy order-0 and mixed-order allocate+free pairs,
 * slab and kmalloc allocate+free pairs. `npx tsx test/bench/run.ts alloc`.
 */
import { PhysicalMemory } from '../../kernel/hw/physmem.ts';
import { Prng } from '../../kernel/lib/prng.ts';
import { BuddyAllocator, type PcpMode } from '../../kernel/mm/buddy.ts';
import { Kmalloc } from '../../kernel/mm/kmalloc.ts';
import { PageFrames } from '../../kernel/mm/page.ts';
import { SlabAllocator } from '../../kernel/mm/slab.ts';
import type { BenchFigure } from './run.ts';
import { opsPerSecond } from './timing.ts';

const FRAMES = 262144;
const PAGE_BYTES = 4096;
const BATCH = 100_000;
const LIVE = 4096;

function boot(pcp: PcpMode): BuddyAllocator {
  const memory = new PhysicalMemory({ frameCount: FRAMES, pageBytes: PAGE_BYTES });
  return new BuddyAllocator({ memory, pages: new PageFrames(FRAMES), pcp });
}

function buddyOrder0Pairs(pcp: PcpMode): number {
  const buddy = boot(pcp);
  return opsPerSecond(() => {
    for (let i = 0; i < BATCH; i++) buddy.free(buddy.alloc(0), 0);
  }, BATCH);
}

/** Steady state: LIVE blocks of orders 0..3 held; each step frees a random one and allocates a new one. */
function buddyMixedPairs(): number {
  const buddy = boot('on');
  const rng = new Prng(42);
  const pfns = new Int32Array(LIVE);
  const orders = new Uint8Array(LIVE);
  for (let i = 0; i < LIVE; i++) {
    orders[i] = rng.below(4);
    pfns[i] = buddy.alloc(orders[i]!);
  }
  const picks = Uint16Array.from({ length: 65536 }, () => rng.below(LIVE));
  const newOrders = Uint8Array.from({ length: 65536 }, () => rng.below(4));
  let k = 0;
  return opsPerSecond(() => {
    for (let i = 0; i < BATCH; i++) {
      const slot = picks[k & 0xffff]!;
      const order = newOrders[k & 0xffff]!;
      k++;
      buddy.free(pfns[slot]!, orders[slot]!);
      pfns[slot] = buddy.alloc(order);
      orders[slot] = order;
    }
  }, BATCH);
}

function slabPairs(): number {
  const slab = new SlabAllocator({ buddy: boot('on') });
  const cache = slab.createCache('vm_area_struct', 176);
  return opsPerSecond(() => {
    for (let i = 0; i < BATCH; i++) cache.free(cache.alloc());
  }, BATCH);
}

/** Steady state: LIVE objects held, each step frees a random one and allocates another. */
function slabChurnPairs(): number {
  const slab = new SlabAllocator({ buddy: boot('on') });
  const cache = slab.createCache('vm_area_struct', 176);
  const rng = new Prng(7);
  const live = Array.from({ length: LIVE }, () => cache.alloc());
  const picks = Uint16Array.from({ length: 65536 }, () => rng.below(LIVE));
  let k = 0;
  return opsPerSecond(() => {
    for (let i = 0; i < BATCH; i++) {
      const slot = picks[k++ & 0xffff]!;
      cache.free(live[slot]!);
      live[slot] = cache.alloc();
    }
  }, BATCH);
}

function kmallocPairs(): number {
  const km = new Kmalloc(new SlabAllocator({ buddy: boot('on') }));
  const sizes = [8, 24, 64, 96, 150, 256, 700, 4000];
  return opsPerSecond(() => {
    for (let i = 0; i < BATCH; i++) km.kfree(km.kmalloc(sizes[i & 7]!));
  }, BATCH);
}

function largeKmallocPairs(): number {
  const km = new Kmalloc(new SlabAllocator({ buddy: boot('on') }));
  return opsPerSecond(() => {
    for (let i = 0; i < BATCH / 10; i++) km.kfree(km.kmalloc(16384));
  }, BATCH / 10);
}

export function run(): BenchFigure[] {
  return [
    { name: 'buddy order-0 alloc+free (pcp lists on)', value: buddyOrder0Pairs('on'), unit: 'pairs/s' },
    {
      name: 'buddy order-0 alloc+free (pcp off: split+merge x10)',
      value: buddyOrder0Pairs('off'),
      unit: 'pairs/s',
    },
    { name: 'buddy mixed orders 0-3, 4096 live blocks', value: buddyMixedPairs(), unit: 'pairs/s' },
    { name: 'slab alloc+free (176-byte objects)', value: slabPairs(), unit: 'pairs/s' },
    { name: 'slab alloc+free, 4096 live objects, random', value: slabChurnPairs(), unit: 'pairs/s' },
    { name: 'kmalloc+kfree (8..4000 bytes)', value: kmallocPairs(), unit: 'pairs/s' },
    { name: 'kmalloc+kfree 16 KiB (buddy order 2)', value: largeKmallocPairs(), unit: 'pairs/s' },
  ];
}
