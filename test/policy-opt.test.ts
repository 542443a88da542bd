/**
 * Policies that know the future (opt and its tie rules, unopt) and MRU, through the full
 * machine (vmlab replay): hand-worked reference strings, and random strings against a small
 * list simulator written here after OSTEP's paging-policy.py.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { bootKernel, buildMachine } from '../kernel/boot/machine.ts';
import { replayTrace, startTraceProcess } from '../kernel/boot/replay.ts';
import { parseTrace } from '../kernel/boot/traces.ts';
import { FifoPolicy } from '../kernel/mm/policy/fifo.ts';
import { createPolicy, POLICY_NAMES } from '../kernel/mm/policy/index.ts';
import type { LoadInfo, OptTie, PolicyFactory, VictimView } from '../kernel/mm/policy/types.ts';

const dir = mkdtempSync(join(tmpdir(), 'vmlab-opt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const cli = join(process.cwd(), 'kernel/boot/vmlab.mjs');

const OSTEP = '0,1,2,0,1,3,0,3,1,2,1';
const CLASSIC = '7,0,1,2,0,3,0,4,2,3,0,3,2,1,2,0,1,7,0,1';
const TIES: OptTie[] = ['earliest', 'latest', 'lru', 'mru'];

const trace = (text: string) =>
  parseTrace('inline', text, { format: 'pages', pageBytes: 4096, vaLimit: 2 ** 48 });

/** Replay `text` with `frames` frames; the hit/miss string (h, m) and the victims, from --verbose lines. */
function run(
  text: string,
  frames: number,
  policy: string,
  extra: { optTie?: OptTie; policyFactory?: PolicyFactory } = {},
) {
  const r = replayTrace({
    trace: trace(text),
    frames,
    policy,
    ...extra,
    machine: { memoryBytes: 16 * 1024 * 1024 },
    verbose: true,
  });
  let hits = '';
  const victims: number[] = [];
  for (const line of r.lines!) {
    const m = /page \d+ [RWX] (MISS|HIT )(?: evict (\d+))?/.exec(line);
    if (m === null) throw new Error(`unexpected verbose line ${line}`);
    hits += m[1] === 'MISS' ? 'm' : 'h';
    if (m[2] !== undefined) victims.push(Number(m[2]));
  }
  return { faults: r.faults, hits, victims, result: r };
}

type ModelRule = 'fifo' | 'lru' | 'mru' | 'unopt' | `opt-${OptTie}`;

/**
 * The textbook rules on a plain array, as OSTEP's paging-policy.py keeps memory: `mem` in load
 * order, `last` the time of each page's last use, the future read off the string itself.
 */
function model(
  rule: ModelRule,
  refs: readonly number[],
  frames: number,
): { faults: number; hits: string; victims: number[] } {
  const mem: number[] = [];
  const last = new Map<number, number>();
  const victims: number[] = [];
  let hits = '';
  const nextUse = (page: number, i: number) => {
    const j = refs.indexOf(page, i + 1);
    return j < 0 ? Number.POSITIVE_INFINITY : j;
  };
  const byLast = (pages: number[], pick: 'least' | 'most') =>
    pages.reduce((a, b) =>
      (pick === 'least' ? last.get(b)! < last.get(a)! : last.get(b)! > last.get(a)!) ? b : a,
    );
  const choose = (i: number): number => {
    if (rule === 'fifo') return mem[0]!;
    if (rule === 'lru') return byLast(mem, 'least');
    if (rule === 'mru') return byLast(mem, 'most');
    const next = mem.map((p) => nextUse(p, i));
    if (rule === 'unopt') return mem[next.indexOf(Math.min(...next))]!; // the first of equals
    const far = Math.max(...next);
    const tied = mem.filter((_, k) => next[k] === far);
    if (rule === 'opt-earliest') return tied[0]!;
    if (rule === 'opt-latest') return tied[tied.length - 1]!;
    return byLast(tied, rule === 'opt-lru' ? 'least' : 'most');
  };
  refs.forEach((page, i) => {
    if (mem.includes(page)) hits += 'h';
    else {
      hits += 'm';
      if (mem.length === frames) {
        const v = choose(i);
        victims.push(v);
        mem.splice(mem.indexOf(v), 1);
      }
      mem.push(page);
    }
    last.set(page, i);
  });
  return { faults: [...hits].filter((c) => c === 'm').length, hits, victims };
}

