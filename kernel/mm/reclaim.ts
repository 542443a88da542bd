/**
 * Page reclaim: the mechanism that frees frames when memory is short or a process passes its
 * resident limit. A replacement policy (policy/*.ts) picks the victims; this module evicts
 * them:
 *
 *   clean page with a swap slot (it came from swap)   -> drop; the PTEs point at the slot again
 *   clean page never written (a demand-zero page)      -> drop; the PTEs become none (reads zero)
 *   dirty page                                         -> write to a new (or its) slot, then drop
 *
 * Reverse mapping (Linux's anon rmap): every anonymous frame records its virtual page number
 * (PageFrames.index) and its family (frameFamily): the address spaces that share that lineage
 * of anonymous memory through fork. Unmapping a frame walks the family's address spaces and
 * rewrites each PTE that maps it.
 *
 * File pages (PG_FILE) are tracked too: the page cache finds their mappings through the
 * file's mappers (i_mmap) and evicts them by dropping them, after writing a dirty one to its
 * file; a cached page that no process maps is as evictable as a mapped one.
 *
 *   tracked[pfn] == 1  <=>  the policy has pfn in its resident set
 *   every tracked frame is PG_FILE, or PG_ANON and not PG_SHMEM with mapcount >= 1
 */
import { panic } from '../lib/panic.ts';
import type { VmEvents } from '../observe/vmevents.ts';
import type { PageCache } from './filemap.ts';
import type { AddressSpace, MmServices } from './mm.ts';
import { NIL, PG_DIRTY, PG_FILE, PG_LAZYFREE, PG_LOCKED, PG_SWAPCACHE } from './page.ts';
import type { LoadInfo, ReplacementPolicy, VictimView } from './policy/types.ts';
import { NP_PROTNONE, NP_SWAP } from './pte.ts';
import type { SwapArea } from './swap.ts';
import type { AnonFamily, VmaObjectPool } from './vma.ts';

export type ReclaimScope = 'global' | 'local';

export type ReclaimWho = 'kswapd' | 'direct';

/** An observer of reclaim (the event log): each pass, and each page written to swap. */
export interface ReclaimTrace {
  pass(who: ReclaimWho, scope: 'global' | 'process' | 'group', scanned: number, freed: number): void;
  /** Set when swapOut should be called (a cached level flag). */
  readonly swapPages: boolean;
  swapOut(pfn: number, slot: number): void;
}

/** A set of processes sharing a resident limit (like a cgroup's memory.max). */
export interface MemoryGroup {
  name: string;
  limitPages: number;
  members: Set<AddressSpace>;
}

export class Reclaimer {
  readonly services: MmServices;
  readonly events: VmEvents;
  policy: ReplacementPolicy;
  swap: SwapArea | null;
  readonly tracked: Uint8Array;
  readonly frameFamily: Int32Array;
  /** Evictions so far (the workingset "clock" that shadow entries remember). */
  evictions = 0;
  /** Evictions that wrote the page out (dirty pages). */
  writebacks = 0;
  /** The page cache, for file pages (set once the kernel has made it). */
  files: PageCache | null = null;
  /** Who watches reclaim (the event log), or null. */
  trace: ReclaimTrace | null = null;
  /**
   * When the last page reclaim wrote out (to swap or its file) reaches the disk (cycles). The
   * frame is free at once, but whoever reclaimed waits until then (see the kernel), so memory is
   * never freed faster than the disk can write it.
   */
  writeDoneAt = 0;
  /** Families by id: the members (address spaces) and the kernel objects that stand for them. */
  private readonly families = new Map<number, { members: AddressSpace[]; kobj: number; chains: number[] }>();
  private readonly pools: { anonVma: VmaObjectPool; anonVmaChain: VmaObjectPool };
  /** The families each address space belongs to (its anon_vma_chain links). */
  private readonly memberships = new Map<AddressSpace, number[]>();
  private nextFamily = 1;
  /** The address space a local-scope eviction must pick from (null: any). */
  private scopeMm: AddressSpace | null = null;
  private scopeGroup: MemoryGroup | null = null;
  private readonly loadInfo: LoadInfo = { write: false, refaultDistance: undefined };
  readonly view: VictimView;
  /** The future of a trace replay, for OPT: next reference position of the page in a frame. */
  futureOf: ((pfn: number) => number) | null = null;
  private readonly random: (bound: number) => number;

