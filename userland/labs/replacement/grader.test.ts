/**
 * Lab 2 grader: the student's enhanced second-chance clock.
 *
 *   VMLAB_STUDENT=path/to/policy.ts npx vitest run --config test/vitest.config.ts userland/labs/replacement
 *
 * Without VMLAB_STUDENT it grades the reference solution. The policy runs inside the whole
 * machine (vmlab replay: MMU, accessed and dirty bits, faults, swap) and must make the same
 * choices as a plain array model of the algorithm written below; driven by hand, it must keep
 * its invariants and only ever pick eligible resident frames.
 */
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ReplayResult, replayTrace } from '../../../kernel/boot/replay.ts';
import { loadPolicyFile } from '../../../kernel/boot/studentcode.ts';
import { parseTrace } from '../../../kernel/boot/traces.ts';
import { Prng } from '../../../kernel/lib/prng.ts';
import type { PolicyFactory, VictimView } from '../../../kernel/mm/policy/types.ts';
import { TRACE_NAMES, traceText } from './tracegen.ts';

const STUDENT = process.env.VMLAB_STUDENT ?? resolve(import.meta.dirname, 'solution.ts');
let factory: PolicyFactory;

beforeAll(async () => {
  factory = await loadPolicyFile(STUDENT);
});

interface Ref {
  page: number;
  write: boolean;
}

function parseRefs(text: string): Ref[] {
  return text
    .split(/[\s,]+/)
    .filter((t) => t !== '')
    .map((t) => ({ page: Number.parseInt(t, 10), write: t.endsWith('w') }));
}

interface ModelResult {
  faults: number;
  writebacks: number;
  /** The page evicted at each reference, or null. */
  evicted: Array<number | null>;
}

/**
 * The algorithm on an array of slots, as the handout states it. `bits: 'ignore-dirty'` makes
 * it plain clock (every page counts as clean), which checks the model against the built-in.
 */
function model(refs: Ref[], frames: number, bits: 'use-dirty' | 'ignore-dirty' = 'use-dirty'): ModelResult {
  const slots: Array<{ page: number; referenced: boolean; dirty: boolean }> = [];
  let hand = 0;
  let faults = 0;
  let writebacks = 0;
  const evicted: Array<number | null> = [];
  const isDirty = (i: number) => bits === 'use-dirty' && slots[i]!.dirty;
  const sweep = (want: 'clean' | 'dirty'): number => {
    for (let k = 0; k < slots.length; k++) {
      const i = (hand + k) % slots.length;
      if (!slots[i]!.referenced && isDirty(i) === (want === 'dirty')) return i;
      if (want === 'dirty') slots[i]!.referenced = false;
    }
    return -1;
  };
  for (const r of refs) {
    const at = slots.findIndex((s) => s.page === r.page);
    if (at >= 0) {
      slots[at]!.referenced = true;
      slots[at]!.dirty ||= r.write;
      evicted.push(null);
      continue;
    }
    faults++;
    const page = { page: r.page, referenced: true, dirty: r.write };
    if (slots.length < frames) {
      slots.push(page);
      evicted.push(null);
      continue;
    }
    let v = -1;
    for (let round = 0; round < 2 && v < 0; round++) {
      v = sweep('clean');
      if (v < 0) v = sweep('dirty');
    }
    if (slots[v]!.dirty) writebacks++;
    evicted.push(slots[v]!.page);
    slots[v] = page;
    hand = (v + 1) % slots.length;
  }
  return { faults, writebacks, evicted };
}

function replay(text: string, frames: number, policy: PolicyFactory | string, verbose = false): ReplayResult {
  const trace = parseTrace('lab', text, { format: 'pages', pageBytes: 4096, vaLimit: 2 ** 48 });
  return replayTrace({
    trace,
    frames,
    policy: typeof policy === 'string' ? policy : 'student',
    policyFactory: typeof policy === 'string' ? undefined : policy,
    machine: { memoryBytes: 32 * 1024 * 1024 },
    verbose,
  });
}

/** The page evicted at each reference, read from the replay's verbose lines. */
function victimsOf(r: ReplayResult): Array<number | null> {
  return (r.lines ?? []).map((l) => {
    const m = / evict (\d+)/.exec(l);
    return m === null ? null : Number(m[1]);
  });
}

const HAND_STRINGS: Array<[string, number]> = [
  ['7,0,1,2,0,3,0,4,2,3,0,3,2,1,2,0,1,7,0,1', 3],
  ['7,0w,1,2,0,3w,0,4,2,3,0,3,2,1,2w,0,1,7,0,1', 3],
  ['1w,2,3w,4,1,2w,5,1,2,3,4w,5,6,1w,2,7,3,1,2,8w,1,2,3', 4],
  ['1w,2w,3w,4,5,1,2,3,6,7,1w,8,9,2,3,1,4,5w,6,1,2', 4],
  ['0w,1w,2w,3w,4,0,1,2,3,5,6,7,0,1,2,3w,8,9', 4],
];

