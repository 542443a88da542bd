/**
 * The MMU: translates virtual addresses through the TLB and, on a miss, by walking the page
 * tables that live in physical memory, as hardware does. It sets accessed and dirty bits in
 * the entries it uses, caches the result in the TLB, and reports a failure as a fault value.
 * It decides nothing: the kernel installs the trap handlers (page fault, TLB refill).
 *
 * Two entry points:
 * - `translate(va, access, mode)` returns the physical address, or -1 with `fault` filled in.
 *   No handler is called: it is what a probe instruction or a test uses.
 * - `load8..64`, `store8..64`, `loadBytes`, `storeBytes`, `fillBytes`: the CPU's accesses in the
 *   current `mode`. On a fault they call the page-fault handler and retry the access once the
 *   handler returns; the handler ends the access by throwing (a signal for the process).
 *
 * Counting: every access counts once in `accesses` and once as a TLB hit or miss, on its first
 * attempt only: a retry after a fault is not a second reference. Walks count every walk,
 * including retries and dirty-bit assists (a write hitting an entry cached clean).
 *
 * A second-level TLB (`stlb`, as x86's STLB since Nehalem) may sit behind the first-level ones:
 * unified (instruction and data), larger and set-associative, searched on a first-level miss.
 * A hit there refills the first-level TLB without a walk; a walk fills both. It is not
 * inclusive: a first-level entry may outlive its STLB copy. Every invalidation drops a page
 * from both levels. A software-managed TLB has no second level (the refill handler is the
 * second level).
 *
 * The access path on a TLB hit allocates nothing, builds no closure and uses no BigInt.
 */
import type { Clock } from './clock.ts';
import type { CostModel } from './cost.ts';
import type { FlagMask, PagingFormat } from './paging/format.ts';
import type { PhysicalMemory } from './physmem.ts';
import {
  TLB_DIRTY,
  TLB_EXECUTABLE,
  TLB_GLOBAL,
  TLB_READABLE,
  TLB_USER,
  TLB_WRITABLE,
  Tlb,
  type TlbConfig,
} from './tlb.ts';

export const ACCESS_READ = 0;
export const ACCESS_WRITE = 1;
export const ACCESS_EXECUTE = 2;
export type AccessKind = typeof ACCESS_READ | typeof ACCESS_WRITE | typeof ACCESS_EXECUTE;
export const ACCESS_NAMES = ['read', 'write', 'execute'] as const;

export const MODE_USER = 0;
export const MODE_KERNEL = 1;
export type CpuMode = typeof MODE_USER | typeof MODE_KERNEL;
export const MODE_NAMES = ['user', 'kernel'] as const;

/**
 * Why a translation failed.
 * - not-present: the entry at `level` has its present/valid bit clear.
 * - protection: the leaf was reached but the access is not allowed (`reason` says which).
 * - reserved: an entry at `level` has a reserved bit set (or maps a huge page, not modelled).
 * - bus: an entry points to a frame beyond installed memory (a machine check on real hardware).
 * - tlb-miss: software-managed TLB and no refill handler wrote an entry.
 * - address-size: the address is wider than the format's virtual addresses (x86's
 *   non-canonical #GP; a RISC-V page fault on bad upper bits).
 */
export type FaultKind = 'not-present' | 'protection' | 'reserved' | 'bus' | 'tlb-miss' | 'address-size';
export type ProtectionReason =
  | 'write-to-read-only'
  | 'user-to-kernel'
  | 'execute-no-execute'
  | 'read-not-readable';

/** A fault value. The MMU reuses one instance: copy it (`{ ...fault }`) to keep it. */
export interface MmuFault {
  kind: FaultKind;
  reason: ProtectionReason | undefined;
  /** Level of the entry that failed (0 = root); the leaf level for protection faults. */
  level: number;
  va: number;
  access: AccessKind;
  mode: CpuMode;
}

/**
 * The kernel's page-fault handler. Return normally to retry the access (the handler fixed the
 * page tables); throw to abandon it (the kernel kills or signals the process).
 */
export type PageFaultHandler = (fault: Readonly<MmuFault>) => void;

/**
 * The kernel's TLB-refill handler for a software-managed TLB. It writes the entry with
 * `mmu.tlbWrite` and returns true, or returns false after `mmu.raiseFault` to report a page fault.
 */
export type TlbRefillHandler = (mmu: Mmu, va: number, access: AccessKind, mode: CpuMode) => boolean;

export interface MmuOptions {
  tlb: TlbConfig;
  /** A second-level TLB (hardware-managed only), with the first level's replacement policy. */
  stlb?: { entries: number; ways: number };
  /** Separate instruction and data TLBs of the same geometry. */
  splitTlb?: boolean;
  /** 'hardware': the MMU walks on a miss; 'software': a miss traps to the refill handler. */
  tlbManagement?: 'hardware' | 'software';
  /** ASID tag width in bits; 0 means no ASIDs (a switch flushes non-global entries). */
  asidBits?: number;
  cost: CostModel;
  clock: Clock;
}