  constructor(
    services: MmServices,
    policy: ReplacementPolicy,
    options: {
      swap: SwapArea | null;
      random: (bound: number) => number;
      /** anon_vma and anon_vma_chain slab caches: families are real kernel objects. */
      pools: { anonVma: VmaObjectPool; anonVmaChain: VmaObjectPool };
    },
  ) {
    this.pools = options.pools;
    this.services = services;
    this.events = services.events;
    this.policy = policy;
    this.swap = options.swap;
    this.random = options.random;
    const n = services.pages.count;
    this.tracked = new Uint8Array(n);
    this.frameFamily = new Int32Array(n).fill(NIL);
    this.view = {
      eligible: (pfn) => this.eligible(pfn),
      isReferenced: (pfn) => this.referenced(pfn, 'test'),
      testAndClearReferenced: (pfn) => this.referenced(pfn, 'clear'),
      isDirty: (pfn) => this.isDirty(pfn),
      now: () => services.mmu.clock.now,
      nextUse: (pfn) => (this.futureOf === null ? undefined : this.futureOf(pfn)),
      random: (bound) => this.random(bound),
    };
  }

  // ---- families (anon rmap) ----

  /**
   * A new anonymous lineage whose first member is `mm`: one anon_vma object and one
   * anon_vma_chain object (the membership). Undefined when kernel memory is short.
   */
  newFamily(mm: AddressSpace): AnonFamily | undefined {
    const kobj = this.pools.anonVma.alloc();
    if (kobj < 0) return undefined;
    const chain = this.pools.anonVmaChain.alloc();
    if (chain < 0) {
      this.pools.anonVma.free(kobj);
      return undefined;
    }
    const id = this.nextFamily++;
    this.families.set(id, { members: [mm], kobj, chains: [chain] });
    this.memberOf(mm).push(id);
    return { id };
  }

  /** Add `mm` to a family (fork): false when no anon_vma_chain object can be had. */
  joinFamily(family: AnonFamily, mm: AddressSpace): boolean {
    const f = this.families.get(family.id);
    if (f === undefined) panic(`joinFamily: family ${family.id} does not exist`);
    if (f.members.includes(mm)) return true;
    const chain = this.pools.anonVmaChain.alloc();
    if (chain < 0) return false;
    f.members.push(mm);
    f.chains.push(chain);
    this.memberOf(mm).push(family.id);
    return true;
  }

  private memberOf(mm: AddressSpace): number[] {
    let ids = this.memberships.get(mm);
    if (ids === undefined) {
      ids = [];
      this.memberships.set(mm, ids);
    }
    return ids;
  }

  /** Remove `mm` from every family it joined (its address space is being destroyed). */
  leaveFamilies(mm: AddressSpace): void {
    for (const id of this.memberships.get(mm) ?? []) {
      const f = this.families.get(id);
      if (f === undefined) panic(`leaveFamilies: family ${id} is gone while a member remains`);
      const i = f.members.indexOf(mm);
      f.members.splice(i, 1);
      this.pools.anonVmaChain.free(f.chains.splice(i, 1)[0]!);
      if (f.members.length === 0) {
        this.pools.anonVma.free(f.kobj);
        this.families.delete(id);
      }
    }
    this.memberships.delete(mm);
  }

  // ---- policy bookkeeping ----

