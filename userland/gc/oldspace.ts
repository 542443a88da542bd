/**
 * The old generation of the generational collector: one contiguous range of reserved address
 * space filled from its bottom by a bump pointer, with a card table and a block offset table
 * beside it, all three in the process's emulated memory. Objects arrive by promotion out of the
 * nursery or, when too large for it, directly; a full collection slides the live ones down
 * (Lisp-2 mark-compact), so the objects always tile [base, top) with no gap.
 *
 *   objects  base                                 top                committed        reserved
 *            +-----+--------+---+-----------------+------------------+----------------+
 *            | obj | obj    |obj| ...             | zero or stale    | PROT_NONE      |
 *            +-----+--------+---+-----------------+------------------+----------------+
 *            |<-- card 0 -->|<-- card 1 -->|<-- card 2 -->| ...   512 bytes each, from base
 *
 *   cards    one byte per card:   CARD_DIRTY when a field in the card may hold a nursery
 *            reference, CARD_CLEAN otherwise
 *   offsets  one u32 per card (the block offset table): the object covering the card's first
 *            byte starts offsets[c] * 16 bytes before it
 *
 * Address space is reserved once (PROT_NONE, MAP_NORESERVE: no frame, no commit charge) and
 * committed in steps as top rises (mmap MAP_FIXED read-write, which the kernel charges), then
 * uncommitted above the new top after a compaction (MAP_FIXED PROT_NONE again, which gives the
 * frames and the charge back), as HotSpot commits and uncommits its reserved heap.
 *
 * Invariants (checkInvariants):
 *   objects tile [base, top):  next(obj) = obj + objectBytes(obj), next(last) = top
 *   for every card c with base + 512 c < top:
 *     start(c) = base + 512 c - 16 offsets[c] is an object and start(c) <= base + 512 c < next(start(c))
 *   cards[c] = CARD_CLEAN for every card at or above top
 *   top - base <= committed(objects) <= reserved(objects)
 */
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_NORESERVE,
  MAP_PRIVATE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  type UserCpu,
} from '../../kernel/proc/uapi.ts';
import type { Libc } from '../libc/libc.ts';
import { GcAbort } from './collector.ts';
import { GC_FREE, GC_MARK, H_AUX, H_DATA_BYTES, H_GC, OBJECT_ALIGN, objectBytes } from './object.ts';

export const CARD_SHIFT = 9;
/** Bytes of old space one card covers (HotSpot's 512). */
export const CARD_BYTES = 1 << CARD_SHIFT;
export const CARD_CLEAN = 0;
export const CARD_DIRTY = 1;
/** Bytes of one block offset table entry. */
export const OFFSET_ENTRY_BYTES = 4;
/** The largest old space: offsets from base stay below 2^32, so `>>> CARD_SHIFT` is exact. */
export const MAX_OLD_RESERVE_BYTES = 2 ** 31;

/** Copies `bytes` (a multiple of 16) from `src` to `dst`; correct when the ranges overlap with dst < src. */
export interface BlockCopy {
  copy(dst: number, src: number, bytes: number): void;
}

export interface OldSpaceOptions {
  /** Address space to reserve for objects (at most MAX_OLD_RESERVE_BYTES). */
  reserveBytes: number;
  /** Objects are committed in steps of this many bytes (a multiple of the page size). */
  commitStepBytes: number;
  /** May the heap take `extraBytes` more from the kernel? (the heap's maxHeapBytes). */
  mayGrow: (extraBytes: number) => boolean;
  copier: BlockCopy;
}

/**
 * A range of address space reserved without a charge and committed from its bottom up.
 *   0 <= committedBytes <= reservedBytes, both multiples of the page size
 */
class ReservedRange {
  readonly base: number;
  readonly reservedBytes: number;
  committedBytes = 0;
  private readonly libc: Libc;

  /** Reserves `bytes` (page-aligned); throws GcAbort when the kernel refuses. */
  constructor(libc: Libc, bytes: number, what: string) {
    this.libc = libc;
    this.reservedBytes = bytes;
    const base = libc.mmap(0, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base === -1)
      throw new GcAbort(`generational: cannot reserve ${bytes} bytes for the ${what} (errno ${libc.errno})`);
    this.base = base;
  }

  /** Commit the first `bytes` (page-aligned, <= reservedBytes); false, nothing changed, when refused. */
  commitTo(bytes: number): boolean {
    if (bytes <= this.committedBytes) return true;
    const at = this.base + this.committedBytes;
    const flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
    if (this.libc.mmap(at, bytes - this.committedBytes, PROT_READ | PROT_WRITE, flags, -1, 0) === -1)
      return false;
    this.committedBytes = bytes;
    return true;
  }