export class PageFaultError extends Error {
  constructor(readonly fault: MmuFault) {
    super(
      `unhandled page fault: ${fault.kind}${fault.reason ? ` (${fault.reason})` : ''} at level ${fault.level}, ` +
        `${ACCESS_NAMES[fault.access]} of 0x${fault.va.toString(16)} in ${MODE_NAMES[fault.mode]} mode`,
    );
    this.name = 'PageFaultError';
  }
}

const MAX_LEVELS = 5;

/**
 * A paging format as the walker reads it: every mask a walk tests as a plain number on the
 * entry's two halves (zero for a flag the format lacks), and the level geometry.
 */
interface WalkerFormat {
  readonly entryBytes: number;
  readonly last: number;
  readonly allLevels: boolean;
  /** For level L (0 = root): the virtual-address shift of its index (at least 4) and its mask. */
  readonly levelShift: Int32Array;
  readonly levelMask: Int32Array;
  /** The frame number field, as entryPfn reads it. */
  readonly pfnShift: number;
  readonly pfnLoMask: number;
  readonly pfnHiMask: number;
  readonly pfnHiScale: number;
  readonly presentLo: number;
  readonly presentHi: number;
  readonly reservedLo: number;
  readonly reservedHi: number;
  readonly hugeLo: number;
  readonly hugeHi: number;
  readonly readableLo: number;
  readonly readableHi: number;
  readonly writableLo: number;
  readonly writableHi: number;
  readonly userLo: number;
  readonly userHi: number;
  readonly executeLo: number;
  readonly executeHi: number;
  readonly noExecLo: number;
  readonly noExecHi: number;
  /** readable | writable | execute: what tells a leaf from a pointer in a leaf-only format. */
  readonly leafLo: number;
  readonly leafHi: number;
  readonly accessedLo: number;
  readonly accessedHi: number;
  readonly dirtyLo: number;
  readonly dirtyHi: number;
  readonly globalLo: number;
  readonly globalHi: number;
  readonly hasReadable: boolean;
  readonly hasWritable: boolean;
  readonly hasUser: boolean;
  readonly hasExecute: boolean;
  readonly hasDirty: boolean;
}

function compileWalker(fmt: PagingFormat): WalkerFormat {
  const m = fmt.mask;
  const or = (...masks: FlagMask[]): FlagMask => ({
    lo: masks.reduce((a, x) => a | x.lo, 0) >>> 0,
    hi: masks.reduce((a, x) => a | x.hi, 0) >>> 0,
  });
  const leaf = or(m.readable, m.writable, m.execute);
  return {
    entryBytes: fmt.entryBytes,
    last: fmt.levels - 1,
    allLevels: fmt.permissionScope === 'all-levels',
    levelShift: Int32Array.from(fmt.levelShift),
    levelMask: fmt.levelMask,
    pfnShift: fmt.pfnShift,
    pfnLoMask: fmt.pfnLoMask,
    pfnHiMask: fmt.pfnHiMask,
    pfnHiScale: fmt.pfnHiScale,
    presentLo: m.present.lo,
    presentHi: m.present.hi,
    reservedLo: fmt.reserved.lo,
    reservedHi: fmt.reserved.hi,
    hugeLo: fmt.hugePage.lo,
    hugeHi: fmt.hugePage.hi,
    readableLo: m.readable.lo,
    readableHi: m.readable.hi,
    writableLo: m.writable.lo,
    writableHi: m.writable.hi,
    userLo: m.user.lo,
    userHi: m.user.hi,
    executeLo: m.execute.lo,
    executeHi: m.execute.hi,
    noExecLo: m.noExecute.lo,
    noExecHi: m.noExecute.hi,
    leafLo: leaf.lo,
    leafHi: leaf.hi,
    accessedLo: m.accessed.lo,
    accessedHi: m.accessed.hi,
    dirtyLo: m.dirty.lo,
    dirtyHi: m.dirty.hi,
    globalLo: fmt.has.global ? m.global.lo : 0,
    globalHi: fmt.has.global ? m.global.hi : 0,
    hasReadable: fmt.has.readable,
    hasWritable: fmt.has.writable,
    hasUser: fmt.has.user,
    hasExecute: fmt.has.execute,
    hasDirty: fmt.has.dirty,
  };
}

export class Mmu {
  readonly mem: PhysicalMemory;
  readonly format: PagingFormat;
  readonly dtlb: Tlb;
  /** The instruction TLB: the same object as dtlb unless the TLB is split. */
  readonly itlb: Tlb;
  /** The second-level TLB, or null. */
  readonly stlb: Tlb | null;
  readonly clock: Clock;
  readonly cost: CostModel;
  readonly asidBits: number;
  readonly softwareManaged: boolean;

  /** Page-table root register (CR3 / satp.PPN / PDBR): the root table's frame. */
  root = 0;
  /** Current address-space identifier (0 when ASIDs are off). */
  asid = 0;
  /** Current privilege mode for load/store. */
  mode: CpuMode = MODE_USER;

  /** The last fault (reused). */
  readonly fault: MmuFault = { kind: 'not-present', reason: undefined, level: 0, va: 0, access: 0, mode: 0 };

