/**
 * A translation lookaside buffer: `entries` entries in `sets = entries / ways` sets of `ways`
 * ways. A VPN lives in set `vpn mod sets` (1 way: direct-mapped; ways = entries: fully
 * associative). Entries are tagged with an ASID unless they are global.
 *
 * Storage is column-wise typed arrays; entry i of set s is slot s * ways + i.
 *   vpn[slot] == INVALID   <=>  the slot is empty
 *   a valid slot in set s holds a vpn with vpn mod sets == s
 *   no two valid slots hold the same (vpn, asid) or the same vpn when one of them is global
 *
 * Entry permission bits (TLB_*) cache what the walk found: the kernel must invalidate an entry
 * whenever it changes the PTE behind it (as invlpg / sfence.vma require on real hardware).
 *
 * The TLB only stores and replaces. Hit and miss counting is the MMU's, because only the MMU
 * knows whether a lookup is a new reference or the retry of a faulted one.
 */
import { Prng } from '../lib/prng.ts';

export type TlbReplacement = 'lru' | 'fifo' | 'random';

export interface TlbConfig {
  entries: number;
  ways: number;
  replacement: TlbReplacement;
  /** Seed for 'random' replacement. */
  seed?: number;
  /** What error messages call it (default 'tlb'). */
  name?: string;
}

export const TLB_READABLE = 1;
export const TLB_WRITABLE = 2;
export const TLB_EXECUTABLE = 4;
export const TLB_USER = 8;
export const TLB_DIRTY = 16;
export const TLB_GLOBAL = 32;

const INVALID = -1;

export class Tlb {
  readonly entries: number;
  readonly ways: number;
  readonly sets: number;
  readonly replacement: TlbReplacement;
  readonly vpn: Float64Array;
  readonly asid: Int32Array;
  readonly pfn: Int32Array;
  readonly perm: Uint8Array;
  /** LRU: time of last use; FIFO: time of fill. */
  private readonly stamp: Float64Array;
  private readonly setMask: number;
  private readonly setsArePow2: boolean;
  private readonly isLru: boolean;
  private readonly prng: Prng;
  private tick = 0;

  // Counters (hits and misses are kept by the MMU on these fields).
  hits = 0;
  misses = 0;
  fills = 0;
  evictions = 0;
  /** Whole-TLB flushes (flushAll, flushNonGlobal). */
  flushes = 0;
  /** Single-page and single-ASID invalidations. */
  invalidations = 0;

  constructor(config: TlbConfig) {
    const { entries, ways } = config;
    const name = config.name ?? 'tlb';
    if (!Number.isInteger(entries) || entries < 1 || entries > 65536) {
      throw new RangeError(`${name}.entries: ${entries}; a TLB has 1 to 65536 entries`);
    }
    if (!Number.isInteger(ways) || ways < 1 || entries % ways !== 0) {
      throw new RangeError(`${name}.ways: ${ways} does not divide ${entries} entries`);
    }
    if (config.replacement !== 'lru' && config.replacement !== 'fifo' && config.replacement !== 'random') {
      throw new RangeError(`${name}.replacement: ${String(config.replacement)} is not lru, fifo or random`);
    }
    this.entries = entries;
    this.ways = ways;
    this.sets = entries / ways;
    this.replacement = config.replacement;
    this.isLru = config.replacement === 'lru';
    this.setsArePow2 = (this.sets & (this.sets - 1)) === 0;
    this.setMask = this.sets - 1;
    this.vpn = new Float64Array(entries).fill(INVALID);
    this.asid = new Int32Array(entries);
    this.pfn = new Int32Array(entries);
    this.perm = new Uint8Array(entries);
    this.stamp = new Float64Array(entries);
    this.prng = new Prng(config.seed ?? 0);
  }

  /** The set a VPN maps to: vpn mod sets. */
  setOf(vpn: number): number {
    return this.setsArePow2 ? vpn & this.setMask : vpn % this.sets;
  }

  /**
   * The slot holding `vpn` for `asid` (or a global entry for `vpn`), or -1. A hit refreshes the
   * entry's LRU age. Allocates nothing.
   */
  lookup(vpn: number, asid: number): number {
    const base = (this.setsArePow2 ? vpn & this.setMask : vpn % this.sets) * this.ways;
    const end = base + this.ways;
    for (let i = base; i < end; i++) {
      if (this.vpn[i] === vpn && (this.asid[i] === asid || (this.perm[i]! & TLB_GLOBAL) !== 0)) {
        if (this.isLru) this.stamp[i] = ++this.tick;
        return i;
      }
    }
    return -1;
  }

  /** Like lookup, without touching replacement state. */
  probe(vpn: number, asid: number): number {
    const base = this.setOf(vpn) * this.ways;
    for (let i = base; i < base + this.ways; i++) {
      if (this.vpn[i] === vpn && (this.asid[i] === asid || (this.perm[i]! & TLB_GLOBAL) !== 0)) return i;
    }
    return -1;
  }