describe('lab 2: enhanced second chance', () => {
  it('the model is clock when dirty bits are ignored (checks the grader itself)', () => {
    for (const [text, frames] of HAND_STRINGS) {
      const machine = replay(text, frames, 'clock');
      const m = model(parseRefs(text), frames, 'ignore-dirty');
      expect({ faults: machine.faults }).toEqual({ faults: m.faults });
    }
  });

  it('evicts the pages the algorithm evicts on hand-worked strings', () => {
    for (const [text, frames] of HAND_STRINGS) {
      const got = replay(text, frames, factory, true);
      const want = model(parseRefs(text), frames);
      const gotVictims = victimsOf(got);
      const first = want.evicted.findIndex((v, i) => v !== gotVictims[i]);
      expect(
        first === -1
          ? 'same victims'
          : `reference ${first}: evicted ${gotVictims[first]}, expected ${want.evicted[first]}`,
        `${text} with ${frames} frames`,
      ).toBe('same victims');
      expect({ faults: got.faults, writebacks: got.writebacks }).toEqual({
        faults: want.faults,
        writebacks: want.writebacks,
      });
    }
  });

  it('keeps its invariants and picks only eligible resident frames when driven by hand', () => {
    const frameCount = 16;
    const prng = new Prng(7);
    const policy = factory({ frameCount });
    const resident = new Set<number>();
    const referenced = new Set<number>();
    const dirty = new Set<number>();
    let eligible: (pfn: number) => boolean = () => true;
    const view: VictimView = {
      eligible: (pfn) => eligible(pfn),
      isReferenced: (pfn) => referenced.has(pfn),
      testAndClearReferenced: (pfn) => referenced.delete(pfn),
      isDirty: (pfn) => dirty.has(pfn),
      now: () => 0,
      nextUse: () => undefined,
      random: (bound) => prng.below(bound),
    };
    const drop = (pfn: number) => {
      resident.delete(pfn);
      referenced.delete(pfn);
      dirty.delete(pfn);
    };
    for (let step = 0; step < 3000; step++) {
      const op = prng.below(10);
      const free = [...Array(frameCount).keys()].filter((p) => !resident.has(p));
      if (op < 4 && free.length > 0) {
        const pfn = free[prng.below(free.length)]!;
        const write = prng.below(2) === 0;
        policy.onLoad(pfn, { write, refaultDistance: undefined });
        resident.add(pfn);
        referenced.add(pfn);
        if (write) dirty.add(pfn);
      } else if (op < 6 && resident.size > 0) {
        const pfn = [...resident][prng.below(resident.size)]!;
        referenced.add(pfn);
        if (prng.below(3) === 0) dirty.add(pfn);
      } else if (op < 9) {
        const mask = prng.below(3) === 0 ? prng.nextU32() : 0xffffffff;
        eligible = (pfn) => ((mask >>> pfn) & 1) === 1;
        const anyEligible = [...resident].some((p) => eligible(p));
        const v = policy.selectVictim(view);
        if (!anyEligible) expect(v, `step ${step}: nothing is eligible`).toBe(-1);
        else {
          expect(
            resident.has(v) && eligible(v),
            `step ${step}: victim ${v} is not an eligible resident frame`,
          ).toBe(true);
          policy.onEvicted(v);
          drop(v);
        }
        eligible = () => true;
      } else if (resident.size > 0) {
        const pfn = [...resident][prng.below(resident.size)]!;
        policy.onRemove(pfn);
        drop(pfn);
      }
      policy.checkInvariants();
      const order = policy.order();
      expect(
        [...order].sort((a, b) => a - b),
        `step ${step}: order() is not the resident set`,
      ).toEqual([...resident].sort((a, b) => a - b));
    }
  });

  it('agrees with the model on the lab traces, and is compared with the built-ins', () => {
    const table: string[] = [
      `${'trace'.padEnd(8)} ${'policy'.padEnd(8)} ${'faults'.padStart(7)} ${'writebacks'.padStart(10)}`,
    ];
    for (const name of TRACE_NAMES) {
      const text = traceText(name);
      for (const frames of [8]) {
        const got = replay(text, frames, factory);
        const want = model(parseRefs(text), frames);
        expect({ trace: name, faults: got.faults, writebacks: got.writebacks }).toEqual({
          trace: name,
          faults: want.faults,
          writebacks: want.writebacks,
        });
        const opt = replay(text, frames, 'opt');
        expect(got.faults).toBeGreaterThanOrEqual(opt.faults);
        table.push(
          `${name.padEnd(8)} ${'student'.padEnd(8)} ${String(got.faults).padStart(7)} ${String(got.writebacks).padStart(10)}`,
        );
        for (const p of ['fifo', 'clock', 'lru']) {
          const r = replay(text, frames, p);
          table.push(
            `${name.padEnd(8)} ${p.padEnd(8)} ${String(r.faults).padStart(7)} ${String(r.writebacks).padStart(10)}`,
          );
        }
        table.push(
          `${name.padEnd(8)} ${'opt'.padEnd(8)} ${String(opt.faults).padStart(7)} ${String(opt.writebacks).padStart(10)}`,
        );
      }
    }
    process.stdout.write(`\n${table.join('\n')}\n`);
  });
});