  // Counters: always on.
  /** Accesses (first attempts): every one counts as exactly one first-level hit or miss. */
  get accesses(): number {
    const d = this.dtlb;
    if (this.itlb === d) return d.hits + d.misses;
    return d.hits + d.misses + this.itlb.hits + this.itlb.misses;
  }
  /** Second-level TLB lookups, retries included (each charged stlbLookupCycles). */
  stlbLookups = 0;
  walks = 0;
  walkMemoryRefs = 0;
  faults = 0;
  dirtyAssists = 0;
  refillTraps = 0;
  addressSpaceSwitches = 0;

  private readonly pageBytes: number;
  private readonly pageShift: number;
  private readonly offsetMask: number;
  private readonly pageInverse: number;
  private readonly hitCycles: number;
  private readonly stlbCycles: number;
  private readonly vaLimit: number;
  private readonly walker: WalkerFormat;
  private faultHandler: PageFaultHandler | undefined;
  /**
   * Called with the frame of every completed access when set (exact-LRU teaching policies).
   * Real hardware offers no such thing; the access path pays one null check when it is off.
   */
  referenceHook: ((pfn: number, access: AccessKind) => void) | null = null;
  /** Called with each entry a hardware walk reads (for tools that show walks); null when unused. */
  walkObserver: ((level: number, entryPa: number, lo: number, hi: number) => void) | null = null;
  private refillHandler: TlbRefillHandler | undefined;
  /** TLB permission bits an access needs, indexed by access kind, for the current mode. */
  private readonly need = new Uint8Array(3);
  /** Physical addresses and values of the entries of the current walk (preallocated). */
  private readonly walkEntryPa = new Float64Array(MAX_LEVELS);
  private readonly walkEntryLo = new Uint32Array(MAX_LEVELS);
  private readonly walkEntryHi = new Uint32Array(MAX_LEVELS);

  constructor(mem: PhysicalMemory, format: PagingFormat, options: MmuOptions) {
    if (mem.pageBytes !== format.pageBytes) {
      throw new RangeError(
        `mmu: memory pages of ${mem.pageBytes} bytes but ${format.name} uses ${format.pageBytes}`,
      );
    }
    this.mem = mem;
    this.format = format;
    this.clock = options.clock;
    this.cost = options.cost;
    this.dtlb = new Tlb(options.tlb);
    this.itlb = options.splitTlb ? new Tlb({ ...options.tlb, seed: (options.tlb.seed ?? 0) + 1 }) : this.dtlb;
    this.asidBits = options.asidBits ?? 0;
    if (!Number.isInteger(this.asidBits) || this.asidBits < 0 || this.asidBits > 16) {
      throw new RangeError(`mmu.asidBits: ${this.asidBits}; ASIDs are 0 to 16 bits wide`);
    }
    this.softwareManaged = options.tlbManagement === 'software';
    if (options.stlb !== undefined && options.stlb.entries > 0) {
      if (this.softwareManaged) {
        throw new RangeError('stlb: a software-managed TLB has no second level (its refill handler is one)');
      }
      this.stlb = new Tlb({
        entries: options.stlb.entries,
        ways: options.stlb.ways,
        replacement: options.tlb.replacement,
        seed: (options.tlb.seed ?? 0) + 2,
        name: 'stlb',
      });
    } else {
      this.stlb = null;
    }
    this.stlbCycles = this.cost.stlbLookupCycles;
    this.pageBytes = format.pageBytes;
    this.pageShift = format.pageShift;
    this.offsetMask = format.pageBytes - 1;
    this.pageInverse = 1 / format.pageBytes;
    this.hitCycles = this.cost.tlbLookupCycles + this.cost.memoryAccessCycles;
    this.vaLimit = Math.min(2 ** format.vaBits, Number.MAX_SAFE_INTEGER + 1);
    this.walker = compileWalker(format);
    this.setMode(MODE_USER);
  }

  // ---- registers and trap vectors (kernel side) ----

  /** Install the page-fault handler. */
  setFaultHandler(handler: PageFaultHandler | undefined): void {
    this.faultHandler = handler;
  }

  /** Install the TLB-refill handler (software-managed TLB). */
  setRefillHandler(handler: TlbRefillHandler | undefined): void {
    this.refillHandler = handler;
  }

  /** Switch privilege mode for subsequent load/store. */
  setMode(mode: CpuMode): void {
    this.mode = mode;
    const user = mode === MODE_USER ? TLB_USER : 0;
    this.need[ACCESS_READ] = TLB_READABLE | user;
    this.need[ACCESS_WRITE] = TLB_WRITABLE | TLB_DIRTY | user;
    this.need[ACCESS_EXECUTE] = TLB_EXECUTABLE | user;
  }

