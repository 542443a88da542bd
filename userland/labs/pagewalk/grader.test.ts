/**
 * Lab 1 grader: page walks.
 *
 *   VMLAB_STUDENT=path/to/walk.ts npx vitest run --config test/vitest.config.ts userland/labs/pagewalk
 *
 * Without VMLAB_STUDENT it grades the reference solution. Part A: the answers to the student's
 * generated exercise (`vmlab translate --generate 8 -s SEED`), worked out again here by the
 * same MMU. Part B: the student's walker against the MMU on random page tables of several
 * formats, with every access kind and both modes; entries have random flags, reserved bits,
 * frames beyond memory and huge-page bits, so that every fault kind comes up.
 */
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { translationExercise } from '../../../kernel/boot/exercises.ts';
import { loadFunctionFile, loadModuleFile } from '../../../kernel/boot/studentcode.ts';
import { makeTranslateMachine } from '../../../kernel/boot/translate.ts';
import { ACCESS_EXECUTE, ACCESS_READ, ACCESS_WRITE, MODE_KERNEL, MODE_USER } from '../../../kernel/hw/mmu.ts';
import { compileFormat, type FormatSpec, type PagingFormat } from '../../../kernel/hw/paging/format.ts';
import { PRESET_FORMATS } from '../../../kernel/hw/paging/presets.ts';
import type { PhysicalMemory } from '../../../kernel/hw/physmem.ts';
import { Prng } from '../../../kernel/lib/prng.ts';
import type { Access, Mode, PartAAnswers, Walker, WalkResult } from './walker.ts';

const STUDENT = process.env.VMLAB_STUDENT ?? resolve(import.meta.dirname, 'solution.ts');
const QUESTIONS = 8;
let walk: Walker;
let partA: PartAAnswers | undefined;

beforeAll(async () => {
  walk = await loadFunctionFile<Walker>(STUDENT, 'a page-walk function');
  partA = (await loadModuleFile(STUDENT, 'a page-walk lab file')).partA as PartAAnswers | undefined;
});

/** The custom format of part B: 3 levels of 16 entries, 2-byte entries, 256-byte pages. */
const LAB3: FormatSpec = {
  name: 'lab3',
  pageBytes: 256,
  levelBits: [4, 4, 4],
  entryBytes: 2,
  flags: { present: 0, writable: 1, user: 2, accessed: 3, dirty: 4, noExecute: 5 },
  pfn: { shift: 6, width: 8 },
  reservedBits: [[15, 15]],
  permissionScope: 'all-levels',
};

const FORMATS: Array<{ fmt: PagingFormat; frames: number }> = [
  {
    fmt: compileFormat({
      ...LAB3,
      name: 'tiny',
      pageBytes: 32,
      levelBits: [5, 5],
      entryBytes: 1,
      flags: { present: 7 },
      pfn: { shift: 0, width: 7 },
      reservedBits: [],
    }),
    frames: 100,
  },
  { fmt: compileFormat(LAB3), frames: 200 },
  { fmt: PRESET_FORMATS['x86-32']!, frames: 160 },
  { fmt: PRESET_FORMATS.sv39!, frames: 160 },
  { fmt: PRESET_FORMATS['x86-64']!, frames: 200 },
];

/** Write `value` as the entry at `pa`, little-endian. */
function writeEntry(mem: PhysicalMemory, fmt: PagingFormat, pa: number, value: bigint): void {
  for (let i = 0; i < fmt.entryBytes; i++) mem.write8(pa + i, Number((value >> BigInt(8 * i)) & 0xffn));
}

/** A random entry: flags by chance (R/W/X rarely above the leaf of a leaf-only format), then oddities. */
function randomEntry(fmt: PagingFormat, prng: Prng, pfn: number, leaf: boolean): bigint {
  const spec = fmt.spec;
  const chance = (percent: number) => prng.below(100) < percent;
  let e = BigInt(pfn) << BigInt(spec.pfn.shift);
  for (const [flag, position] of Object.entries(spec.flags)) {
    let percent = 75;
    if (flag === 'present') percent = 92;
    else if (flag === 'noExecute') percent = 25;
    else if (fmt.permissionScope === 'leaf-only' && ['readable', 'writable', 'execute'].includes(flag))
      percent = leaf ? 70 : 6;
    if (chance(percent)) e |= 1n << BigInt(position);
  }
  if (spec.hugePageBit !== undefined && chance(5)) e |= 1n << BigInt(spec.hugePageBit);
  const reserved = spec.reservedBits ?? [];
  if (reserved.length > 0 && chance(6)) {
    const [first, last] = reserved[prng.below(reserved.length)]!;
    e |= 1n << BigInt(first + prng.below(last - first + 1));
  }
  return e;
}