  /**
   * Install a translation and return its slot. An existing entry for the same page is
   * overwritten in place; otherwise an empty way is used, or the policy's victim is evicted.
   * A global entry replaces every entry of its page, whatever their ASID.
   */
  insert(vpn: number, asid: number, pfn: number, perm: number): number {
    if ((perm & TLB_GLOBAL) !== 0) this.dropOtherAsids(vpn, asid);
    let slot = this.probe(vpn, asid);
    if (slot < 0) {
      slot = this.victim(this.setOf(vpn) * this.ways);
      if (this.vpn[slot] !== INVALID) this.evictions++;
      this.stamp[slot] = ++this.tick;
    } else if (this.isLru) {
      this.stamp[slot] = ++this.tick;
    }
    this.vpn[slot] = vpn;
    this.asid[slot] = asid;
    this.pfn[slot] = pfn;
    this.perm[slot] = perm;
    this.fills++;
    return slot;
  }

  /**
   * insert() for a page that lookup() has just missed for `asid`: no entry of it to overwrite,
   * so no probe (a global fill still goes through insert, which drops other ASIDs' copies).
   */
  fill(vpn: number, asid: number, pfn: number, perm: number): number {
    if ((perm & TLB_GLOBAL) !== 0) return this.insert(vpn, asid, pfn, perm);
    const slot = this.victim((this.setsArePow2 ? vpn & this.setMask : vpn % this.sets) * this.ways);
    if (this.vpn[slot] !== INVALID) this.evictions++;
    this.stamp[slot] = ++this.tick;
    this.vpn[slot] = vpn;
    this.asid[slot] = asid;
    this.pfn[slot] = pfn;
    this.perm[slot] = perm;
    this.fills++;
    return slot;
  }

  /** Drop the entry for one page (as invlpg / sfence.vma vaddr, asid). Returns true if one was dropped. */
  invalidatePage(vpn: number, asid: number): boolean {
    this.invalidations++;
    const slot = this.probe(vpn, asid);
    if (slot < 0) return false;
    this.vpn[slot] = INVALID;
    return true;
  }

  /** Drop every non-global entry tagged with `asid`. */
  invalidateAsid(asid: number): void {
    this.invalidations++;
    for (let i = 0; i < this.entries; i++) {
      if (this.asid[i] === asid && (this.perm[i]! & TLB_GLOBAL) === 0) this.vpn[i] = INVALID;
    }
  }

  /** Drop every entry but the global ones (what a CR3 write does without PCIDs). */
  flushNonGlobal(): void {
    this.flushes++;
    for (let i = 0; i < this.entries; i++) {
      if ((this.perm[i]! & TLB_GLOBAL) === 0) this.vpn[i] = INVALID;
    }
  }

  /** Drop every entry, global ones included. */
  flushAll(): void {
    this.flushes++;
    this.vpn.fill(INVALID);
  }

  /** Number of valid entries. */
  validCount(): number {
    let n = 0;
    for (let i = 0; i < this.entries; i++) if (this.vpn[i] !== INVALID) n++;
    return n;
  }

  /** The valid entries, in slot order (for dumps and tests). */
  dump(): Array<{ slot: number; set: number; vpn: number; asid: number; pfn: number; perm: number }> {
    const out = [];
    for (let i = 0; i < this.entries; i++) {
      if (this.vpn[i] === INVALID) continue;
      out.push({
        slot: i,
        set: Math.floor(i / this.ways),
        vpn: this.vpn[i]!,
        asid: this.asid[i]!,
        pfn: this.pfn[i]!,
        perm: this.perm[i]!,
      });
    }
    return out;
  }

  /** Panic-free consistency check: throws an Error naming the broken rule. */
  checkInvariants(): void {
    const seen = new Set<string>();
    const pages = new Map<number, number>();
    const globalPages = new Set<number>();
    for (let i = 0; i < this.entries; i++) {
      const v = this.vpn[i]!;
      if (v === INVALID) continue;
      const set = Math.floor(i / this.ways);
      if (this.setOf(v) !== set) throw new Error(`tlbCheck: slot ${i} holds vpn ${v} outside its set ${set}`);
      const key = `${v}/${this.asid[i]}`;
      if (seen.has(key)) throw new Error(`tlbCheck: vpn ${v} cached twice`);
      seen.add(key);
      pages.set(v, (pages.get(v) ?? 0) + 1);
      if ((this.perm[i]! & TLB_GLOBAL) !== 0) globalPages.add(v);
    }
    for (const v of globalPages) {
      if (pages.get(v)! > 1) throw new Error(`tlbCheck: vpn ${v} cached global and per-ASID`);
    }
  }

  /** Drop the entries of `vpn` tagged with an ASID other than `asid` (before a global fill). */
  private dropOtherAsids(vpn: number, asid: number): void {
    const base = this.setOf(vpn) * this.ways;
    for (let i = base; i < base + this.ways; i++) {
      if (this.vpn[i] === vpn && this.asid[i] !== asid) this.vpn[i] = INVALID;
    }
  }

  private victim(base: number): number {
    const end = base + this.ways;
    for (let i = base; i < end; i++) if (this.vpn[i] === INVALID) return i;
    if (this.replacement === 'random') return base + this.prng.below(this.ways);
    let best = base;
    for (let i = base + 1; i < end; i++) if (this.stamp[i]! < this.stamp[best]!) best = i;
    return best;
  }
}