  /**
   * Load a new address space: root table frame and ASID. Without ASIDs every non-global TLB
   * entry is flushed, as a CR3 write does; with ASIDs the entries stay, tagged.
   */
  switchAddressSpace(rootPfn: number, asid: number): void {
    this.root = rootPfn;
    this.addressSpaceSwitches++;
    if (this.asidBits === 0) {
      this.asid = 0;
      this.dtlb.flushNonGlobal();
      if (this.itlb !== this.dtlb) this.itlb.flushNonGlobal();
      if (this.stlb !== null) this.stlb.flushNonGlobal();
      return;
    }
    if (!Number.isInteger(asid) || asid < 0 || asid >= 2 ** this.asidBits) {
      throw new RangeError(`mmu: ASID ${asid} does not fit ${this.asidBits} bits`);
    }
    this.asid = asid;
  }

  /** Drop the cached translation of one page (invlpg / sfence.vma va, asid). */
  invalidatePage(va: number, asid = this.asid): void {
    const vpn = this.vpnOf(va);
    this.dtlb.invalidatePage(vpn, asid);
    if (this.itlb !== this.dtlb) this.itlb.invalidatePage(vpn, asid);
    if (this.stlb !== null) this.stlb.invalidatePage(vpn, asid);
  }

  /** Drop every non-global translation of one ASID. */
  invalidateAsid(asid: number): void {
    this.dtlb.invalidateAsid(asid);
    if (this.itlb !== this.dtlb) this.itlb.invalidateAsid(asid);
    if (this.stlb !== null) this.stlb.invalidateAsid(asid);
  }

  /** Drop every translation, global ones included. */
  flushTlb(): void {
    this.dtlb.flushAll();
    if (this.itlb !== this.dtlb) this.itlb.flushAll();
    if (this.stlb !== null) this.stlb.flushAll();
  }

  /** Software-managed TLB: write an entry (tlbwr). `perm` is a set of TLB_* bits. */
  tlbWrite(va: number, pfn: number, perm: number, access: AccessKind = ACCESS_READ): void {
    const tlb = access === ACCESS_EXECUTE ? this.itlb : this.dtlb;
    tlb.insert(this.vpnOf(va), this.asid, pfn, perm);
  }

  /** Record a fault (for refill handlers that find no valid entry). */
  raiseFault(kind: FaultKind, level: number, reason?: ProtectionReason): void {
    this.fault.kind = kind;
    this.fault.level = level;
    this.fault.reason = reason;
  }

  // ---- translation ----

  /**
   * Translate `va` for `access` in `mode`. Returns the physical address, or -1 with `fault`
   * set. Counts like any access; calls no fault handler.
   */
  translate(va: number, access: AccessKind, mode: CpuMode): number {
    const saved = this.mode;
    if (mode !== saved) this.setMode(mode);
    try {
      const vpn = this.vpnOf(va);
      const pfn = this.lookupFrame(va, vpn, access, true);
      return pfn < 0 ? -1 : pfn * this.pageBytes + (va - vpn * this.pageBytes);
    } finally {
      if (mode !== saved) this.setMode(saved);
    }
  }

  // ---- the CPU's accesses ----

  load8(va: number): number {
    const vpn = va >>> 0 === va ? va >>> this.pageShift : this.vpnSlow(va);
    return this.mem.frameRead8(this.frameFor(va, vpn, ACCESS_READ), va & this.offsetMask);
  }

  store8(va: number, value: number): void {
    const vpn = va >>> 0 === va ? va >>> this.pageShift : this.vpnSlow(va);
    this.mem.frameWrite8(this.frameFor(va, vpn, ACCESS_WRITE), va & this.offsetMask, value);
  }

  /** Fetch one instruction byte (an execute access through the instruction TLB). */
  fetch8(va: number): number {
    const vpn = va >>> 0 === va ? va >>> this.pageShift : this.vpnSlow(va);
    return this.mem.frameRead8(this.frameFor(va, vpn, ACCESS_EXECUTE), va & this.offsetMask);
  }

  load16(va: number): number {
    const off = va & this.offsetMask;
    if (off + 2 > this.pageBytes) return this.load8(va) | (this.load8(va + 1) << 8);
    const vpn = va >>> 0 === va ? va >>> this.pageShift : this.vpnSlow(va);
    return this.mem.frameRead16(this.frameFor(va, vpn, ACCESS_READ), off);
  }

  store16(va: number, value: number): void {
    const off = va & this.offsetMask;
    if (off + 2 > this.pageBytes) {
      this.storeSplit(va, 2, value);
      return;
    }
    const vpn = va >>> 0 === va ? va >>> this.pageShift : this.vpnSlow(va);
    this.mem.frameWrite16(this.frameFor(va, vpn, ACCESS_WRITE), off, value);
  }

  load32(va: number): number {
    const off = va & this.offsetMask;
    if (off + 4 > this.pageBytes) return this.loadSplit(va, 4);
    const vpn = va >>> 0 === va ? va >>> this.pageShift : this.vpnSlow(va);
    return this.mem.frameRead32(this.frameFor(va, vpn, ACCESS_READ), off);
  }

  store32(va: number, value: number): void {
    const off = va & this.offsetMask;
    if (off + 4 > this.pageBytes) {
      this.storeSplit(va, 4, value);
      return;
    }
    const vpn = va >>> 0 === va ? va >>> this.pageShift : this.vpnSlow(va);
    this.mem.frameWrite32(this.frameFor(va, vpn, ACCESS_WRITE), off, value);
  }