describe('hand-worked strings', () => {
  it("OSTEP's 0,1,2,0,1,3,0,3,1,2,1 with 3 frames: OPT hits 6 of 11, the tie at the second 2 by each rule", () => {
    // ref:   0 1 2 0 1 3 0 3 1 2 1
    //        m m m h h m h h h m h
    // At page 3, resident 0 (next at 6), 1 (8), 2 (9): 2 goes, farthest. At the second 2 (position
    // 9), resident 0, 1, 3 (loaded 0, 1, 5; last used 6, 8, 7): 1 is used at 10, 0 and 3
    // never again: the tie. earliest loaded: 0; latest loaded: 3 (OSTEP's
    // paging-policy.py); least recently used: 0 (6 < 7); most recently used: 3.
    const expected: Record<OptTie, number[]> = { earliest: [2, 0], latest: [2, 3], lru: [2, 0], mru: [2, 3] };
    for (const tie of TIES) {
      const r = run(OSTEP, 3, 'opt', { optTie: tie });
      expect(r.hits, tie).toBe('mmmhhmhhhmh');
      expect(r.victims, tie).toEqual(expected[tie]);
      expect(r.result.config.optTie).toBe(tie);
    }
    expect(run(OSTEP, 3, 'opt').victims).toEqual([2, 0]); // the default is earliest
  });

  it('four pages never used again: earliest, latest, lru and mru each pick a different one', () => {
    // 4 frames. Loads 1, 2, 3, 4 (times 0-3), then uses 1 (4), 4 (5), 3 (6): by last use
    // 2 < 1 < 4 < 3. At 5 none of 1-4 is used again: earliest loaded 1, latest loaded 4,
    // least recently used 2, most recently used 3.
    const text = '1,2,3,4,1,4,3,5';
    const expected: Record<OptTie, number> = { earliest: 1, latest: 4, lru: 2, mru: 3 };
    for (const tie of TIES) {
      const r = run(text, 4, 'opt', { optTie: tie });
      expect(r.hits, tie).toBe('mmmmhhhm');
      expect(r.victims, tie).toEqual([expected[tie]]);
    }
  });

  it('ties cascade: each rule keeps choosing among the dead pages, with equal faults', () => {
    // 3 frames: 1, 2, 3 loaded, 2 used again (time 3); then 4, 5, 6, each never used again,
    // then 2. At 4: 1 and 3 dead (2 used at 7): earliest 1, latest 3, lru 1 (0 < 2), mru 3.
    // At 5: the dead are the survivor and 4. At 6: the survivor and 5. 2 stays throughout.
    const text = '1,2,3,2,4,5,6,2';
    const expected: Record<OptTie, number[]> = {
      earliest: [1, 3, 4],
      latest: [3, 4, 5],
      lru: [1, 3, 4],
      mru: [3, 4, 5],
    };
    for (const tie of TIES) {
      const r = run(text, 3, 'opt', { optTie: tie });
      expect(r.hits, tie).toBe('mmmhmmmh');
      expect(r.victims, tie).toEqual(expected[tie]);
    }
  });

  it('MRU on the OSTEP string: evicts the page used last, 6 hits', () => {
    // 0 1 2 | 0 h, 1 h (MRU order 2 0 1) | 3: evict 1 -> 2 0 3 | 0 h -> 2 3 0 | 3 h -> 2 0 3 |
    // 1: evict 3 -> 2 0 1 | 2 h | 1 h
    const r = run(OSTEP, 3, 'mru');
    expect(r.hits).toBe('mmmhhmhhmhh');
    expect(r.victims).toEqual([1, 3]);
  });

  it('MRU beats LRU on a loop one page longer than memory', () => {
    // 1,2,3,4 five times, 3 frames. LRU evicts the page needed next: every reference faults.
    // MRU: 1 2 3 | 4 evicts 3 (used last) | 1 h 2 h | 3 evicts 2 | 4 h 1 h | 2 evicts 1 |
    // 3 h 4 h | 1 evicts 4 | 2 h 3 h | 4 evicts 3 | 1 h 2 h | 3 evicts 2 | 4 h: 10 faults.
    const loop = Array.from({ length: 5 }, () => '1,2,3,4').join(',');
    expect(run(loop, 3, 'lru').faults).toBe(20);
    const r = run(loop, 3, 'mru');
    expect(r.hits).toBe('mmmmhhmhhmhhmhhmhhmh');
    expect(r.victims).toEqual([3, 2, 1, 4, 3, 2]);
  });

  it('UNOPT on the OSTEP string: evicts the page needed soonest, 2 hits', () => {
    // 0 1 2 | 0 h 1 h | 3 (pos 5): 0 next at 6, 1 at 8, 2 at 9: evict 0 | 0 (6): 1 at 8,
    // 2 at 9, 3 at 7: evict 3 | 3 (7): 1 at 8, 2 at 9, 0 never: evict 1 | 1 (8): 2 at 9:
    // evict 2 | 2 (9): 1 at 10: evict 1 | 1 (10): 0, 3, 2 all dead: the earliest loaded, 0.
    const r = run(OSTEP, 3, 'unopt');
    expect(r.hits).toBe('mmmhhmmmmmm');
    expect(r.victims).toEqual([0, 3, 1, 2, 1, 0]);
  });

  it('the classic 20-reference string: OPT 9 faults with every tie rule, UNOPT more than FIFO', () => {
    for (const tie of TIES) expect(run(CLASSIC, 3, 'opt', { optTie: tie }).faults, tie).toBe(9);
    expect(run(CLASSIC, 3, 'unopt').faults).toBe(model('unopt', CLASSIC.split(',').map(Number), 3).faults);
    expect(run(CLASSIC, 3, 'unopt').faults).toBeGreaterThan(15);
  });
});

