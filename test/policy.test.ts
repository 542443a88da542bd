import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { replayTrace } from '../kernel/boot/replay.ts';
import { parseTrace } from '../kernel/boot/traces.ts';
import { createPolicy, POLICY_NAMES } from '../kernel/mm/policy/index.ts';
import type { LoadInfo, VictimView } from '../kernel/mm/policy/types.ts';
import { modelFaults, parseRefs, reads, ref, simulate } from './helpers/policysim.ts';

const BELADY = parseRefs('1,2,3,4,1,2,5,1,2,3,4,5');
const CLASSIC = parseRefs('7,0,1,2,0,3,0,4,2,3,0,3,2,1,2,0,1,7,0,1');
const FIRST_LOAD: LoadInfo = { write: false, refaultDistance: undefined };

/** Evicted pages in order. */
const victims = (evicted: Array<number | null>) => evicted.filter((p) => p !== null);

/** 1, 2 used over and over while 10, 11, ... are touched once each, on 4 frames. */
const WORKING_SET = ['1,2,1,2,1,2', ...Array.from({ length: 6 }, (_, i) => `${10 + i},1,2`)].join(',');

/** A view for driving a policy by hand: bits in sets, every frame eligible unless told. */
function handView(bits: {
  referenced?: Set<number>;
  dirty?: Set<number>;
  eligible?: Set<number>;
}): VictimView {
  const referenced = bits.referenced ?? new Set<number>();
  return {
    eligible: (pfn) => bits.eligible?.has(pfn) ?? true,
    isReferenced: (pfn) => referenced.has(pfn),
    testAndClearReferenced: (pfn) => referenced.delete(pfn),
    isDirty: (pfn) => bits.dirty?.has(pfn) ?? false,
    now: () => 0,
    nextUse: () => undefined,
    random: () => 0,
  };
}

/** Reference strings of pages 0..maxPage, lengths spread up to maxLength (not only short ones). */
const pagesArb = (maxPage: number, maxLength: number) =>
  fc.array(fc.integer({ min: 0, max: maxPage }), { minLength: 1, maxLength, size: 'max' });

describe('textbook reference strings', () => {
  it("FIFO shows Belady's anomaly: 9 faults with 3 frames, 10 with 4", () => {
    expect(simulate('fifo', BELADY, 3).faults).toBe(9);
    expect(simulate('fifo', BELADY, 4).faults).toBe(10);
  });

  it('the classic string with 3 frames: FIFO 15, OPT 9, LRU 12', () => {
    expect(simulate('fifo', CLASSIC, 3).faults).toBe(15);
    expect(simulate('opt', CLASSIC, 3).faults).toBe(9);
    expect(simulate('lru', CLASSIC, 3).faults).toBe(12);
  });

  it('clock on the classic string with 3 frames: 14 faults, worked by hand', () => {
    // Circle read from the hand; * = reference bit set. Fault with no free frame: clear set
    // bits under the hand and advance; evict the first clear frame; the new page takes its
    // place with its bit set; the hand moves one past it. Free frames fill behind the hand.
    //
    //  #  ref  fault  evicts  circle after (from the hand)
    //  1   7    F              7*
    //  2   0    F              7* 0*
    //  3   1    F              7* 0* 1*
    //  4   2    F      7       0  1  2*     (cleared 7, 0, 1; 7 clear on the second look)
    //  5   0                   0* 1  2*
    //  6   3    F      1       2* 0  3*     (cleared 0)
    //  7   0                   2* 0* 3*
    //  8   4    F      2       0  3  4*     (cleared 2, 0, 3)
    //  9   2    F      0       3  4* 2*
    // 10   3                   3* 4* 2*
    // 11   0    F      3       4  2  0*     (cleared 3, 4, 2)
    // 12   3    F      4       2  0* 3*
    // 13   2                   2* 0* 3*
    // 14   1    F      2       0  3  1*     (cleared 2, 0, 3)
    // 15   2    F      0       3  1* 2*
    // 16   0    F      3       1* 2* 0*
    // 17   1                   1* 2* 0*
    // 18   7    F      1       2  0  7*     (cleared 1, 2, 0)
    // 19   0                   2  0* 7*
    // 20   1    F      2       0* 7* 1*
    //
    // Faults: 3 compulsory + 11 replacements = 14.
    const r = simulate('clock', CLASSIC, 3);
    expect(r.faults).toBe(14);
    expect(victims(r.evicted)).toEqual([7, 1, 2, 0, 3, 4, 2, 0, 3, 1, 2]);
    expect(r.order).toEqual([0, 7, 1]);
  });

  it('counts writebacks: evicted pages written since they were loaded', () => {
    // FIFO evicts 1 (written), 2, 3, 4 (written), 1, 2: the reloaded 1 is clean again.
    expect(simulate('fifo', parseRefs('1w,2,3,4w,1,2,5,1,2,3,4,5'), 3)).toMatchObject({
      faults: 9,
      writebacks: 2,
    });
  });
});

