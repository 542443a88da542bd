/**
 * OPT (Belady's MIN): evict the page whose next use lies farthest in the future; a page never
 * used again goes first. Needs the future, which only a trace replay knows: without it
 * (view.nextUse returns undefined) selectVictim throws.
 *
 * Ties. Two resident pages cannot share a finite next use (each position of a trace references
 * one page), so only pages never used again can tie; options.optTie picks among them (OptTie in
 * types.ts): 'earliest' loaded (the default), 'latest' loaded (OSTEP's paging-policy.py), 'lru'
 * or 'mru' (by last reference: these two ask to see every reference). A finite tie would mean a
 * broken future: a panic.
 *
 * O(resident) per victim ('earliest' stops at the first page never used again).
 *
 *   lastUse[pfn] <= stamp for every resident pfn; stamps grow by one per load or reference
 */
import { panic } from '../../lib/panic.ts';
import { FifoPolicy } from './fifo.ts';
import type { LoadInfo, OptTie, PolicyOptions, VictimView } from './types.ts';

export class OptPolicy extends FifoPolicy {
  override readonly name = 'opt';
  override readonly wantsEveryReference: boolean;
  readonly future = 'required';
  readonly tie: OptTie;
  /** The stamp of each frame's last load or reference (lru and mru ties). */
  private readonly lastUse: Float64Array;
  private stamp = 0;

  constructor(options: PolicyOptions) {
    super(options);
    this.tie = options.optTie ?? 'earliest';
    this.wantsEveryReference = this.tie === 'lru' || this.tie === 'mru';
    this.lastUse = new Float64Array(options.frameCount);
  }

  override onLoad(pfn: number, info: Readonly<LoadInfo>): void {
    super.onLoad(pfn, info);
    this.lastUse[pfn] = ++this.stamp;
  }

  override onReference(pfn: number, _write: boolean): void {
    if (this.list.has(pfn)) this.lastUse[pfn] = ++this.stamp;
  }

  /** The eligible page used again farthest ahead, or a page never used again by the tie rule. */
  override selectVictim(view: VictimView): number {
    const l = this.list;
    let best = -1;
    let bestNext = -1;
    for (let p = l.head; p !== -1; p = l.next[p]!) {
      if (!view.eligible(p)) continue;
      const next = futureUse(view, p, 'opt');
      if (next > bestNext) {
        best = p;
        bestNext = next;
        if (next === Number.POSITIVE_INFINITY && this.tie === 'earliest') break;
      } else if (next === bestNext) {
        if (next !== Number.POSITIVE_INFINITY)
          panic(`opt: frames ${best} and ${p} are both next used at position ${next}`);
        if (this.winsTie(p, best)) best = p;
      }
    }
    return best;
  }

  /** Does `p`, met after `best` in load order, win a tie among pages never used again? */
  private winsTie(p: number, best: number): boolean {
    if (this.tie === 'latest') return true;
    if (this.tie === 'lru') return this.lastUse[p]! < this.lastUse[best]!;
    if (this.tie === 'mru') return this.lastUse[p]! > this.lastUse[best]!;
    return false;
  }
}

/**
 * The position of the next use of the page in `pfn` (Infinity: never again). Throws, naming
 * `who`, when the future is unknown (not a trace replay).
 */
export function futureUse(view: VictimView, pfn: number, who: string): number {
  const next = view.nextUse(pfn);
  if (next === undefined)
    throw new Error(
      `${who}: ${who.toUpperCase()} needs the future of a trace replay (vmlab replay, or a workload of one replay process); it is unknown here`,
    );
  return next;
}
