/** The allocators a process can choose, by name. */
import type { Libc } from '../libc/libc.ts';
import type { Allocator } from './allocator.ts';
import { FreeListAllocator, type FreeListKind, type Placement } from './freelist.ts';
import { PtmallocAllocator } from './ptmalloc.ts';
import { SegfitAllocator } from './segfit.ts';
import { SizeClassAllocator } from './sizeclass.ts';

const LISTS: FreeListKind[] = ['implicit', 'explicit'];
const PLACEMENTS: Placement[] = ['first-fit', 'next-fit', 'best-fit', 'worst-fit'];

/** Every allocator name: ptmalloc (the default), sizeclass, segfit, and the teaching allocators implicit-first-fit
 * … explicit-worst-fit, each also with -nocoalesce. */
export const ALLOCATOR_NAMES: readonly string[] = [
  'ptmalloc',
  'sizeclass',
  'segfit',
  ...LISTS.flatMap((l) => PLACEMENTS.flatMap((p) => [`${l}-${p}`, `${l}-${p}-nocoalesce`])),
];

/** A new allocator of kind `name` over `libc`. Throws RangeError for an unknown name. */
export function createAllocator(name: string, libc: Libc): Allocator {
  if (name === 'ptmalloc') return new PtmallocAllocator(libc);
  if (name === 'sizeclass') return new SizeClassAllocator(libc);
  if (name === 'segfit') return new SegfitAllocator(libc);
  const m = /^(implicit|explicit)-(first-fit|next-fit|best-fit|worst-fit)(-nocoalesce)?$/.exec(name);
  if (m === null) throw new RangeError(`unknown allocator '${name}' (one of ${ALLOCATOR_NAMES.join(', ')})`);
  return new FreeListAllocator(libc, {
    list: m[1] as FreeListKind,
    placement: m[2] as Placement,
    coalesce: m[3] === undefined ? 'on' : 'off',
  });
}