describe('random strings against the list simulator', () => {
  const strings = fc.record({
    pages: fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 1, maxLength: 40, size: 'max' }),
    frames: fc.integer({ min: 1, max: 5 }),
  });

  it('opt with each tie rule, mru and unopt evict exactly what the simulator evicts', () => {
    fc.assert(
      fc.property(strings, ({ pages, frames }) => {
        const text = pages.join(',');
        for (const tie of TIES) {
          const r = run(text, frames, 'opt', { optTie: tie });
          const m = model(`opt-${tie}`, pages, frames);
          expect({ hits: r.hits, victims: r.victims }, tie).toEqual({ hits: m.hits, victims: m.victims });
        }
        for (const name of ['mru', 'unopt'] as const) {
          const r = run(text, frames, name);
          const m = model(name, pages, frames);
          expect({ hits: r.hits, victims: r.victims }, name).toEqual({ hits: m.hits, victims: m.victims });
        }
      }),
      { seed: 23, numRuns: 60 },
    );
  });

  it('OPT faults no more than any policy, and tie rules change no count; UNOPT no fewer than OPT', () => {
    fc.assert(
      fc.property(strings, ({ pages, frames }) => {
        const text = pages.map((p, i) => (i % 3 === 0 ? `${p}w` : String(p))).join(',');
        const opt = run(text, frames, 'opt').faults;
        for (const tie of TIES) expect(run(text, frames, 'opt', { optTie: tie }).faults, tie).toBe(opt);
        for (const name of POLICY_NAMES)
          expect(opt, name).toBeLessThanOrEqual(run(text, frames, name).faults);
        expect(run(text, frames, 'unopt').faults).toBeGreaterThanOrEqual(opt);
      }),
      { seed: 29, numRuns: 40 },
    );
  });
});

describe('a longer trace', () => {
  it('opt (each tie rule) and unopt on 3000 references over 400 pages equal the simulator', () => {
    let seed = 99;
    const next = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const hot = Array.from({ length: 30 }, () => Math.floor(next() * 400));
    const pages = Array.from({ length: 3000 }, () =>
      next() < 0.8 ? hot[Math.floor(next() * 30)]! : Math.floor(next() * 400),
    );
    const text = pages.join(',');
    for (const tie of TIES) {
      const r = run(text, 16, 'opt', { optTie: tie });
      const m = model(`opt-${tie}`, pages, 16);
      expect(r.faults, tie).toBe(m.faults);
      expect(r.victims, tie).toEqual(m.victims);
    }
    const u = run(text, 16, 'unopt');
    expect(u.victims).toEqual(model('unopt', pages, 16).victims);
  });
});