  /** 64-bit load as a number (exact below 2^53). One access when it stays inside a page. */
  load64(va: number): number {
    const off = va & this.offsetMask;
    if (off + 8 > this.pageBytes) return this.loadSplit(va + 4, 4) * 4294967296 + this.loadSplit(va, 4);
    const vpn = va >>> 0 === va ? va >>> this.pageShift : this.vpnSlow(va);
    return this.mem.frameRead64(this.frameFor(va, vpn, ACCESS_READ), off);
  }

  /** 64-bit store of a safe integer (negative values in two's complement). */
  store64(va: number, value: number): void {
    const lo = value >>> 0;
    const hi = Math.floor(value / 4294967296) >>> 0;
    const off = va & this.offsetMask;
    if (off + 8 > this.pageBytes) {
      this.storeSplit(va, 4, lo);
      this.storeSplit(va + 4, 4, hi);
      return;
    }
    const vpn = va >>> 0 === va ? va >>> this.pageShift : this.vpnSlow(va);
    this.mem.frameWrite64(this.frameFor(va, vpn, ACCESS_WRITE), off, lo, hi);
  }

  /**
   * Copy `length` bytes from virtual `va` into `dst[dstOffset..]`. One translation per page
   * touched; cycles charged per 64-byte line.
   */
  loadBytes(va: number, dst: Uint8Array, dstOffset = 0, length = dst.length - dstOffset): void {
    let done = 0;
    while (done < length) {
      const addr = va + done;
      const off = addr % this.pageBytes;
      const n = Math.min(length - done, this.pageBytes - off);
      const pfn = this.frameFor(addr, this.vpnOf(addr), ACCESS_READ);
      const frame = this.mem.frameView(pfn);
      dst.set(frame.subarray(off, off + n), dstOffset + done);
      this.clock.now += Math.ceil(n / 64) * this.cost.lineCopyCycles;
      done += n;
    }
  }

  /** Copy `src` to virtual `va`, one translation per page touched. */
  storeBytes(va: number, src: Uint8Array): void {
    let done = 0;
    while (done < src.length) {
      const addr = va + done;
      const off = addr % this.pageBytes;
      const n = Math.min(src.length - done, this.pageBytes - off);
      const pfn = this.frameFor(addr, this.vpnOf(addr), ACCESS_WRITE);
      this.mem.frameViewForWrite(pfn).set(src.subarray(done, done + n), off);
      this.clock.now += Math.ceil(n / 64) * this.cost.lineCopyCycles;
      done += n;
    }
  }

  /** Fill `length` bytes at virtual `va` with `value`, one translation per page touched. */
  fillBytes(va: number, length: number, value: number): void {
    let done = 0;
    while (done < length) {
      const addr = va + done;
      const off = addr % this.pageBytes;
      const n = Math.min(length - done, this.pageBytes - off);
      const pfn = this.frameFor(addr, this.vpnOf(addr), ACCESS_WRITE);
      this.mem.frameViewForWrite(pfn).fill(value, off, off + n);
      this.clock.now += Math.ceil(n / 64) * this.cost.lineCopyCycles;
      done += n;
    }
  }

  /**
   * Virtual page number of `va`; NaN for a negative or non-numeric address. NaN matches no TLB
   * entry, so such an access misses and the walk (or the refill path) reports address-size.
   */
  vpnOf(va: number): number {
    return va >>> 0 === va ? va >>> this.pageShift : this.vpnSlow(va);
  }

  /** vpnOf for addresses that are not 32-bit unsigned integers. */
  private vpnSlow(va: number): number {
    // Scaling by 2^-pageShift is exact in floating point: no division needed.
    return va >= 0 ? Math.floor(va * this.pageInverse) : Number.NaN;
  }

  // ---- private: the access path ----

  /**
   * The frame behind `va` for `access` in the current mode, trapping to the kernel on a fault
   * and retrying until the access succeeds (or the handler throws). Fast path: a TLB hit.
   */
  private frameFor(va: number, vpn: number, access: AccessKind): number {
    this.clock.now += this.hitCycles;
    const tlb = access === ACCESS_EXECUTE ? this.itlb : this.dtlb;
    const slot = tlb.lookup(vpn, this.asid);
    if (slot >= 0) {
      const need = this.need[access]!;
      if ((tlb.perm[slot]! & need) === need) {
        tlb.hits++;
        const pfn = tlb.pfn[slot]!;
        if (this.referenceHook !== null) this.referenceHook(pfn, access);
        return pfn;
      }
      return this.frameSlow(va, vpn, access, true);
    }
    return this.frameSlow(va, vpn, access, false);
  }