  /** Give back everything committed above the first `bytes` (page-aligned): frames and charge. */
  uncommitFrom(bytes: number): void {
    if (bytes >= this.committedBytes) return;
    const at = this.base + bytes;
    const flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE;
    // Refused (no memory for the new mapping's bookkeeping): the range stays committed.
    if (this.libc.mmap(at, this.committedBytes - bytes, PROT_NONE, flags, -1, 0) === -1) return;
    this.committedBytes = bytes;
  }

  release(): void {
    this.libc.munmap(this.base, this.reservedBytes);
    this.committedBytes = 0;
  }
}

/** The smallest reservation tried before giving up (when the address space is crowded). */
const MIN_OLD_RESERVE_BYTES = 1 << 20;

/**
 * Reserve address space for the objects: `bytes`, or half as much again and again down to
 * MIN_OLD_RESERVE_BYTES when the address space has no room (a 32-bit machine); GcAbort when
 * even that is refused.
 */
function reserveObjects(libc: Libc, bytes: number): ReservedRange {
  for (
    let want = bytes;
    ;
    want = Math.max(MIN_OLD_RESERVE_BYTES, libc.getpagesize() * Math.ceil(want / 2 / libc.getpagesize()))
  ) {
    try {
      return new ReservedRange(libc, want, 'old generation');
    } catch (err) {
      if (want <= MIN_OLD_RESERVE_BYTES) throw err;
    }
  }
}

export class OldSpace {
  readonly base: number;
  /** End of the reservation: every old object lies in [base, end). */
  readonly end: number;
  /** The bump pointer: objects tile [base, top). */
  top: number;
  /** Figures of the last compaction (planCompaction, slide). */
  liveObjects = 0;
  liveBytes = 0;
  deadObjects = 0;
  deadBytes = 0;
  movedObjects = 0;
  movedBytes = 0;
  private readonly cpu: UserCpu;
  private readonly pageBytes: number;
  private readonly objects: ReservedRange;
  private readonly cards: ReservedRange;
  private readonly offsets: ReservedRange;
  private readonly commitStepBytes: number;
  private readonly mayGrow: (extraBytes: number) => boolean;
  private readonly copier: BlockCopy;

  /** Reserves the three ranges; throws GcAbort when the kernel refuses. */
  constructor(libc: Libc, options: OldSpaceOptions) {
    this.cpu = libc.ctx.cpu;
    this.pageBytes = libc.getpagesize();
    this.commitStepBytes = this.pageUp(options.commitStepBytes);
    this.mayGrow = options.mayGrow;
    this.copier = options.copier;
    this.objects = reserveObjects(libc, this.pageUp(Math.min(options.reserveBytes, MAX_OLD_RESERVE_BYTES)));
    const reserve = this.objects.reservedBytes;
    const cardCount = Math.ceil(reserve / CARD_BYTES);
    try {
      this.cards = new ReservedRange(libc, this.pageUp(cardCount), 'card table');
      try {
        this.offsets = new ReservedRange(
          libc,
          this.pageUp(cardCount * OFFSET_ENTRY_BYTES),
          'block offset table',
        );
      } catch (err) {
        this.cards.release();
        throw err;
      }
    } catch (err) {
      this.objects.release();
      throw err;
    }
    this.base = this.objects.base;
    this.end = this.base + reserve;
    this.top = this.base;
  }

  /** Bytes the old generation holds from the kernel (objects, cards and offsets committed). */
  committedBytes(): number {
    return this.objects.committedBytes + this.cards.committedBytes + this.offsets.committedBytes;
  }

  /** Bytes of objects: top - base. */
  usedBytes(): number {
    return this.top - this.base;
  }

  /** Is `addr` inside an old object (below top)? */
  contains(addr: number): boolean {
    return addr >= this.base && addr < this.top;
  }

  /**
   * Room for `bytes` (a multiple of 16) at top, committing more when needed; the block's
   * address with its card starts recorded, or 0 when the reservation, the heap's limit or the
   * kernel refuses. The block's contents are whatever the range held (zero when fresh).
   */
  allocate(bytes: number): number {
    const obj = this.top;
    if (obj + bytes > this.base + this.objects.committedBytes && !this.commitFor(obj + bytes - this.base))
      return 0;
    this.top = obj + bytes;
    this.recordObject(obj, bytes);
    return obj;
  }

  // ---- cards ----

  /** Card index of old-space address `addr`. */
  cardOf(addr: number): number {
    return (addr - this.base) >>> CARD_SHIFT;
  }

  /** The write barrier's action: the card holding field address `fieldAddr` is dirty. */
  markCard(fieldAddr: number): void {
    this.cpu.store8(this.cards.base + ((fieldAddr - this.base) >>> CARD_SHIFT), CARD_DIRTY);
  }