/** OPT written from outside, under another name: reads the future only through view.nextUse. */
class Seer extends FifoPolicy {
  override readonly name = 'seer';
  asked = 0;

  override selectVictim(view: VictimView): number {
    let best = -1;
    let bestNext = -1;
    for (const p of this.order()) {
      const next = view.nextUse(p);
      if (next === undefined) throw new Error('seer: no future');
      this.asked++;
      if (view.eligible(p) && next > bestNext) {
        best = p;
        bestNext = next;
      }
    }
    return best;
  }
}

describe('the future, for any policy', () => {
  it('vmlab replay gives it to a policy whatever its name', () => {
    let seer: Seer | undefined;
    const r = run(CLASSIC, 3, 'seer', { policyFactory: (o) => (seer = new Seer(o)) });
    expect(r.faults).toBe(9);
    expect(r.victims).toEqual(run(CLASSIC, 3, 'opt').victims);
    expect(seer!.asked).toBeGreaterThan(0);
  });

  it('vmlab replay --policy-file gives it to a policy file', () => {
    const ref = join(dir, 'classic.txt');
    writeFileSync(ref, CLASSIC);
    const file = join(dir, 'farthest.ts');
    writeFileSync(
      file,
      `export default class Farthest {
  name = 'farthest'; wantsEveryReference = false; tickCycles = 0;
  frames: number[] = [];
  onLoad(pfn: number) { this.frames.push(pfn); }
  onRemove(pfn: number) { this.frames.splice(this.frames.indexOf(pfn), 1); }
  onEvicted(pfn: number) { this.onRemove(pfn); }
  onReference() {}
  onTick() {}
  selectVictim(view: { eligible(p: number): boolean; nextUse(p: number): number | undefined }) {
    let best = -1, far = -1;
    for (const p of this.frames) {
      const next = view.nextUse(p);
      if (next === undefined) throw new Error('farthest: no future');
      if (view.eligible(p) && next > far) { best = p; far = next; }
    }
    return best;
  }
  order() { return [...this.frames]; }
  checkInvariants() {}
}
`,
    );
    const out = spawnSync('node', [cli, 'replay', ref, '--frames', '3', '--policy-file', file, '--json'], {
      encoding: 'utf8',
    });
    expect(out.stderr).toBe('');
    expect(JSON.parse(out.stdout)).toMatchObject({ faults: 9, config: { policy: 'farthest.ts' } });
  });

  it("a workload's replay process gives it only to a policy that says future: 'required'", () => {
    const replayIn = (policy: Seer | ReturnType<typeof createPolicy>) => {
      const m = bootKernel(buildMachine({ memoryBytes: 16 * 1024 * 1024 }), {
        loader: () => undefined,
        policyFactory: () => policy,
        scope: 'local',
        swap: { bytes: 64 * 4096, profile: 'ram' },
        tunables: { kswapd: false },
      });
      const task = startTraceProcess(m, trace(CLASSIC), { name: 'w', frames: 3 });
      m.kernel.run();
      m.shutdown();
      return { task, m };
    };
    const seer = new Seer({ frameCount: 4096 });
    const blind = replayIn(seer);
    expect(blind.task.waitStatus).not.toBe(0);
    expect(blind.m.kernel.log.some((l) => l.text.includes('seer: no future'))).toBe(true);
    const opt = replayIn(createPolicy('opt', { frameCount: 4096 }));
    expect(opt.task.waitStatus).toBe(0);
    expect(opt.task.minFlt + opt.task.majFlt).toBe(9);
  });

  it('refuses a second replay process when the policy reads the first one’s future', () => {
    const m = bootKernel(buildMachine({ memoryBytes: 16 * 1024 * 1024 }), {
      loader: () => undefined,
      policy: 'unopt',
      scope: 'local',
      swap: { bytes: 64 * 4096, profile: 'ram' },
      tunables: { kswapd: false },
    });
    startTraceProcess(m, trace(CLASSIC), { name: 'a', frames: 3 });
    expect(() => startTraceProcess(m, trace(CLASSIC), { name: 'b', frames: 3 })).toThrow(
      /replay: b: unopt reads the future of one trace, and another replay process already gave it/,
    );
    m.shutdown();
  });

  it('unopt (like opt) refuses to run without the future; mru needs none', () => {
    const view = viewOf(() => undefined);
    const first: LoadInfo = { write: false, refaultDistance: undefined };
    for (const name of ['opt', 'unopt']) {
      const p = createPolicy(name, { frameCount: 4 });
      p.onLoad(0, first);
      expect(p.future).toBe('required');
      expect(() => p.selectVictim(view), name).toThrow(
        new RegExp(`^${name}: ${name.toUpperCase()} needs the future`),
      );
    }
    const mru = createPolicy('mru', { frameCount: 4 });
    mru.onLoad(0, first);
    mru.onLoad(1, first);
    mru.onReference(0, false);
    expect(mru.selectVictim(view)).toBe(0);
  });

  it('a finite tie (two pages next used at one position) is a broken future: a panic', () => {
    const view = viewOf(() => 5);
    for (const name of ['opt', 'unopt']) {
      const p = createPolicy(name, { frameCount: 4 });
      p.onLoad(0, { write: false, refaultDistance: undefined });
      p.onLoad(1, { write: false, refaultDistance: undefined });
      expect(() => p.selectVictim(view), name).toThrow(
        new RegExp(`${name}: frames 0 and 1 are both next used at position 5`),
      );
    }
  });
});