  /** A page became resident in `pfn` for `family` (fault, COW copy, swap-in). */
  loaded(pfn: number, family: AnonFamily, write: boolean, refaultDistance?: number): void {
    this.frameFamily[pfn] = family.id;
    if (this.tracked[pfn] === 1) panic(`reclaimLoaded: frame ${pfn} is already resident`);
    this.tracked[pfn] = 1;
    this.loadInfo.write = write;
    this.loadInfo.refaultDistance = refaultDistance;
    this.policy.onLoad(pfn, this.loadInfo);
  }

  /** A page-cache page became resident (read from its file, or created by a write). */
  loadedFile(pfn: number): void {
    if (this.tracked[pfn] === 1) panic(`reclaimLoadedFile: frame ${pfn} is already resident`);
    this.frameFamily[pfn] = NIL;
    this.tracked[pfn] = 1;
    this.loadInfo.write = false;
    this.loadInfo.refaultDistance = undefined;
    this.policy.onLoad(pfn, this.loadInfo);
  }

  /** A frame is being freed (its last reference went): forget it, end its swap-cache entry. */
  released(pfn: number): void {
    const pages = this.services.pages;
    if (this.tracked[pfn] === 1) {
      this.tracked[pfn] = 0;
      this.policy.onRemove(pfn);
    }
    if (pages.has(pfn, PG_SWAPCACHE)) this.dropSwapCache(pfn);
    pages.clear(pfn, PG_DIRTY | PG_LAZYFREE);
    this.frameFamily[pfn] = NIL;
  }

  /** Every reference (exact LRU and teaching policies). */
  referencedBy(pfn: number, write: boolean): void {
    if (this.tracked[pfn] === 1) this.policy.onReference(pfn, write);
  }

  // ---- reclaim ----

  /**
   * Evict up to `count` pages chosen by the policy among eligible frames (`mm`/`group` limit
   * the choice for local and group scope). Returns the number of frames freed.
   */
  reclaim(count: number, who: ReclaimWho, scope: { mm?: AddressSpace; group?: MemoryGroup } = {}): number {
    this.scopeMm = scope.mm ?? null;
    this.scopeGroup = scope.group ?? null;
    let freed = 0;
    let tries = 0;
    try {
      for (; freed < count && tries < count * 4; tries++) {
        const victim = this.policy.selectVictim(this.view);
        if (who === 'kswapd') this.events.pgscan_kswapd++;
        else this.events.pgscan_direct++;
        if (victim < 0) break;
        if (!this.tracked[victim] || !this.eligible(victim))
          panic(`reclaim: policy ${this.policy.name} chose ineligible frame ${victim}`);
        const file = this.services.pages.has(victim, PG_FILE);
        if (file) this.events.pgscan_file++;
        if (this.evict(victim)) {
          freed++;
          if (file) this.events.pgsteal_file++;
          if (who === 'kswapd') this.events.pgsteal_kswapd++;
          else this.events.pgsteal_direct++;
        }
      }
    } finally {
      const scopeName = this.scopeMm !== null ? 'process' : this.scopeGroup !== null ? 'group' : 'global';
      this.scopeMm = null;
      this.scopeGroup = null;
      this.trace?.pass(who, scopeName, tries, freed);
    }
    return freed;
  }

  private eligible(pfn: number): boolean {
    if (this.tracked[pfn] !== 1) return false;
    if (this.services.pages.has(pfn, PG_LOCKED)) return false;
    if (!this.services.pages.has(pfn, PG_FILE) && !this.anonEvictable(pfn)) return false;
    if (this.scopeMm === null && this.scopeGroup === null) return true;
    if (this.services.pages.has(pfn, PG_FILE)) {
      const accept = (mm: AddressSpace): boolean =>
        (this.scopeMm === null || mm === this.scopeMm) &&
        (this.scopeGroup === null || this.scopeGroup.members.has(mm));
      return this.files?.mappedBy(pfn, accept) ?? false;
    }
    const members = this.families.get(this.frameFamily[pfn]!)?.members;
    if (members === undefined) return false;
    for (const mm of members) {
      if (this.scopeMm !== null && mm !== this.scopeMm) continue;
      if (this.scopeGroup !== null && !this.scopeGroup.members.has(mm)) continue;
      if (this.mappingOf(mm, pfn) >= 0) return true;
    }
    return false;
  }

