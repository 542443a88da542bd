/**
 * Aging (Tanenbaum's software approximation of LRU): a k-bit counter per page (agingBits,
 * default 8). Every tick each counter shifts right and the page's reference bit (tested and
 * cleared) enters at the top. The victim has the smallest counter (ties: the oldest loaded).
 * A new page starts with only the top bit set, as if referenced in the tick it was loaded in;
 * with 0 it would be the first victim before any tick could count its use.
 * O(resident) per tick and per victim.
 *
 *   counter[pfn] < 2^bits for every resident pfn
 */
import { panic } from '../../lib/panic.ts';
import { FifoPolicy } from './fifo.ts';
import type { LoadInfo, PolicyOptions, VictimView } from './types.ts';

export class AgingPolicy extends FifoPolicy {
  override readonly name = 'aging';
  override readonly tickCycles: number;
  readonly bits: number;
  readonly counter: Uint32Array;
  private readonly top: number;

  constructor(options: PolicyOptions) {
    super(options);
    this.bits = options.agingBits ?? 8;
    if (!Number.isInteger(this.bits) || this.bits < 1 || this.bits > 32)
      throw new RangeError(`aging: ${this.bits} counter bits; 1 to 32`);
    this.tickCycles = options.tickCycles ?? 1_000_000;
    this.counter = new Uint32Array(options.frameCount);
    this.top = 2 ** (this.bits - 1);
  }

  override onLoad(pfn: number, info: Readonly<LoadInfo>): void {
    super.onLoad(pfn, info);
    this.counter[pfn] = this.top;
  }

  override onTick(view: VictimView): void {
    const l = this.list;
    for (let p = l.head; p !== -1; p = l.next[p]!) {
      this.counter[p] = Math.floor(this.counter[p]! / 2) + (view.testAndClearReferenced(p) ? this.top : 0);
    }
  }

  override selectVictim(view: VictimView): number {
    const l = this.list;
    let best = -1;
    let bestCount = Number.POSITIVE_INFINITY;
    for (let p = l.head; p !== -1; p = l.next[p]!) {
      if (view.eligible(p) && this.counter[p]! < bestCount) {
        best = p;
        bestCount = this.counter[p]!;
        if (bestCount === 0) break;
      }
    }
    return best;
  }

  override checkInvariants(): void {
    super.checkInvariants();
    const l = this.list;
    for (let p = l.head; p !== -1; p = l.next[p]!)
      if (this.counter[p]! >= 2 ** this.bits)
        panic(`aging: frame ${p} counter ${this.counter[p]} has over ${this.bits} bits`);
  }
}