/** Random tables over `frames` frames: paths for clustered addresses; the addresses to ask about. */
function buildTables(
  fmt: PagingFormat,
  frames: number,
  mem: PhysicalMemory,
  prng: Prng,
): { root: number; vas: number[] } {
  const free = Array.from({ length: frames }, (_, i) => i);
  for (let i = free.length - 1; i > 0; i--) {
    const j = prng.below(i + 1);
    [free[i], free[j]] = [free[j]!, free[i]!];
  }
  const root = free.pop()!;
  const tableFrames = new Set<number>([root]);
  const choices = fmt.levelBits.map((b) => Array.from({ length: 3 }, () => prng.below(2 ** b)));
  const vas: number[] = [];
  for (let n = 0; n < 60; n++) {
    let va = 0;
    for (let l = 0; l < fmt.levels; l++) {
      const ix = prng.below(5) === 0 ? prng.below(2 ** fmt.levelBits[l]!) : choices[l]![prng.below(3)]!;
      va += ix * fmt.levelDivisor[l]!;
    }
    va += prng.below(fmt.pageBytes);
    vas.push(va);
    let table = root;
    for (let l = 0; l < fmt.levels; l++) {
      const pa =
        table * fmt.pageBytes + (Math.floor(va / fmt.levelDivisor[l]!) & fmt.levelMask[l]!) * fmt.entryBytes;
      let e = 0n;
      for (let i = 0; i < fmt.entryBytes; i++) e |= BigInt(mem.read8(pa + i)) << BigInt(8 * i);
      const leaf = l === fmt.levels - 1;
      if (e === 0n) {
        const outside = prng.below(100) < 4;
        const next = outside
          ? Math.min(fmt.maxPfn, frames + prng.below(8))
          : leaf
            ? prng.below(frames)
            : free.pop();
        if (next === undefined) break;
        if (!leaf && !outside) tableFrames.add(next);
        e = randomEntry(fmt, prng, next, leaf);
        writeEntry(mem, fmt, pa, e);
      }
      const pfn = Number((e >> BigInt(fmt.pfnShift)) & ((1n << BigInt(fmt.pfnWidth)) - 1n));
      if (!tableFrames.has(pfn)) break;
      table = pfn;
    }
  }
  for (let n = 0; n < 10; n++) vas.push(prng.below(2 ** Math.min(fmt.vaBits, 52)));
  return { root, vas };
}

const ACCESSES: Array<[Access, typeof ACCESS_READ | typeof ACCESS_WRITE | typeof ACCESS_EXECUTE]> = [
  ['read', ACCESS_READ],
  ['write', ACCESS_WRITE],
  ['execute', ACCESS_EXECUTE],
];
const MODES: Array<[Mode, typeof MODE_USER | typeof MODE_KERNEL]> = [
  ['user', MODE_USER],
  ['kernel', MODE_KERNEL],
];

const show = (r: WalkResult | undefined) =>
  r === undefined
    ? 'nothing'
    : 'pa' in r
      ? `PA 0x${r.pa.toString(16)}`
      : `${r.fault} fault at level ${r.level}`;

describe('lab 1, part A: translations by hand', () => {
  it(`answers the ${QUESTIONS} questions of the generated exercise`, () => {
    expect(partA, 'the file exports partA').toBeDefined();
    const { seed, answers } = partA!;
    const text = translationExercise({ seed, count: QUESTIONS, compute: true });
    const want = [...text.matchAll(/--> (?:PA (0x[0-9a-f]+).*byte there (0x[0-9a-f]+)|FAULT)/g)].map((m) =>
      m[1] === undefined ? 'fault' : `${Number(m[1])} ${Number(m[2])}`,
    );
    const got = answers.map((a) => {
      const t = a.trim().toLowerCase();
      if (t === 'fault') return 'fault';
      const parts = t.split(/\s+/).map((x) => Number(x));
      return parts.length === 2 && parts.every((x) => Number.isInteger(x))
        ? `${parts[0]} ${parts[1]}`
        : `unreadable '${a}'`;
    });
    expect(got.length, `${QUESTIONS} answers`).toBe(QUESTIONS);
    for (let q = 0; q < QUESTIONS; q++) expect(got[q], `seed ${seed}, question ${q + 1}`).toBe(want[q]);
  });
});

describe('lab 1, part B: the walker agrees with the MMU', () => {
  /** Outcomes seen (PA or fault kind), so that the tables are known to reach every case. */
  const seen = new Set<string>();

  for (const { fmt, frames } of FORMATS) {
    it(`on random ${fmt.name} tables`, () => {
      for (let seed = 1; seed <= 4; seed++) {
        const prng = new Prng(seed * 97 + fmt.levels);
        const { mem, mmu } = makeTranslateMachine(fmt, frames);
        const { root, vas } = buildTables(fmt, frames, mem, prng);
        const machine = {
          format: fmt.spec,
          frames,
          root,
          readEntry: (pa: number): bigint => {
            if (!Number.isInteger(pa) || pa < 0 || pa + fmt.entryBytes > frames * fmt.pageBytes)
              throw new Error(`readEntry(0x${pa.toString(16)}): outside physical memory`);
            let e = 0n;
            for (let i = 0; i < fmt.entryBytes; i++) e |= BigInt(mem.read8(pa + i)) << BigInt(8 * i);
            return e;
          },
        };
        mmu.switchAddressSpace(root, 0);
        for (const va of vas) {
          for (const [access, a] of ACCESSES) {
            for (const [mode, md] of MODES) {
              const got = walk(machine, va, access, mode);
              mmu.flushTlb();
              const pa = mmu.translate(va, a, md);
              const want: WalkResult =
                pa >= 0 ? { pa } : { fault: mmu.fault.kind as 'bus', level: mmu.fault.level };
              seen.add(`${fmt.name} ${'pa' in want ? 'pa' : want.fault}`);
              expect(
                show(got),
                `${fmt.name}, seed ${seed}: ${access} of 0x${va.toString(16)} in ${mode} mode`,
              ).toBe(show(want));
            }
          }
        }
      }
    });
  }

  it('tried every outcome (checks the grader itself)', () => {
    const kinds = new Set([...seen].map((s) => s.split(' ')[1]));
    expect([...kinds].sort()).toEqual(['bus', 'not-present', 'pa', 'protection', 'reserved']);
    for (const { fmt } of FORMATS)
      expect(seen.has(`${fmt.name} pa`), `${fmt.name}: some walks succeed`).toBe(true);
  });
});