  /**
   * Can anonymous frame `pfn` leave memory now? Yes when a swap slot can take it, when it has
   * one (the swap cache), or when it need not be written (clean, or MADV_FREE and still clean).
   * Without swap, Linux does not scan anonymous pages at all; here the dirty ones are skipped.
   */
  private anonEvictable(pfn: number): boolean {
    if (this.swap !== null && this.swap.freeSlots > 0) return true;
    const pages = this.services.pages;
    if (pages.has(pfn, PG_SWAPCACHE)) return true;
    if (pages.has(pfn, PG_LAZYFREE)) return !this.ptesDirty(pfn);
    return !this.isDirty(pfn);
  }

  /**
   * Physical address of the PTE in `mm` that maps anonymous frame `pfn` (present, or kept under
   * PROT_NONE), or -1; its virtual address is left in `mappedVa`. The page's index is its
   * address in pages unless mremap moved its VMA: then the VMA's anonDelta says where it went.
   */
  private mappingOf(mm: AddressSpace, pfn: number): number {
    const page = this.services.fmt.pageBytes;
    const index = this.services.pages.index[pfn]!;
    const home = mm.vmas.find(index * page);
    if (home !== undefined && home.anonDelta === 0) {
      const pa = this.mappingAt(mm, index * page, pfn);
      if (pa >= 0) return pa;
    }
    if (mm.movedVmas === 0) return -1;
    for (const v of mm.vmas.all()) {
      if (v.anonDelta === 0) continue;
      const va = (index - v.anonDelta) * page;
      if (!v.contains(va)) continue;
      const pa = this.mappingAt(mm, va, pfn);
      if (pa >= 0) return pa;
    }
    return -1;
  }

  /** The address of mappingOf's last PTE found. */
  private mappedVa = 0;

  /** The PTE at `va` in `mm` if it maps `pfn` (present or PROT_NONE-kept), else -1. */
  private mappingAt(mm: AddressSpace, va: number, pfn: number): number {
    const pa = mm.tables.entryAddress(va, 'lookup');
    if (pa < 0) return -1;
    const lo = mm.tables.read(pa);
    const hi = mm.tables.hi;
    const pte = this.services.pte;
    this.mappedVa = va;
    if (pte.isPresent(lo, hi)) return pte.pfnOf(lo, hi) === pfn ? pa : -1;
    const kept = !pte.isNone(lo, hi) && pte.nonPresentTag(lo, hi) === NP_PROTNONE;
    return kept && pte.nonPresentPayload(lo, hi) === pfn ? pa : -1;
  }

  /** Visit each (mm, entry address, virtual address) mapping `pfn` (present or PROT_NONE-kept). */
  private forEachMapping(pfn: number, visit: (mm: AddressSpace, pa: number, va: number) => void): void {
    if (this.services.pages.has(pfn, PG_FILE)) {
      this.files?.forEachMapping(pfn, visit);
      return;
    }
    const members = this.families.get(this.frameFamily[pfn]!)?.members;
    if (members === undefined) return;
    for (const mm of [...members]) {
      const pa = this.mappingOf(mm, pfn);
      if (pa >= 0) visit(mm, pa, this.mappedVa);
    }
  }

  private referenced(pfn: number, mode: 'test' | 'clear'): boolean {
    const pte = this.services.pte;
    const mmu = this.services.mmu;
    let any = false;
    this.forEachMapping(pfn, (mm, pa, va) => {
      const lo = mm.tables.read(pa);
      const hi = mm.tables.hi;
      if (!pte.isPresent(lo, hi) || !pte.isAccessed(lo, hi)) return;
      any = true;
      if (mode === 'clear') {
        const nlo = pte.withAccessed(lo, hi, false);
        mm.tables.write(pa, nlo, pte.hi);
        mmu.invalidatePage(va, mm.asid);
      }
    });
    return any;
  }