describe('properties on random reference strings', () => {
  it('FIFO, LRU, OPT and clock fault exactly as plain array models of the textbook rules', () => {
    fc.assert(
      fc.property(pagesArb(7, 50), fc.integer({ min: 1, max: 6 }), (pages, n) => {
        for (const name of ['fifo', 'lru', 'opt', 'clock'] as const) {
          expect(simulate(name, reads(pages), n, { check: false }).faults).toBe(modelFaults(name, pages, n));
        }
      }),
      { seed: 5, numRuns: 150 },
    );
  });

  it('LRU and OPT never fault more with more frames (no Belady anomaly)', () => {
    fc.assert(
      fc.property(pagesArb(7, 60), fc.integer({ min: 1, max: 6 }), (pages, n) => {
        for (const name of ['lru', 'opt']) {
          expect(simulate(name, reads(pages), n + 1, { check: false }).faults).toBeLessThanOrEqual(
            simulate(name, reads(pages), n, { check: false }).faults,
          );
        }
      }),
      { seed: 7, numRuns: 150 },
    );
  });

  it('OPT faults no more than any other policy', () => {
    fc.assert(
      fc.property(pagesArb(9, 60), fc.integer({ min: 1, max: 6 }), (pages, n) => {
        const refs = pages.map((page) => ref(page, page % 3 === 0));
        const opt = simulate('opt', refs, n, { check: false }).faults;
        for (const name of POLICY_NAMES) {
          const faults = simulate(name, refs, n, { tickEvery: 4, check: false }).faults;
          expect(opt, name).toBeLessThanOrEqual(faults);
        }
      }),
      { seed: 11, numRuns: 100 },
    );
  });

  it('every policy keeps its invariants, and holds each resident frame once, after every step', () => {
    fc.assert(
      fc.property(pagesArb(12, 80), fc.integer({ min: 1, max: 8 }), (pages, n) => {
        const refs = pages.map((page, i) => ref(page, i % 4 === 0));
        for (const name of POLICY_NAMES) {
          const r = simulate(name, refs, n, { tickEvery: 3, shadows: 'every' });
          expect(r.order.length).toBe(Math.min(n, new Set(pages).size));
        }
      }),
      { seed: 3, numRuns: 60 },
    );
  });

  it('no policy cares which free frame the kernel gives the new page', () => {
    fc.assert(
      fc.property(pagesArb(10, 60), fc.integer({ min: 1, max: 6 }), (pages, n) => {
        const refs = pages.map((page, i) => ref(page, i % 3 === 0));
        for (const name of POLICY_NAMES) {
          const same = simulate(name, refs, n, { tickEvery: 5, check: false });
          const other = simulate(name, refs, n, { tickEvery: 5, frames: 'other' });
          expect(other.evicted, name).toEqual(same.evicted);
          expect(other.order, name).toEqual(same.order);
        }
      }),
      { seed: 13, numRuns: 60 },
    );
  });
});

