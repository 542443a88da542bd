/**
 * Kernel objects: the named slab caches the kernel's structures come from, and the handle that
 * ties a TypeScript object to its slab allocation.
 *
 * A kernel structure (a task, an mm, a VMA, an open file …) may keep its fields in a TS object
 * for convenience, but it exists only while a slab object of the right cache is allocated for
 * it: creating one allocates from the cache (and fails, returning null, when memory is short),
 * destroying one frees the slab object, and any use after that panics. So the kernel's own
 * memory shows up in Slab, SReclaimable and SUnreclaim, and can run out.
 *
 * Object sizes follow an x86-64 Linux 5.x/6.x kernel with a distribution config (task_struct
 * 7744 bytes in 4 per order-3 slab, vm_area_struct 176 in 23 per page …); they can be overridden
 * per cache. swap_map_chunk is vmlab's own: the usage bytes of one 256-slot swap cluster (Linux
 * keeps swap_map in vmalloc memory).
 */
import { panic } from '../lib/panic.ts';
import type { KmemCache, KmemCacheAllocOptions, SlabAllocator, SlabReclaim } from './slab.ts';

/** One row of the kernel cache table. */
export interface KernelCacheSpec {
  /** The cache's name in /proc/slabinfo. */
  readonly name: string;
  readonly objectBytes: number;
  readonly align: number;
  readonly reclaim: SlabReclaim;
}

/** The kernel's named caches, in the order they are created at boot. */
export const KERNEL_CACHES = {
  task: { name: 'task_struct', objectBytes: 7744, align: 64, reclaim: 'unreclaimable' },
  sighand: { name: 'sighand_cache', objectBytes: 2112, align: 64, reclaim: 'unreclaimable' },
  signal: { name: 'signal_cache', objectBytes: 1152, align: 64, reclaim: 'unreclaimable' },
  files: { name: 'files_cache', objectBytes: 704, align: 64, reclaim: 'unreclaimable' },
  mm: { name: 'mm_struct', objectBytes: 1088, align: 64, reclaim: 'unreclaimable' },
  vma: { name: 'vm_area_struct', objectBytes: 176, align: 8, reclaim: 'unreclaimable' },
  anonVma: { name: 'anon_vma', objectBytes: 104, align: 8, reclaim: 'unreclaimable' },
  anonVmaChain: { name: 'anon_vma_chain', objectBytes: 64, align: 8, reclaim: 'unreclaimable' },
  cred: { name: 'cred_jar', objectBytes: 192, align: 64, reclaim: 'unreclaimable' },
  file: { name: 'filp', objectBytes: 256, align: 64, reclaim: 'unreclaimable' },
  dentry: { name: 'dentry', objectBytes: 192, align: 64, reclaim: 'reclaimable' },
  inode: { name: 'inode_cache', objectBytes: 608, align: 8, reclaim: 'reclaimable' },
  radixTreeNode: { name: 'radix_tree_node', objectBytes: 576, align: 8, reclaim: 'reclaimable' },
  swapMapChunk: { name: 'swap_map_chunk', objectBytes: 256, align: 8, reclaim: 'unreclaimable' },
} as const satisfies Record<string, KernelCacheSpec>;

export type KernelCacheKey = keyof typeof KERNEL_CACHES;

/** The kernel's caches by key: caches.task, caches.vma, caches.radixTreeNode … */
export type KernelCaches = Readonly<Record<KernelCacheKey, KmemCache>>;

/**
 * Create the kernel's named caches in `slab`, in KERNEL_CACHES order (call once at boot, after
 * the kmalloc caches). `objectBytes` overrides sizes (say, smaller tasks for a tiny lab machine).
 */
export function createKernelCaches(
  slab: SlabAllocator,
  options: { readonly objectBytes?: Partial<Record<KernelCacheKey, number>> } = {},
): KernelCaches {
  const out: Partial<Record<KernelCacheKey, KmemCache>> = {};
  for (const key of Object.keys(KERNEL_CACHES) as KernelCacheKey[]) {
    const spec: KernelCacheSpec = KERNEL_CACHES[key];
    const size = options.objectBytes?.[key] ?? spec.objectBytes;
    out[key] = slab.createCache(spec.name, size, { align: spec.align, reclaim: spec.reclaim });
  }
  return out as KernelCaches;
}

/**
 * A live slab object: its cache and physical address, until release(). After release the
 * address is gone and reading it panics, as does a second release.
 */
export class SlabRef {
  readonly cache: KmemCache;
  private address: number;

  private constructor(cache: KmemCache, address: number) {
    this.cache = cache;
    this.address = address;
  }

  /** Allocate an object from `cache`; null when memory is short (never throws for it). */
  static alloc(cache: KmemCache, options?: KmemCacheAllocOptions): SlabRef | null {
    const address = cache.alloc(options);
    return address < 0 ? null : new SlabRef(cache, address);
  }

  /** The object's physical address. Panics after release (use after free). */
  get addr(): number {
    if (this.address < 0) panic(`SlabRef.addr: use after free of a ${this.cache.name} object`);
    return this.address;
  }

  get isLive(): boolean {
    return this.address >= 0;
  }

  /** Free the object. Panics on a second release. */
  release(): void {
    if (this.address < 0) panic(`SlabRef.release: double free of a ${this.cache.name} object`);
    const address = this.address;
    this.address = -1;
    this.cache.free(address);
  }
}

/**
 * Base class of kernel structures backed by a slab object. Subclasses get built by a static
 * factory that allocates first and returns null on shortage:
 *
 *   static create(caches: KernelCaches, pid: number): Task | null {
 *     const ref = SlabRef.alloc(caches.task);
 *     return ref === null ? null : new Task(ref, pid);
 *   }
 *
 * and call `this.assertLive('Task.setState')` at the top of methods that must not run on a
 * destroyed object (the kaddr getter checks by itself).
 */
export abstract class KernelObject {
  private readonly slabRef: SlabRef;

  protected constructor(ref: SlabRef) {
    if (!ref.isLive) panic(`${new.target.name}: constructed on a freed ${ref.cache.name} object`);
    this.slabRef = ref;
  }

  /** Physical address of the backing slab object. Panics after destroy(). */
  get kaddr(): number {
    this.assertLive(`${this.constructor.name}.kaddr`);
    return this.slabRef.addr;
  }

  /** The cache the object comes from. */
  get kcache(): KmemCache {
    return this.slabRef.cache;
  }

  get isLive(): boolean {
    return this.slabRef.isLive;
  }

  /** Free the backing slab object. Panics when already destroyed. */
  destroy(): void {
    if (!this.slabRef.isLive) panic(`${this.constructor.name}.destroy: already destroyed (double free)`);
    this.slabRef.release();
  }

  /** Panic with `fn` named when the object was destroyed (use after free). */
  protected assertLive(fn: string): void {
    if (!this.slabRef.isLive) panic(`${fn}: use after free of a ${this.slabRef.cache.name} object`);
  }
}