  private isDirty(pfn: number): boolean {
    return this.services.pages.has(pfn, PG_DIRTY) || this.ptesDirty(pfn);
  }

  /**
   * Evict frame `pfn`: unmap it from every PTE (each becomes a swap entry, or none for a clean
   * never-written page), write it out if dirty, and free it. False when it cannot be evicted
   * now (no swap slot for a dirty page).
   */
  private evict(pfn: number): boolean {
    const pages = this.services.pages;
    if (pages.has(pfn, PG_FILE)) return this.evictFile(pfn);
    const ptesDirty = this.ptesDirty(pfn);
    const lazy = pages.has(pfn, PG_LAZYFREE) && !ptesDirty;
    const dirty = !lazy && (ptesDirty || pages.has(pfn, PG_DIRTY));
    let slot = pages.has(pfn, PG_SWAPCACHE) && !lazy ? pages.priv[pfn]! : -1;
    if (lazy) {
      this.events.pglazyfreed++; // MADV_FREE and still clean: discard, the next touch reads zeros
    } else if (dirty && slot < 0) {
      if (this.swap === null) return false;
      slot = this.swap.allocSlot();
      if (slot < 0) return false;
      this.attachSwapCache(pfn, slot); // allocSlot's reference becomes the swap cache's
    }
    const write = dirty;
    // Unmap every PTE.
    const pte = this.services.pte;
    this.tracked[pfn] = 0;
    this.policy.onEvicted(pfn);
    this.forEachMapping(pfn, (mm, pa, va) => {
      if (slot >= 0) {
        this.swap!.dup(slot);
        const lo = pte.nonPresent(NP_SWAP, slot);
        mm.tables.write(pa, lo, pte.hi);
        mm.swapEntries++;
      } else {
        mm.tables.write(pa, 0, 0);
      }
      this.services.mmu.invalidatePage(va, mm.asid);
      pages.mapcount[pfn]!--;
      mm.countMapped(pfn, -1);
      pages.refcount[pfn]!--;
    });
    if (write) {
      if (this.trace?.swapPages) this.trace.swapOut(pfn, slot);
      this.writeDoneAt = Math.max(this.writeDoneAt, this.swap!.writeOut(slot, pfn));
      this.swap!.shadow[slot] = this.evictions;
      this.events.pswpout++;
      this.events.pgpgout += this.services.fmt.pageBytes / 1024;
      this.writebacks++;
      this.events.nr_vmscan_write++;
    } else if (slot >= 0) {
      this.swap!.shadow[slot] = this.evictions;
    }
    this.evictions++;
    if (pages.refcount[pfn] !== 0 || pages.mapcount[pfn] !== 0) {
      panic(
        `evict: frame ${pfn} still has refcount ${pages.refcount[pfn]} / mapcount ${pages.mapcount[pfn]} after unmapping`,
      );
    }
    pages.refcount[pfn] = 1;
    this.releaseAndFree(pfn);
    return true;
  }

  /** Evict a page-cache page: the page cache unmaps it, writes it if dirty, and frees it. */
  private evictFile(pfn: number): boolean {
    if (this.files === null) panic(`evict: file frame ${pfn} but no page cache`);
    const dirty = this.isDirty(pfn);
    this.tracked[pfn] = 0;
    this.policy.onEvicted(pfn);
    this.writeDoneAt = Math.max(this.writeDoneAt, this.files.evict(pfn));
    if (dirty) {
      this.writebacks++;
      this.events.nr_vmscan_write++;
    }
    this.evictions++;
    return true;
  }

  /** Dirty bit of any PTE mapping the frame. */
  private ptesDirty(pfn: number): boolean {
    const pte = this.services.pte;
    let dirty = false;
    this.forEachMapping(pfn, (mm, pa) => {
      const lo = mm.tables.read(pa);
      if (pte.isPresent(lo, mm.tables.hi) && pte.isDirty(lo, mm.tables.hi)) dirty = true;
    });
    return dirty;
  }

