/**
 * The kernel's `struct page`, one entry per physical frame, stored column-wise in typed
 * arrays indexed by frame number (no object per frame).
 *
 * Ownership: every frame has exactly one owner flag among PG_OWNER_MASK at any time
 * (buddy, per-CPU free list, slab, page table, anonymous, file, reserved, or PG_ALLOCATED for
 * kernel data a caller has not typed further), except the frames behind the head of a free
 * buddy block, which carry no flags and belong to that block (see buddy.ts).
 *
 * Lists: `next`/`prev` link a frame into one list at a time (a buddy free list, a slab list,
 * an LRU list). NIL (-1) ends a list.
 */

/** Flag bits (a subset of Linux's page flags plus explicit owner types). */
export const PG_BUDDY = 1 << 0; // free, in a buddy free list; `order` holds the block order (head only)
export const PG_SLAB = 1 << 1; // part of a slab
export const PG_PAGETABLE = 1 << 2; // holds a page-table level
export const PG_ANON = 1 << 3; // anonymous user page
export const PG_FILE = 1 << 4; // page-cache page of a file
export const PG_SWAPCACHE = 1 << 5; // in the swap cache (may combine with PG_ANON)
export const PG_RESERVED = 1 << 6; // kernel image, firmware: never allocated
export const PG_ALLOCATED = 1 << 7; // handed out by the buddy allocator, not yet typed (kernel data)
export const PG_LRU = 1 << 8; // on an LRU list
export const PG_ACTIVE = 1 << 9; // on the active list
export const PG_REFERENCED = 1 << 10; // software referenced bit
export const PG_DIRTY = 1 << 11; // contents differ from backing store
export const PG_LOCKED = 1 << 12; // under I/O
export const PG_WRITEBACK = 1 << 13; // being written back
export const PG_UPTODATE = 1 << 14; // contents valid
export const PG_HEAD = 1 << 15; // first frame of a multi-frame allocation (order in `order`)
export const PG_TAIL = 1 << 16; // non-first frame of a multi-frame allocation
export const PG_LARGE_KMALLOC = 1 << 17; // head of a kmalloc block too big for a size class
export const PG_PCP = 1 << 18; // free, parked on a zone's per-CPU page list (order 0; not in a buddy list)
export const PG_LAZYFREE = 1 << 24; // anonymous page given MADV_FREE: reclaim may drop it while clean
export const PG_SHMEM = 1 << 25; // page of a shared anonymous object (RssShmem; with PG_ANON)

/** The flags that name a frame's owner. */
export const PG_OWNER_MASK =
  PG_BUDDY | PG_PCP | PG_SLAB | PG_PAGETABLE | PG_ANON | PG_FILE | PG_RESERVED | PG_ALLOCATED;

export const NIL = -1;

const FLAG_NAMES: ReadonlyArray<[number, string]> = [
  [PG_BUDDY, 'buddy'],
  [PG_SLAB, 'slab'],
  [PG_PAGETABLE, 'pagetable'],
  [PG_ANON, 'anon'],
  [PG_FILE, 'file'],
  [PG_SWAPCACHE, 'swapcache'],
  [PG_RESERVED, 'reserved'],
  [PG_ALLOCATED, 'allocated'],
  [PG_LRU, 'lru'],
  [PG_ACTIVE, 'active'],
  [PG_REFERENCED, 'referenced'],
  [PG_DIRTY, 'dirty'],
  [PG_LOCKED, 'locked'],
  [PG_WRITEBACK, 'writeback'],
  [PG_UPTODATE, 'uptodate'],
  [PG_HEAD, 'head'],
  [PG_TAIL, 'tail'],
  [PG_LARGE_KMALLOC, 'large_kmalloc'],
  [PG_PCP, 'pcp'],
];

/** Names of the flags set in `flags`, in a fixed order (for /proc/kpageflags-like dumps). */
export function pageFlagNames(flags: number): string[] {
  const names: string[] = [];
  for (const [bit, name] of FLAG_NAMES) if (flags & bit) names.push(name);
  return names;
}

export class PageFrames {
  readonly count: number;
  /** PG_* bits. */
  readonly flags: Uint32Array;
  /** References held (allocations, page-table mappings, swap cache, I/O). */
  readonly refcount: Int32Array;
  /** Number of page-table entries that map this frame. */
  readonly mapcount: Int32Array;
  /** Owner id: a pid for user pages, a cache id for slabs, a file id for file pages; -1 none. */
  readonly owner: Int32Array;
  /** Block order of a buddy block or compound allocation (meaningful on the head frame). */
  readonly order: Uint8Array;
  /** List links (buddy free lists, slab lists, LRU lists); NIL ends a list. */
  readonly next: Int32Array;
  readonly prev: Int32Array;
  /** Page index within its file or anonymous mapping (`page->index`). */
  readonly index: Float64Array;
  /** Private word: swap entry of a swap-cache page, or a slab's free-list head. */
  readonly priv: Float64Array;
  /** Objects in use in a slab (head frame of the slab). */
  readonly inuse: Int32Array;
  /**
   * Head frame of the multi-frame block a PG_TAIL frame belongs to (`compound_head`):
   *   flags[pfn] & PG_TAIL  =>  compoundHead[pfn] = h  with  h < pfn < h + 2^order[h]
   * NIL on every frame that is not a tail.
   */
  readonly compoundHead: Int32Array;

  constructor(count: number) {
    this.count = count;
    this.flags = new Uint32Array(count);
    this.refcount = new Int32Array(count);
    this.mapcount = new Int32Array(count);
    this.owner = new Int32Array(count).fill(NIL);
    this.order = new Uint8Array(count);
    this.next = new Int32Array(count).fill(NIL);
    this.prev = new Int32Array(count).fill(NIL);
    this.index = new Float64Array(count);
    this.priv = new Float64Array(count);
    this.inuse = new Int32Array(count);
    this.compoundHead = new Int32Array(count).fill(NIL);
  }

  has(pfn: number, flag: number): boolean {
    return (this.flags[pfn]! & flag) !== 0;
  }

  set(pfn: number, flag: number): void {
    this.flags[pfn]! |= flag;
  }

  clear(pfn: number, flag: number): void {
    this.flags[pfn]! &= ~flag;
  }

  /** The owner flag of a frame (one of PG_OWNER_MASK's bits) or 0 when none is set. */
  ownerType(pfn: number): number {
    return this.flags[pfn]! & PG_OWNER_MASK;
  }

  /** Reset a frame's metadata to the state of a frame nobody owns. */
  reset(pfn: number): void {
    this.flags[pfn] = 0;
    this.refcount[pfn] = 0;
    this.mapcount[pfn] = 0;
    this.owner[pfn] = NIL;
    this.order[pfn] = 0;
    this.next[pfn] = NIL;
    this.prev[pfn] = NIL;
    this.index[pfn] = 0;
    this.priv[pfn] = 0;
    this.inuse[pfn] = 0;
    this.compoundHead[pfn] = NIL;
  }
}