  /**
   * The slow path of frameFor: a miss (`cached` false: the lookup just missed), a dirty-bit
   * assist or a fault, then retries.
   */
  private frameSlow(va: number, vpn: number, access: AccessKind, cached: boolean): number {
    let pfn = cached
      ? this.lookupFrame(va, vpn, access, false)
      : this.missFrame(va, vpn, access, access === ACCESS_EXECUTE ? this.itlb : this.dtlb, true);
    while (pfn < 0) {
      this.trapPageFault();
      pfn = this.lookupFrame(va, vpn, access, 'retry');
    }
    if (this.referenceHook !== null) this.referenceHook(pfn, access);
    return pfn;
  }

  /**
   * Resolve `vpn` to a frame: TLB, then walk (or refill trap). `counting` true counts the
   * TLB outcome (translate()); false means frameFor already counted the access but not its
   * outcome; 'retry' counts neither.
   */
  private lookupFrame(va: number, vpn: number, access: AccessKind, counting: boolean | 'retry'): number {
    const tlb = access === ACCESS_EXECUTE ? this.itlb : this.dtlb;
    if (counting === true) this.clock.now += this.hitCycles;
    const slot = tlb.lookup(vpn, this.asid);
    if (slot >= 0) {
      if (counting !== 'retry') tlb.hits++;
      return this.cachedFrame(va, vpn, access, tlb, tlb.perm[slot]!, tlb.pfn[slot]!);
    }
    return this.missFrame(va, vpn, access, tlb, counting !== 'retry');
  }

  /**
   * After a first-level miss on `tlb` (counted when `count`): the second level, then a walk
   * (or the refill trap). Nothing fills a TLB between that lookup and the fills here, so they
   * need not look for an entry to overwrite.
   */
  private missFrame(va: number, vpn: number, access: AccessKind, tlb: Tlb, count: boolean): number {
    if (count) tlb.misses++;
    if (this.softwareManaged) return this.refill(va, vpn, access, tlb);
    const stlb = this.stlb;
    if (stlb !== null) {
      this.stlbLookups++;
      this.clock.now += this.stlbCycles;
      const s2 = stlb.lookup(vpn, this.asid);
      if (s2 >= 0) {
        if (count) stlb.hits++;
        const perm = stlb.perm[s2]!;
        const pfn = stlb.pfn[s2]!;
        tlb.fill(vpn, this.asid, pfn, perm);
        return this.cachedFrame(va, vpn, access, tlb, perm, pfn);
      }
      if (count) stlb.misses++;
    }
    return this.walkAndFill(va, vpn, access, tlb, true);
  }

  /**
   * An access through a cached translation (`perm`, `pfn`): the frame when the permissions
   * allow it; a dirty-bit assist for a write through an entry cached clean; otherwise a
   * protection fault, without walking, that drops the page's entries.
   */
  private cachedFrame(
    va: number,
    vpn: number,
    access: AccessKind,
    tlb: Tlb,
    perm: number,
    pfn: number,
  ): number {
    const need = this.need[access]!;
    if ((perm & need) === need) return pfn;
    if (access === ACCESS_WRITE && (perm & (need & ~TLB_DIRTY)) === (need & ~TLB_DIRTY)) {
      return this.assistDirty(va, vpn, access, tlb);
    }
    this.dropCached(vpn, tlb);
    this.setProtectionFault(va, access, perm);
    return -1;
  }

  /** Drop the current ASID's entry of `vpn` from `tlb` and from the second level. */
  private dropCached(vpn: number, tlb: Tlb): void {
    tlb.invalidatePage(vpn, this.asid);
    if (this.stlb !== null) this.stlb.invalidatePage(vpn, this.asid);
  }

  /**
   * A write hitting an entry cached clean. Hardware-managed: walk again to set the dirty bit
   * in the entry; if that walk faults (the entry changed under the TLB), drop the stale entry,
   * as hardware drops the entry of a faulting page. Software-managed: no walker exists, so the
   * write traps to the refill handler, which must write the entry back with TLB_DIRTY.
   */
  private assistDirty(va: number, vpn: number, access: AccessKind, tlb: Tlb): number {
    this.dirtyAssists++;
    if (this.softwareManaged) return this.refill(va, vpn, access, tlb);
    const pfn = this.walkAndFill(va, vpn, access, tlb, false);
    if (pfn < 0) this.dropCached(vpn, tlb);
    return pfn;
  }

  /**
   * Software-managed miss: trap to the refill handler, then look again. An address wider than
   * the format's virtual addresses faults as address-size before any trap.
   */
  private refill(va: number, vpn: number, access: AccessKind, tlb: Tlb): number {
    if (!(va >= 0 && va < this.vaLimit)) {
      this.walkFault('address-size', 0, va, access, this.mode);
      this.faults++;
      return -1;
    }
    this.refillTraps++;
    this.clock.now += this.cost.tlbRefillTrapCycles;
    this.fault.va = va;
    this.fault.access = access;
    this.fault.mode = this.mode;
    // What a refusal reports unless the handler raises a fault of its own.
    this.raiseFault('tlb-miss', 0);
    if (this.refillHandler === undefined || !this.refillHandler(this, va, access, this.mode)) {
      this.faults++;
      return -1;
    }
    const slot = tlb.probe(vpn, this.asid);
    if (slot < 0) {
      this.raiseFault('tlb-miss', 0);
      this.faults++;
      return -1;
    }
    const need = this.need[access]!;
    const perm = tlb.perm[slot]!;
    if ((perm & need) !== need) {
      tlb.invalidatePage(vpn, this.asid);
      this.setProtectionFault(va, access, perm);
      return -1;
    }
    return tlb.pfn[slot]!;
  }