  /** Card `card` holds no field pointing into the nursery (a minor collection found none). */
  cleanCard(card: number): void {
    this.cpu.store8(this.cards.base + card, CARD_CLEAN);
  }

  /** Is card `card` marked dirty? */
  isCardDirty(card: number): boolean {
    return this.cpu.load8(this.cards.base + card) !== CARD_CLEAN;
  }

  /** Cards that cover [base, limit). */
  cardsBelow(limit: number): number {
    return (limit - this.base + CARD_BYTES - 1) >>> CARD_SHIFT;
  }

  /** Copy `count` card bytes from card `first` into `into` (one bulk load; count <= into.length). */
  readCards(first: number, count: number, into: Uint8Array): void {
    this.cpu.loadBytes(this.cards.base + first, into, 0, count);
  }

  /** Every card below `limit` clean (a compaction re-marks those its update pass finds). */
  cleanCardsBelow(limit: number): void {
    const n = this.cardsBelow(limit);
    if (n > 0) this.cpu.fillBytes(this.cards.base, n, CARD_CLEAN);
  }

  // ---- the block offset table ----

  /** The object that covers the first byte of card `card` (which must lie below top). */
  objectCovering(card: number): number {
    return (
      this.base +
      card * CARD_BYTES -
      this.cpu.load32(this.offsets.base + card * OFFSET_ENTRY_BYTES) * OBJECT_ALIGN
    );
  }

  /** Is `addr` the start of an old object? (a walk from the object covering its card) */
  isObject(addr: number): boolean {
    if (!this.contains(addr) || addr % OBJECT_ALIGN !== 0) return false;
    let obj = this.objectCovering(this.cardOf(addr));
    while (obj < addr) obj += this.sizeAt(obj);
    return obj === addr;
  }

  /** Bytes of the object at `obj`, from its header. */
  sizeAt(obj: number): number {
    return objectBytes(this.cpu.load16(obj), this.cpu.load32(obj + H_DATA_BYTES));
  }

  // ---- compaction (Lisp-2), called by the collector after marking ----

  /**
   * Pass 1: every marked object's aux word gets its address after the slide; the dead are
   * counted (deadObjects, deadBytes). Returns the new top.
   */
  planCompaction(): number {
    const cpu = this.cpu;
    let free = this.base;
    this.liveObjects = this.liveBytes = this.deadObjects = this.deadBytes = 0;
    for (let obj = this.base; obj < this.top; ) {
      const bytes = this.checkedSize(obj, 'planCompaction');
      if ((cpu.load8(obj + H_GC) & GC_MARK) !== 0) {
        cpu.store64(obj + H_AUX, free);
        free += bytes;
        this.liveObjects++;
        this.liveBytes += bytes;
      } else {
        this.deadObjects++;
        this.deadBytes += bytes;
      }
      obj += bytes;
    }
    return free;
  }

  /** The address the marked old object `obj` slides to (planCompaction stored it). */
  forwardingOf(obj: number): number {
    return this.cpu.load64(obj + H_AUX);
  }

  /**
   * Pass 3: slide every marked object down to its planned address, clear its mark and aux
   * word, record its card starts again; top becomes the end of the last one. Counts
   * movedObjects and movedBytes (those whose address changed).
   */
  slide(): void {
    const cpu = this.cpu;
    let newTop = this.base;
    this.movedObjects = this.movedBytes = 0;
    for (let obj = this.base; obj < this.top; ) {
      const bytes = this.sizeAt(obj);
      if ((cpu.load8(obj + H_GC) & GC_MARK) !== 0) {
        const to = cpu.load64(obj + H_AUX);
        if (to !== obj) {
          this.copier.copy(to, obj, bytes);
          this.movedObjects++;
          this.movedBytes += bytes;
        }
        cpu.store8(to + H_GC, 0);
        cpu.store64(to + H_AUX, 0);
        this.recordObject(to, bytes);
        newTop = to + bytes;
      }
      obj += bytes;
    }
    this.top = newTop;
  }

  /** Give back the committed range above top, rounded up to a commit step (after a compaction). */
  shrink(): void {
    const keep = Math.min(this.roundUp(this.usedBytes(), this.commitStepBytes), this.objects.reservedBytes);
    this.objects.uncommitFrom(keep);
    const cards = Math.ceil(keep / CARD_BYTES);
    this.cards.uncommitFrom(this.pageUp(cards));
    this.offsets.uncommitFrom(this.pageUp(cards * OFFSET_ENTRY_BYTES));
  }

  /** Unmap all three ranges (process exit). */
  release(): void {
    this.objects.release();
    this.cards.release();
    this.offsets.release();
    this.top = this.base;
  }