/** A view where every frame is eligible, no bit is set, and the future is `nextUse`. */
function viewOf(nextUse: () => number | undefined): VictimView {
  return {
    eligible: () => true,
    isReferenced: () => false,
    testAndClearReferenced: () => false,
    isDirty: () => false,
    now: () => 0,
    nextUse,
    random: () => 0,
  };
}

describe('vmlab replay --opt-tie and exercises', () => {
  const ref = join(dir, 'ostep.txt');
  writeFileSync(ref, OSTEP);
  const vmlab = (...args: string[]) => spawnSync('node', [cli, 'replay', ...args], { encoding: 'utf8' });

  it('--opt-tie mru evicts 3 at the second 2, and says so in the ARG line', () => {
    const out = vmlab(ref, '--frames', '3', '--policy', 'opt', '--opt-tie', 'mru', '--verbose');
    expect(out.status).toBe(0);
    expect(out.stdout).toContain('ARG policy opt (ties: mru)');
    expect(out.stdout).toMatch(/ref +9: page 2 R MISS evict 3 /);
  });

  it('refuses an unknown rule, and a rule for another policy', () => {
    const bad = vmlab(ref, '--frames', '3', '--policy', 'opt', '--opt-tie', 'newest');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("--opt-tie: 'newest' is not earliest, latest, lru, mru");
    const other = vmlab(ref, '--frames', '3', '--policy', 'fifo', '--opt-tie', 'lru');
    expect(other.status).toBe(2);
    expect(other.stderr).toContain('--opt-tie: only for --policy opt');
  });

  it('--generate works out unopt, mru and opt with a tie rule', () => {
    const answers = (policy: string, ...more: string[]) =>
      vmlab(
        '--generate',
        '12',
        '--max-page',
        '5',
        '--frames',
        '3',
        '--policy',
        policy,
        '-s',
        '4',
        '-c',
        ...more,
      );
    const refs = (out: string) => /ARG references (.*)/.exec(out)![1]!.split(',').map(Number);
    for (const [policy, rule, more] of [
      ['unopt', 'unopt', []],
      ['mru', 'mru', []],
      ['opt', 'opt-latest', ['--opt-tie', 'latest']],
    ] as const) {
      const out = answers(policy, ...more);
      expect(out.status, out.stderr).toBe(0);
      const m = model(rule, refs(out.stdout), 3);
      expect(out.stdout).toContain(`FINALSTATS hits ${12 - m.faults} misses ${m.faults}`);
    }
    expect(answers('opt', '--opt-tie', 'latest').stdout).toContain('ARG policy opt (ties: latest)');
    expect(answers('belady').stderr).toContain("--policy: 'belady' is not one of");
  });
});