  private setProtectionFault(va: number, access: AccessKind, perm: number): void {
    const f = this.fault;
    f.kind = 'protection';
    f.level = this.format.levels - 1;
    f.va = va;
    f.access = access;
    f.mode = this.mode;
    if (this.mode === MODE_USER && (perm & TLB_USER) === 0) f.reason = 'user-to-kernel';
    else if (access === ACCESS_WRITE) f.reason = 'write-to-read-only';
    else if (access === ACCESS_EXECUTE) f.reason = 'execute-no-execute';
    else f.reason = 'read-not-readable';
    this.faults++;
  }

  /**
   * Walk the tables for `va`; on success fill the TLBs and return the frame, else -1. `missed`:
   * both levels have just missed the page (fill); otherwise an entry may be there (insert).
   */
  private walkAndFill(va: number, vpn: number, access: AccessKind, tlb: Tlb, missed: boolean): number {
    const perm = this.walk(va, access, this.mode);
    if (perm < 0) {
      this.faults++;
      return -1;
    }
    const pfn = this.walkLeafPfn;
    if (missed) {
      tlb.fill(vpn, this.asid, pfn, perm);
      if (this.stlb !== null) this.stlb.fill(vpn, this.asid, pfn, perm);
    } else {
      tlb.insert(vpn, this.asid, pfn, perm);
      if (this.stlb !== null) this.stlb.insert(vpn, this.asid, pfn, perm);
    }
    return pfn;
  }

  private walkLeafPfn = 0;

  /**
   * The hardware page walk. Reads each level's entry from physical memory, checks present,
   * reserved and permission bits, and on success sets accessed bits (and the leaf's dirty bit
   * on a write) in memory. Returns the TLB permission bits of the translation (and leaves the
   * frame in walkLeafPfn), or -1 with `fault` set.
   *
   * The format's masks are read from the walker's own fields (compiled in the constructor), so
   * a walk is plain arithmetic on numbers: no objects, no calls but the frame reads.
   */
  private walk(va: number, access: AccessKind, mode: CpuMode): number {
    const w = this.walker;
    const mem = this.mem;
    this.walks++;
    if (!(va >= 0 && va < this.vaLimit)) return this.walkFault('address-size', 0, va, access, mode);
    const entryBytes = w.entryBytes;
    const last = w.last;
    const allLevels = w.allLevels;
    let table = this.root;
    let writable = true;
    let user = true;
    let noExec = false;
    let lo = 0;
    let hi = 0;
    // The address as two 32-bit halves (exact: va is below 2^57), so indices are integer shifts.
    const vaLo = va >>> 0;
    const vaHi = (va - vaLo) / 4294967296;
    for (let level = 0; level <= last; level++) {
      if (table >= mem.frameCount) return this.walkFault('bus', level, va, access, mode);
      // The index is below 2^20 and an entry at most 8 bytes: byteOff fits 32 bits.
      const sh = w.levelShift[level]!;
      const index = sh >= 32 ? vaHi >>> (sh - 32) : (vaLo >>> sh) | (vaHi << (32 - sh));
      const byteOff = (index & w.levelMask[level]!) * entryBytes;
      const pa = table * this.pageBytes + byteOff;
      if (pa + entryBytes > mem.sizeBytes) return this.walkFault('bus', level, va, access, mode);
      this.walkMemoryRefs++;
      this.clock.now += this.cost.memoryAccessCycles;
      const epfn = table + (byteOff >>> this.pageShift);
      const eoff = byteOff & this.offsetMask;
      if (entryBytes === 8) {
        lo = mem.frameRead32(epfn, eoff);
        hi = mem.frameRead32(epfn, eoff + 4);
      } else {
        lo =
          entryBytes === 4
            ? mem.frameRead32(epfn, eoff)
            : entryBytes === 2
              ? mem.frameRead16(epfn, eoff)
              : mem.frameRead8(epfn, eoff);
        hi = 0;
      }
      this.walkEntryPa[level] = pa;
      this.walkEntryLo[level] = lo;
      this.walkEntryHi[level] = hi;
      if (this.walkObserver !== null) this.walkObserver(level, pa, lo, hi);
      if (((lo & w.presentLo) | (hi & w.presentHi)) === 0)
        return this.walkFault('not-present', level, va, access, mode);
      if (((lo & w.reservedLo) | (hi & w.reservedHi)) !== 0)
        return this.walkFault('reserved', level, va, access, mode);
      if (allLevels) {
        if (level < last && ((lo & w.hugeLo) | (hi & w.hugeHi)) !== 0)
          return this.walkFault('reserved', level, va, access, mode);
        if (w.hasWritable && ((lo & w.writableLo) | (hi & w.writableHi)) === 0) writable = false;
        if (w.hasUser && ((lo & w.userLo) | (hi & w.userHi)) === 0) user = false;
        if (((lo & w.noExecLo) | (hi & w.noExecHi)) !== 0) noExec = true;
      } else {
        const isLeaf = ((lo & w.leafLo) | (hi & w.leafHi)) !== 0;
        if (isLeaf !== (level === last)) return this.walkFault('reserved', level, va, access, mode);
      }
      if (level < last) table = this.entryFrame(lo, hi);
    }
    // Leaf permissions.
    let readable = true;
    let executable = true;
    if (allLevels) {
      executable = !noExec;
    } else {
      readable = !w.hasReadable || ((lo & w.readableLo) | (hi & w.readableHi)) !== 0;
      writable = !w.hasWritable || ((lo & w.writableLo) | (hi & w.writableHi)) !== 0;
      user = !w.hasUser || ((lo & w.userLo) | (hi & w.userHi)) !== 0;
      executable = !w.hasExecute || ((lo & w.executeLo) | (hi & w.executeHi)) !== 0;
      if (writable && !readable) return this.walkFault('reserved', last, va, access, mode);
    }
    let reason: ProtectionReason | undefined;
    if (mode === MODE_USER && !user) reason = 'user-to-kernel';
    else if (access === ACCESS_WRITE && !writable) reason = 'write-to-read-only';
    else if (access === ACCESS_EXECUTE && !executable) reason = 'execute-no-execute';
    else if (access === ACCESS_READ && !readable) reason = 'read-not-readable';
    if (reason !== undefined) {
      this.walkFault('protection', last, va, access, mode);
      this.fault.reason = reason;
      return -1;
    }
    const pfn = this.entryFrame(lo, hi);
    if (pfn >= mem.frameCount) return this.walkFault('bus', last, va, access, mode);
    this.setAccessedDirty(access);
    this.walkLeafPfn = pfn;
    let perm = 0;
    if (readable) perm |= TLB_READABLE;
    if (writable) perm |= TLB_WRITABLE;
    if (executable) perm |= TLB_EXECUTABLE;
    if (user) perm |= TLB_USER;
    if (access === ACCESS_WRITE || !w.hasDirty || ((lo & w.dirtyLo) | (hi & w.dirtyHi)) !== 0)
      perm |= TLB_DIRTY;
    if (((lo & w.globalLo) | (hi & w.globalHi)) !== 0) perm |= TLB_GLOBAL;
    return perm;
  }

