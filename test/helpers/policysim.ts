/**
 * A tiny page-replacement simulator for policy tests: N frames, a reference string of page
 * numbers (writes marked), and a fake VictimView whose reference and dirty bits behave as
 * hardware's do (set on access, cleared when a policy tests and clears them).
 */
import { createPolicy } from '../../kernel/mm/policy/index.ts';
import type { LoadInfo, ReplacementPolicy, VictimView } from '../../kernel/mm/policy/types.ts';

export interface SimResult {
  faults: number;
  writebacks: number;
  policy: ReplacementPolicy;
}

export interface Ref {
  page: number;
  write: boolean;
}

export function parseRefs(text: string): Ref[] {
  return text
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '')
    .map((t) => ({ page: Number.parseInt(t, 10), write: t.endsWith('w') }));
}

/** Run `refs` through policy `name` with `frames` frames. `tickEvery` references make a tick. */
export function simulate(
  name: string,
  refs: Ref[],
  frames: number,
  options: { tickEvery?: number; check?: boolean } = {},
): SimResult {
  const frameCount = frames + 1;
  const policy = createPolicy(name, { frameCount, tickCycles: 1, wsWindowCycles: 4 });
  const pageOf = new Int32Array(frameCount).fill(-1);
  const frameOf = new Map<number, number>();
  const referenced = new Uint8Array(frameCount);
  const dirty = new Uint8Array(frameCount);
  let now = 0;
  let position = 0;
  let seed = 12345;
  const view: VictimView = {
    eligible: (pfn) => pageOf[pfn] !== -1,
    isReferenced: (pfn) => referenced[pfn] === 1,
    testAndClearReferenced: (pfn) => {
      const r = referenced[pfn] === 1;
      referenced[pfn] = 0;
      return r;
    },
    isDirty: (pfn) => dirty[pfn] === 1,
    now: () => now,
    nextUse: (pfn) => {
      const page = pageOf[pfn];
      for (let i = position + 1; i < refs.length; i++) if (refs[i]!.page === page) return i;
      return Number.POSITIVE_INFINITY;
    },
    random: (bound) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % bound;
    },
  };
  const info: LoadInfo = { write: false, refaultDistance: undefined };
  let faults = 0;
  let writebacks = 0;
  for (position = 0; position < refs.length; position++) {
    const { page, write } = refs[position]!;
    now++;
    let pfn = frameOf.get(page);
    if (pfn === undefined) {
      faults++;
      pfn = pageOf.indexOf(-1, 1);
      if (pfn < 0) {
        const victim = policy.selectVictim(view);
        if (victim < 1) throw new Error(`${name}: no victim with ${frameOf.size} resident`);
        if (dirty[victim] === 1) writebacks++;
        frameOf.delete(pageOf[victim]!);
        pageOf[victim] = -1;
        referenced[victim] = 0;
        dirty[victim] = 0;
        policy.onEvicted(victim);
        pfn = victim;
      }
      pageOf[pfn] = page;
      frameOf.set(page, pfn);
      info.write = write;
      policy.onLoad(pfn, info);
    }
    referenced[pfn] = 1;
    if (write) dirty[pfn] = 1;
    if (policy.wantsEveryReference) policy.onReference(pfn, write);
    if (options.tickEvery !== undefined && position % options.tickEvery === options.tickEvery - 1)
      policy.onTick(view);
    if (options.check !== false) policy.checkInvariants();
  }
  return { faults, writebacks, policy };
}
