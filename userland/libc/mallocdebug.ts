/**
 * The malloc family's stricter debug mode (Malloc's `check: 'full'`, or VMLAB_MALLOC_CHECK in
 * the environment, after glibc's MALLOC_CHECK_ and MALLOC_PERTURB_). Around every call:
 *
 * - before it, the freed blocks held in quarantine are checked for their poison (a byte that
 *   changed is a write after free) and the allocator's full checkHeap() runs (corruption the
 *   program made since the last call); after it, checkHeap() runs again (corruption the call
 *   made). Either ends the process with SIGABRT (MallocAbort), naming the call.
 * - a block malloc hands out is filled with FRESH_POISON (calloc's stays zeroed), so a read of
 *   memory never written shows 0xcd bytes, not what the last owner left.
 * - a freed block is filled with FREED_POISON and held in a quarantine (still allocated as the
 *   allocator sees it, so nobody else writes it) until QUARANTINE_BLOCKS or QUARANTINE_BYTES
 *   newer ones push it out; only then does the allocator free it. Blocks larger than
 *   QUARANTINE_MAX_BLOCK_BYTES are poisoned and freed at once (their writes after free go
 *   unseen, unless they hit the allocator's own words, which checkHeap reads).
 *
 * The quarantine is a ring in libc's static storage (emulated memory), mapped at the first free:
 *
 *   ring+0   count of blocks held        count <= QUARANTINE_BLOCKS
 *   ring+8   slot of the oldest one
 *   ring+16  bytes held                  held == sum of the held blocks' bytes <= QUARANTINE_BYTES
 *   ring+24  QUARANTINE_BLOCKS slots of (block address, usable bytes)
 *
 * Quarantined blocks count as in use in stats() and mallinfo2(), and leave the quarantine
 * (freed for real) before a leak report, or when malloc would otherwise fail.
 */
import { type Allocator, MallocAbort } from '../malloc/allocator.ts';
import { type Libc, MAP_FAILED } from './libc.ts';

/** What a block malloc, realloc or memalign hands out is filled with (calloc's is zeroed). */
export const FRESH_POISON = 0xcd;
/** What a freed block is filled with while it waits in quarantine. */
export const FREED_POISON = 0xdd;

const QUARANTINE_BLOCKS = 32;
const QUARANTINE_BYTES = 64 * 1024;
const QUARANTINE_MAX_BLOCK_BYTES = 16 * 1024;

const Q_COUNT = 0;
const Q_OLDEST = 8;
const Q_HELD = 16;
const Q_SLOTS = 24;
const SLOT_BYTES = 16;
const RING_BYTES = Q_SLOTS + QUARANTINE_BLOCKS * SLOT_BYTES;

export class MallocDebug {
  private readonly libc: Libc;
  private readonly allocator: Allocator;
  /** The quarantine ring's address (0 before the first free). */
  private ring = 0;
  private readonly chunk = new Uint8Array(4096);

  constructor(libc: Libc, allocator: Allocator) {
    this.libc = libc;
    this.allocator = allocator;
  }

  /** Before call `call`: the quarantine's poison, then the whole heap. MallocAbort on a fault. */
  enter(call: string): void {
    this.checkQuarantine(call);
    this.checkHeap(call, 'before');
  }

  /** After call `call`: the whole heap again. */
  leave(call: string): void {
    this.checkHeap(call, 'after');
  }

  /** Fill [ptr + from, ptr + to) of a block just handed out with FRESH_POISON. */
  poisonFresh(ptr: number, from: number, to: number): void {
    if (to > from) this.libc.ctx.cpu.fillBytes(ptr + from, to - from, FRESH_POISON);
  }

  /** Whether freed block `ptr` waits in the quarantine (a free or realloc of it is a use after free). */
  holds(ptr: number): boolean {
    if (this.ring === 0) return false;
    const count = this.word(Q_COUNT);
    const oldest = this.word(Q_OLDEST);
    for (let k = 0; k < count; k++) if (this.slotPtr((oldest + k) % QUARANTINE_BLOCKS) === ptr) return true;
    return false;
  }