  private releaseAndFree(pfn: number): void {
    const pages = this.services.pages;
    if (pages.has(pfn, PG_SWAPCACHE)) this.dropSwapCache(pfn);
    pages.clear(pfn, PG_DIRTY | PG_LAZYFREE);
    this.frameFamily[pfn] = NIL;
    pages.refcount[pfn] = 0;
    this.services.buddy.free(pfn, 0);
    this.events.pgfree++;
  }

  /**
   * Associate a frame with its swap slot (the swap cache). The caller hands over one slot
   * reference, which the cache holds until the frame is freed.
   */
  attachSwapCache(pfn: number, slot: number): void {
    const pages = this.services.pages;
    const swap = this.swap!;
    pages.set(pfn, PG_SWAPCACHE);
    pages.priv[pfn] = slot;
    swap.cachePfn[slot] = pfn;
    swap.cachedPages++;
  }

  /**
   * A write to a swap-cache page that only one PTE maps: if no swap PTE names its slot any
   * more, the page leaves the swap cache (the slot is freed; the page is now the only copy,
   * so it is dirty) and may be written in place. False when others still reference the slot.
   */
  reuseSwapCachePage(pfn: number): boolean {
    const slot = this.services.pages.priv[pfn]!;
    if (this.swap!.count[slot] !== 1) return false;
    this.dropSwapCache(pfn);
    this.services.pages.set(pfn, PG_DIRTY);
    return true;
  }

  private dropSwapCache(pfn: number): void {
    const pages = this.services.pages;
    const swap = this.swap!;
    const slot = pages.priv[pfn]!;
    pages.clear(pfn, PG_SWAPCACHE);
    pages.priv[pfn] = 0;
    swap.cachePfn[slot] = -1;
    swap.cachedPages--;
    swap.put(slot);
  }

  /** Count the swap PTEs naming each slot across `spaces` (for invariant checks). */
  static countSwapPtes(spaces: Iterable<AddressSpace>, slots: number): Uint32Array {
    const counts = new Uint32Array(slots);
    for (const mm of spaces) {
      const pte = mm.services.pte;
      mm.tables.forEachEntry(0, 2 ** mm.services.fmt.vaBits, (_va, _pa, lo, hi) => {
        if (!pte.isPresent(lo, hi) && pte.nonPresentTag(lo, hi) === NP_SWAP)
          counts[pte.nonPresentPayload(lo, hi)]!++;
      });
    }
    return counts;
  }

  /**
   * Resident pages on the active and inactive lists, anonymous and file (Active(anon),
   * Inactive(anon), Active(file), Inactive(file)). Policies without two lists count every
   * page inactive.
   */
  lruCounts(): { activeAnon: number; inactiveAnon: number; activeFile: number; inactiveFile: number } {
    const out = { activeAnon: 0, inactiveAnon: 0, activeFile: 0, inactiveFile: 0 };
    const pages = this.services.pages;
    const isActive = this.policy.isActive;
    for (let p = 0; p < this.tracked.length; p++) {
      if (this.tracked[p] !== 1) continue;
      const active = isActive?.call(this.policy, p) ?? false;
      if (pages.has(p, PG_FILE)) {
        if (active) out.activeFile++;
        else out.inactiveFile++;
      } else if (active) out.activeAnon++;
      else out.inactiveAnon++;
    }
    return out;
  }

  /** Check the policy and the tracked set. */
  checkInvariants(): void {
    this.policy.checkInvariants();
    const order = this.policy.order();
    let n = 0;
    for (let p = 0; p < this.tracked.length; p++) if (this.tracked[p] === 1) n++;
    if (order.length !== n) panic(`reclaimCheck: policy holds ${order.length} frames, ${n} tracked`);
    for (const p of order)
      if (this.tracked[p] !== 1) panic(`reclaimCheck: policy holds untracked frame ${p}`);
  }
}