describe('each policy by hand', () => {
  it('order(): FIFO oldest first, LRU least to most recent, clock from the hand', () => {
    const refs = parseRefs('1,2,3,1');
    expect(simulate('fifo', refs, 3).order).toEqual([1, 2, 3]);
    expect(simulate('lru', refs, 3).order).toEqual([2, 3, 1]);
    expect(simulate('clock', parseRefs('1,2,3,1,4'), 3).order).toEqual([2, 3, 4]);
  });

  it('clock puts the new page in the victim’s place even in another frame; free frames go behind the hand', () => {
    const p = createPolicy('clock', { frameCount: 8 });
    for (const pfn of [0, 1, 2]) p.onLoad(pfn, FIRST_LOAD);
    expect(p.selectVictim(handView({ referenced: new Set([0, 1, 2]) }))).toBe(0);
    p.onEvicted(0);
    p.onLoad(5, FIRST_LOAD);
    expect(p.order()).toEqual([1, 2, 5]); // 5 sits where 0 was; the hand is past it
    p.onRemove(2);
    p.onLoad(6, FIRST_LOAD);
    expect(p.order()).toEqual([1, 5, 6]); // no hole: just behind the hand
    p.checkInvariants();
  });

  it('NRU takes the lowest class (referenced, dirty), oldest loaded within it', () => {
    // After the tick nothing is referenced; then 2 is. At 4: classes 1 = dirty (1),
    // 2 = referenced (2), 3 = neither (0): evict 3. At 5: 1 (1), 2 (2), 4 (2): evict 1, a
    // writeback. At 6: 2, 4, 5 all referenced and clean: the oldest loaded, 2.
    const r = simulate('nru', parseRefs('1w,2,3,t,2,4,5,6'), 3);
    expect(victims(r.evicted)).toEqual([3, 1, 2]);
    expect(r.writebacks).toBe(1);
  });

  it('aging evicts the smallest counter, the oldest loaded on ties', () => {
    // 8-bit counters, a tick after every reference: 1 = 0b11101100 and 2 = 0b00011000 when 3
    // comes, so 2 goes.
    expect(victims(simulate('aging', parseRefs('1,2,1,1,1,3,1'), 2, { tickEvery: 1 }).evicted)).toEqual([2]);
    // After the first tick 1, 2, 3 all hold 0b11000000; after the second 1 holds 0b11100000
    // and 2, 3 hold 0b01100000: 2 goes (FIFO would take 1).
    expect(victims(simulate('aging', parseRefs('1,2,3,t,1,t,4'), 3).evicted)).toEqual([2]);
    expect(victims(simulate('aging', parseRefs('1,2,3,t,4'), 3).evicted)).toEqual([1]);
  });

  it('WSClock passes over old dirty pages for old clean ones, and keeps the working set', () => {
    // tau = 2 references; time = references so far. At 4 (t=4) every page is referenced:
    // stamped 4, none old, so the oldest clean page goes: 1 (2 is dirty). 4 takes 1's place,
    // the hand is on 2. 4 is used at t=5..7. At 5 (t=8): 2 is old and dirty, passed over;
    // 3 is old and clean: evicted. At 6 (t=9): 4 and 5 are referenced (stamped 9); 2 is the
    // only old page, dirty: after a full turn the oldest old dirty page goes (a writeback).
    const r = simulate('wsclock', parseRefs('1,2w,3,4,4,4,4,5,6'), 3, { wsWindowCycles: 2 });
    expect(victims(r.evicted)).toEqual([1, 3, 2]);
    expect(r.writebacks).toBe(1);
    // Clock, blind to age and dirt, takes 2 at 5.
    expect(victims(simulate('clock', parseRefs('1,2w,3,4,4,4,4,5,6'), 3).evicted)).toEqual([1, 2, 3]);
  });

  it('lru-2list keeps a re-referenced working set active while a one-pass scan streams through', () => {
    // 1 and 2 sit on the inactive list with 10 and 11. At 12 every page is referenced: the
    // scan flags all four, comes round and evicts 1 (flag but no new reference); 1 and 2 then
    // fault once each. At 14 the scan flags 12, 1, 2, 13 and evicts 12; by 15, 1 and 2 were
    // referenced again with the flag set: promoted to the active list. From there on only the
    // scan pages fault, each evicted at the second fault after its own.
    const refs = parseRefs(
      ['1,2,1,2,1,2', ...Array.from({ length: 20 }, (_, i) => `${10 + i},1,2`)].join(','),
    );
    const r = simulate('lru-2list', refs, 4);
    expect(r.faults).toBe(2 + 20 + 2);
    expect(r.policy.listSizes!()).toEqual({ active: 2, inactive: 2 });
    expect(r.policy.activity!()).toEqual({ activations: 2, deactivations: 0, refaultActivations: 0 });
    expect(r.order.slice(0, 2)).toEqual([1, 2]);
    expect(simulate('fifo', refs, 4).faults).toBeGreaterThan(r.faults);
  });

  it('lru-2list activates a page that refaults within the active list size (workingset)', () => {
    // After WORKING_SET, 1 and 2 are active. 16 is written (so it gets a swap slot), flagged
    // and evicted at 18; it comes back at the next fault: distance 2 (its own eviction and
    // the one making room) <= 2 active pages, so it goes straight to the active list.
    const tail = ',16w,1,2,17,1,2,18,1,2,16';
    const r = simulate('lru-2list', parseRefs(WORKING_SET + tail), 4);
    expect(victims(r.evicted).slice(-2)).toEqual([16, 17]);
    expect(r.policy.activity!()).toEqual({ activations: 2, deactivations: 0, refaultActivations: 1 });
    expect(r.policy.listSizes!()).toEqual({ active: 3, inactive: 1 });
    // Never written: dropped, not swapped, so it comes back as a new page (inactive).
    const clean = simulate('lru-2list', parseRefs(WORKING_SET + tail.replace('16w', '16')), 4);
    expect(clean.policy.activity!().refaultActivations).toBe(0);
    expect(clean.policy.listSizes!()).toEqual({ active: 2, inactive: 2 });
  });

  it('lru-2list deactivates unreferenced active pages to keep inactive >= active', () => {
    // Continuing: at 19 active (1, 2, 16) outnumbers inactive (18) but all three were
    // referenced: each is cleared and rotated; 18 goes. At 20, 1 is unreferenced at the active
    // tail: deactivated, which evens the lists; the scan flags 19 and evicts 1.
    const r = simulate('lru-2list', parseRefs(`${WORKING_SET},16w,1,2,17,1,2,18,1,2,16,19,20`), 4);
    expect(victims(r.evicted).slice(-2)).toEqual([18, 1]);
    expect(r.policy.activity!()).toEqual({ activations: 2, deactivations: 1, refaultActivations: 1 });
    expect(r.policy.listSizes!()).toEqual({ active: 2, inactive: 2 });
  });

  it('lru-2list activates a refault directly and leaves ineligible pages in place', () => {
    const p = createPolicy('lru-2list', { frameCount: 8 });
    p.onLoad(1, FIRST_LOAD);
    p.onLoad(2, { write: false, refaultDistance: 0 });
    expect(p.listSizes!()).toEqual({ active: 1, inactive: 1 });
    const q = createPolicy('lru-2list', { frameCount: 8 });
    for (const pfn of [0, 1, 2, 3]) q.onLoad(pfn, FIRST_LOAD);
    // Only 1 and 3 may go: 1 and 3 are flagged and rotated to the head, 1 is met again with
    // its bit clear. 0 and 2 stay where they were, bits untouched.
    const view = handView({ referenced: new Set([0, 1, 2, 3]), eligible: new Set([1, 3]) });
    expect(q.selectVictim(view)).toBe(1);
    expect(q.order()).toEqual([0, 2, 1, 3]);
    expect([view.isReferenced(0), view.isReferenced(2)]).toEqual([true, true]);
    q.checkInvariants();
  });

  it('OPT refuses to run without the future', () => {
    const p = createPolicy('opt', { frameCount: 4 });
    p.onLoad(0, FIRST_LOAD);
    expect(() => p.selectVictim(handView({}))).toThrow(/OPT needs .*trace replay/);
  });

  it('random is seeded: the same string gives the same victims, always eligible ones', () => {
    const refs = parseRefs('1,2,3,4,5,1,2,6,3,7,1,8,2,9');
    const a = simulate('random', refs, 3);
    expect(simulate('random', refs, 3).evicted).toEqual(a.evicted);
    const p = createPolicy('random', { frameCount: 4 });
    for (const pfn of [0, 1, 2, 3]) p.onLoad(pfn, FIRST_LOAD);
    expect(p.selectVictim(handView({ eligible: new Set([3]) }))).toBe(3);
    expect(p.selectVictim(handView({ eligible: new Set() }))).toBe(-1);
  });

  it('every policy returns -1 when no frame is eligible', () => {
    for (const name of POLICY_NAMES) {
      const p = createPolicy(name, { frameCount: 4 });
      expect(p.selectVictim(handView({})), name).toBe(-1);
      p.onLoad(1, FIRST_LOAD);
      expect(p.selectVictim(handView({ eligible: new Set() })), name).toBe(-1);
    }
  });

  it('refuses an unknown policy by naming the valid ones, and options out of range', () => {
    expect(() => createPolicy('lfu', { frameCount: 4 })).toThrow(
      /unknown replacement policy 'lfu' \(one of fifo, clock, lru, mru, nru, aging, lru-2list, wsclock, opt, unopt, random\)/,
    );
    expect(() => createPolicy('fifo', { frameCount: -1 })).toThrow(RangeError);
    expect(() => createPolicy('aging', { frameCount: 4, agingBits: 33 })).toThrow(RangeError);
    expect(() => createPolicy('nru', { frameCount: 4, tickCycles: 0 })).toThrow(RangeError);
    expect(() => createPolicy('opt', { frameCount: 4, optTie: 'newest' as 'lru' })).toThrow(
      /opt: optTie 'newest' is not earliest, latest, lru, mru/,
    );
  });
});