  /** The frame number in an entry (entryPfn, on the walker's fields). */
  private entryFrame(lo: number, hi: number): number {
    const w = this.walker;
    const s = w.pfnShift;
    if (s >= 32) return ((hi >>> (s - 32)) & w.pfnHiMask) >>> 0;
    return (((lo >>> s) & w.pfnLoMask) >>> 0) + ((hi & w.pfnHiMask) >>> 0) * w.pfnHiScale;
  }

  /** Set accessed bits on the walked entries (every level or the leaf) and dirty on a write. */
  private setAccessedDirty(access: AccessKind): void {
    const w = this.walker;
    const last = w.last;
    const first = w.allLevels ? 0 : last;
    for (let level = first; level <= last; level++) {
      const lo = this.walkEntryLo[level]!;
      const hi = this.walkEntryHi[level]!;
      let newLo = lo | w.accessedLo;
      let newHi = hi | w.accessedHi;
      if (level === last && access === ACCESS_WRITE) {
        newLo |= w.dirtyLo;
        newHi |= w.dirtyHi;
      }
      newLo >>>= 0;
      newHi >>>= 0;
      if (newLo !== lo) this.writeEntryLo(this.walkEntryPa[level]!, newLo);
      if (newHi !== hi) this.mem.write32(this.walkEntryPa[level]! + 4, newHi);
    }
  }

  private writeEntryLo(pa: number, lo: number): void {
    switch (this.format.entryBytes) {
      case 1:
        this.mem.write8(pa, lo);
        return;
      case 2:
        this.mem.write16(pa, lo);
        return;
      default:
        this.mem.write32(pa, lo);
    }
  }

  private walkFault(kind: FaultKind, level: number, va: number, access: AccessKind, mode: CpuMode): -1 {
    const f = this.fault;
    f.kind = kind;
    f.reason = undefined;
    f.level = level;
    f.va = va;
    f.access = access;
    f.mode = mode;
    return -1;
  }

  /** Enter the kernel's page-fault handler with the recorded fault. */
  private trapPageFault(): void {
    this.clock.now += this.cost.faultEntryCycles;
    const handler = this.faultHandler;
    if (handler === undefined) throw new PageFaultError({ ...this.fault });
    handler(this.fault);
  }

  private loadSplit(va: number, size: number): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.load8(va + i);
    return v;
  }

  private storeSplit(va: number, size: number, value: number): void {
    let v = value >>> 0;
    for (let i = 0; i < size; i++) {
      this.store8(va + i, v & 0xff);
      v >>>= 8;
    }
  }
}