  /**
   * GcAbort naming the first broken rule of the header's invariants: the objects tile
   * [base, top) with sane headers and no mark, the block offset table finds each card's first
   * object, no card at or above top is dirty, the commit covers top.
   */
  checkInvariants(): void {
    const cpu = this.cpu;
    if (this.top < this.base || this.top - this.base > this.objects.committedBytes)
      throw new GcAbort(`oldspace: top 0x${this.top.toString(16)} is outside the committed range`);
    if (this.objects.committedBytes > this.objects.reservedBytes)
      throw new GcAbort('oldspace: more committed than reserved');
    for (let obj = this.base; obj < this.top; ) {
      const bytes = this.checkedSize(obj, 'checkInvariants');
      const gc = cpu.load8(obj + H_GC);
      if (gc !== 0)
        throw new GcAbort(`oldspace: the object at 0x${obj.toString(16)} has gc bits 0x${gc.toString(16)}`);
      if (cpu.load64(obj + H_AUX) !== 0)
        throw new GcAbort(`oldspace: the object at 0x${obj.toString(16)} has a non-zero aux word`);
      this.checkOffsets(obj, bytes);
      obj += bytes;
    }
    const usedCards = this.cardsBelow(this.top);
    const committedCards = Math.min(this.cards.committedBytes, this.objects.committedBytes / CARD_BYTES);
    for (let c = usedCards; c < committedCards; c++)
      if (this.isCardDirty(c)) throw new GcAbort(`oldspace: card ${c} above top is dirty`);
  }

  // ---- private ----

  /** The block offset table entries of the cards whose first byte lies in [obj, obj + bytes). */
  private recordObject(obj: number, bytes: number): void {
    const cpu = this.cpu;
    const end = obj + bytes;
    let card = (obj - this.base + CARD_BYTES - 1) >>> CARD_SHIFT;
    for (let start = this.base + card * CARD_BYTES; start < end; start += CARD_BYTES, card++)
      cpu.store32(this.offsets.base + card * OFFSET_ENTRY_BYTES, (start - obj) / OBJECT_ALIGN);
  }

  private checkOffsets(obj: number, bytes: number): void {
    const end = obj + bytes;
    let card = (obj - this.base + CARD_BYTES - 1) >>> CARD_SHIFT;
    for (let start = this.base + card * CARD_BYTES; start < end; start += CARD_BYTES, card++)
      if (this.objectCovering(card) !== obj)
        throw new GcAbort(
          `oldspace: the block offset table sends card ${card} to 0x${this.objectCovering(card).toString(16)}, not 0x${obj.toString(16)}`,
        );
  }

  /** Size of the object at `obj`; GcAbort when its header is corrupt or it runs past top. */
  private checkedSize(obj: number, who: string): number {
    const bytes = this.sizeAt(obj);
    if ((this.cpu.load8(obj + H_GC) & GC_FREE) !== 0 || obj + bytes > this.top)
      throw new GcAbort(`${who}: corrupt old object header at 0x${obj.toString(16)}`);
    return bytes;
  }

  /**
   * Commit objects up to `usedBytes` from base (a commit step at a time when the limit allows,
   * else just the pages needed), with the cards and offsets that cover them; false, with
   * nothing committed, when refused.
   */
  private commitFor(usedBytes: number): boolean {
    if (usedBytes > this.objects.reservedBytes) return false;
    const stepped = Math.min(this.roundUp(usedBytes, this.commitStepBytes), this.objects.reservedBytes);
    if (this.tryCommit(stepped)) return true;
    return this.tryCommit(this.pageUp(usedBytes));
  }

  private tryCommit(objectBytes: number): boolean {
    const cards = Math.ceil(objectBytes / CARD_BYTES);
    const cardBytes = this.pageUp(cards);
    const offsetBytes = this.pageUp(cards * OFFSET_ENTRY_BYTES);
    const extra =
      objectBytes -
      this.objects.committedBytes +
      Math.max(0, cardBytes - this.cards.committedBytes) +
      Math.max(0, offsetBytes - this.offsets.committedBytes);
    if (!this.mayGrow(extra)) return false;
    const cardsBefore = this.cards.committedBytes;
    const offsetsBefore = this.offsets.committedBytes;
    if (
      this.cards.commitTo(cardBytes) &&
      this.offsets.commitTo(offsetBytes) &&
      this.objects.commitTo(objectBytes)
    )
      return true;
    this.offsets.uncommitFrom(offsetsBefore);
    this.cards.uncommitFrom(cardsBefore);
    return false;
  }

  private pageUp(bytes: number): number {
    return this.roundUp(bytes, this.pageBytes);
  }

  private roundUp(bytes: number, unit: number): number {
    return Math.ceil(bytes / unit) * unit;
  }
}