describe('policies through the full machine (vmlab replay)', () => {
  const trace = (text: string) =>
    parseTrace('inline', text, { format: 'pages', pageBytes: 4096, vaLimit: 2 ** 48 });
  const run = (text: string, frames: number, policy: string) =>
    replayTrace({ trace: trace(text), frames, policy, machine: { memoryBytes: 32 * 1024 * 1024 } });

  it('clock gives 14 faults on the classic string with 3 frames, as by hand', () => {
    expect(run('7,0,1,2,0,3,0,4,2,3,0,3,2,1,2,0,1,7,0,1', 3, 'clock').faults).toBe(14);
  });

  it('agrees with the simulator on faults and writebacks for every policy that needs no ticks', () => {
    const strings = [
      '1,2,3,4,1,2,5,1,2,3,4,5,6,1,2,7,3,1,2,8',
      '1w,2,3w,4,1,2w,5,1,2,3,4w,5,6,1w,2,7,3,1,2,8w,1,2,3',
      `${WORKING_SET},16w,1,2,17,1,2,18,1,2,16,19,20`, // lru-2list: a refault activation
    ];
    for (const text of strings) {
      for (const name of ['fifo', 'clock', 'lru', 'opt', 'lru-2list']) {
        const machine = run(text, 4, name);
        const sim = simulate(name, parseRefs(text), 4);
        expect({ faults: machine.faults, writebacks: machine.writebacks }, name).toEqual({
          faults: sim.faults,
          writebacks: sim.writebacks,
        });
      }
    }
  });
});
