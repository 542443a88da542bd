/** Temporary stand-in until the policy modules land: FIFO only. */
import type { LoadInfo, PolicyOptions, ReplacementPolicy, VictimView } from './types.ts';

class TempFifo implements ReplacementPolicy {
  readonly name = 'fifo';
  readonly wantsEveryReference = false;
  readonly tickCycles = 0;
  private q: number[] = [];
  onLoad(pfn: number, _info: Readonly<LoadInfo>): void {
    this.q.push(pfn);
  }
  onRemove(pfn: number): void {
    this.q.splice(this.q.indexOf(pfn), 1);
  }
  onEvicted(pfn: number): void {
    this.onRemove(pfn);
  }
  onReference(): void {}
  onTick(): void {}
  selectVictim(view: VictimView): number {
    for (const p of this.q) if (view.eligible(p)) return p;
    return -1;
  }
  order(): number[] {
    return [...this.q];
  }
  checkInvariants(): void {}
}

export const POLICY_NAMES = ['fifo'];
export function createPolicy(_name: string, _options: PolicyOptions): ReplacementPolicy {
  return new TempFifo();
}