  /**
   * Free block `ptr` of `bytes` usable bytes: poison it and quarantine it, freeing the oldest
   * blocks that no longer fit; a block too large for the quarantine is freed at once.
   */
  retire(ptr: number, bytes: number): void {
    this.libc.ctx.cpu.fillBytes(ptr, bytes, FREED_POISON);
    if (bytes > QUARANTINE_MAX_BLOCK_BYTES || !this.mapRing()) {
      this.allocator.free(ptr);
      return;
    }
    while (
      this.word(Q_COUNT) === QUARANTINE_BLOCKS ||
      (this.word(Q_COUNT) > 0 && this.word(Q_HELD) + bytes > QUARANTINE_BYTES)
    )
      this.releaseOldest();
    const count = this.word(Q_COUNT);
    const slot = Q_SLOTS + ((this.word(Q_OLDEST) + count) % QUARANTINE_BLOCKS) * SLOT_BYTES;
    this.setWord(slot, ptr);
    this.setWord(slot + 8, bytes);
    this.setWord(Q_COUNT, count + 1);
    this.setWord(Q_HELD, this.word(Q_HELD) + bytes);
  }

  /** Free every quarantined block for real (its poison checked first); how many there were. */
  drain(call: string): number {
    if (this.ring === 0) return 0;
    this.checkQuarantine(call);
    const n = this.word(Q_COUNT);
    while (this.word(Q_COUNT) > 0) this.releaseOldest();
    return n;
  }

  // ---- private ----

  /** The allocator's checkHeap, its message prefixed with the call it ran around. */
  private checkHeap(call: string, when: 'before' | 'after'): void {
    try {
      this.allocator.checkHeap();
    } catch (err) {
      if (!(err instanceof MallocAbort)) throw err;
      throw new MallocAbort(`${call}(): heap check ${when} the call: ${err.message}`);
    }
  }

  /** Every quarantined block still holds FREED_POISON; a changed byte is a write after free. */
  private checkQuarantine(call: string): void {
    if (this.ring === 0) return;
    const cpu = this.libc.ctx.cpu;
    const count = this.word(Q_COUNT);
    const oldest = this.word(Q_OLDEST);
    for (let k = 0; k < count; k++) {
      const slot = (oldest + k) % QUARANTINE_BLOCKS;
      const ptr = this.slotPtr(slot);
      const bytes = this.word(Q_SLOTS + slot * SLOT_BYTES + 8);
      for (let off = 0; off < bytes; off += this.chunk.length) {
        const len = Math.min(this.chunk.length, bytes - off);
        cpu.loadBytes(ptr + off, this.chunk, 0, len);
        const bad = this.chunk.subarray(0, len).findIndex((b) => b !== FREED_POISON);
        if (bad >= 0)
          throw new MallocAbort(
            `${call}(): write after free at 0x${(ptr + off + bad).toString(16)} (block 0x${ptr.toString(16)} of ${bytes} bytes, freed)`,
          );
      }
    }
  }

  /** Take the oldest block out of the quarantine and free it. */
  private releaseOldest(): void {
    const oldest = this.word(Q_OLDEST);
    const ptr = this.slotPtr(oldest);
    const bytes = this.word(Q_SLOTS + oldest * SLOT_BYTES + 8);
    this.setWord(Q_OLDEST, (oldest + 1) % QUARANTINE_BLOCKS);
    this.setWord(Q_COUNT, this.word(Q_COUNT) - 1);
    this.setWord(Q_HELD, this.word(Q_HELD) - bytes);
    this.allocator.free(ptr);
  }

  /** The ring, mapped at the first use (zeroed: empty); false when libc cannot map it. */
  private mapRing(): boolean {
    if (this.ring !== 0) return true;
    const at = this.libc.staticData(RING_BYTES);
    if (at === MAP_FAILED) return false;
    this.ring = at;
    return true;
  }

  private slotPtr(slot: number): number {
    return this.word(Q_SLOTS + slot * SLOT_BYTES);
  }

  private word(offset: number): number {
    return this.libc.ctx.cpu.load64(this.ring + offset);
  }

  private setWord(offset: number, value: number): void {
    this.libc.ctx.cpu.store64(this.ring + offset, value);
  }
}
