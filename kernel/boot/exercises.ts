/**
 * Generated exercises, as OSTEP's homework simulators make them: a seed gives a problem; without
 * -c the questions are printed with blanks, with -c (compute) the answers follow, worked by the
 * same MMU and replacement code that everything else uses.
 *
 * - Translation: a random physical memory holding a two-level page table in the tiny format
 *   (15-bit addresses, 32-byte pages, 1-byte entries: a valid bit and a 7-bit frame number),
 *   a page-directory base register, and virtual addresses to translate.
 * - Replacement: a random reference string to run through a policy with N frames.
 *
 * The one-level (linear) translation exercise, OSTEP's paging-linear-translate.py, is in
 * exercise-linear.ts.
 */
import { ACCESS_READ, MODE_USER } from '../hw/mmu.ts';
import { compileFormat, type PagingFormat } from '../hw/paging/format.ts';
import { Prng } from '../lib/prng.ts';
import type { OptTie } from '../mm/policy/types.ts';
import { replayTrace } from './replay.ts';
import { parseTrace } from './traces.ts';
import { explainTranslation, makeTranslateMachine, renderTranslation } from './translate.ts';

/** The textbook format: 15-bit VA, 32-byte pages, two levels of 5 bits, 1-byte PTEs (valid bit 7). */
export const TINY_FORMAT: PagingFormat = compileFormat({
  name: 'tiny',
  pageBytes: 32,
  levelBits: [5, 5],
  entryBytes: 1,
  flags: { present: 7 },
  pfn: { shift: 0, width: 7 },
  permissionScope: 'all-levels',
});

/** A translation exercise: its text, with the answers when `compute`. */
export function translationExercise(options: { seed: number; count: number; compute: boolean }): string {
  const fmt = TINY_FORMAT;
  const prng = new Prng(options.seed);
  const frames = 128;
  const { mem, mmu } = makeTranslateMachine(fmt, frames);
  // Fill memory with random bytes (OSTEP style), then build a page directory and a few tables.
  const image = new Uint8Array(frames * fmt.pageBytes);
  for (let i = 0; i < image.length; i++) image[i] = prng.below(256) & 0x7f; // invalid entries by default
  const pdbr = prng.below(frames);
  const used = new Set<number>([pdbr]);
  const pick = (): number => {
    for (;;) {
      const f = prng.below(frames);
      if (!used.has(f)) {
        used.add(f);
        return f;
      }
    }
  };
  const mapped: number[] = []; // (directory index << 5 | table index) of every valid page
  for (let d = 0; d < 32; d++) {
    if (prng.below(4) !== 0) continue; // about a quarter of the directory is valid
    const table = pick();
    image[pdbr * fmt.pageBytes + d] = 0x80 | table;
    for (let t = 0; t < 32; t++) {
      const valid = prng.below(2) === 0;
      image[table * fmt.pageBytes + t] = valid ? 0x80 | prng.below(frames) : 0x7f;
      if (valid) mapped.push((d << 5) | t);
    }
  }
  mem.writeBytes(0, image);
  const out: string[] = [
    `ARG seed ${options.seed}`,
    'ARG allocated 128 frames of 32 bytes (4 KiB of physical memory)',
    'ARG format: 15-bit virtual addresses, two levels of 5 index bits, 5-bit offset',
    'ARG entries: 1 byte, bit 7 valid, bits 0-6 frame number',
    '',
  ];
  for (let f = 0; f < frames; f++) {
    out.push(
      `page ${String(f).padStart(3)}: ${[...image.subarray(f * 32, f * 32 + 32)].map((b) => b.toString(16).padStart(2, '0')).join(' ')}`,
    );
  }
  out.push('', `PDBR: ${pdbr}  (decimal) [This means the page directory is held in this frame]`, '');
  for (let q = 0; q < options.count; q++) {
    // About half the questions name a mapped page (they translate), the rest any address
    // (mostly faults at one level or the other), as OSTEP's exercise mixes them.
    const vpn = mapped.length > 0 && prng.below(2) === 0 ? mapped[prng.below(mapped.length)]! : -1;
    const va = BigInt(
      vpn >= 0 ? vpn * fmt.pageBytes + prng.below(fmt.pageBytes) : prng.below(2 ** fmt.vaBits),
    );
    if (!options.compute) {
      out.push(
        `Virtual Address 0x${va.toString(16).padStart(4, '0')}: Translates To What Physical Address (And Fetches what Value)? Or Fault?`,
      );
      continue;
    }
    const rep = explainTranslation(mem, mmu, va, { rootFrame: pdbr, access: ACCESS_READ, mode: MODE_USER });
    out.push(renderTranslation(fmt, rep));
  }
  return `${out.join('\n')}\n`;
}

/**
 * A replacement exercise: a reference string, and with `compute` the run worked through (the
 * replay knows the string's future, so opt and unopt work too; `optTie` is opt's tie rule).
 */
export function replacementExercise(options: {
  seed: number;
  count: number;
  maxPage: number;
  frames: number;
  policy: string;
  optTie?: OptTie;
  compute: boolean;
}): string {
  const prng = new Prng(options.seed);
  const refs = Array.from({ length: options.count }, () => prng.below(options.maxPage + 1));
  const out = [
    `ARG seed ${options.seed}`,
    `ARG policy ${options.policy}${options.optTie === undefined ? '' : ` (ties: ${options.optTie})`}`,
    `ARG frames ${options.frames}`,
    `ARG references ${refs.join(',')}`,
    '',
  ];
  if (!options.compute) {
    out.push(
      'Assuming a replacement policy of ' +
        options.policy +
        ', and a cache size of ' +
        options.frames +
        ' pages,',
    );
    out.push('figure out whether each of the following page references hit or miss in the page cache.');
    out.push('');
    for (const r of refs) out.push(`Access: ${r}  Hit/Miss?  State of Memory?`);
    return `${out.join('\n')}\n`;
  }
  const trace = parseTrace('generated', refs.join(','), {
    format: 'pages',
    pageBytes: 4096,
    vaLimit: 2 ** 48,
  });
  const r = replayTrace({
    trace,
    frames: options.frames,
    policy: options.policy,
    optTie: options.optTie,
    machine: { memoryBytes: 16 * 1024 * 1024 },
    verbose: true,
  });
  out.push(
    ...(r.lines ?? []),
    '',
    `FINALSTATS hits ${r.references - r.faults} misses ${r.faults} hitrate ${(100 * (1 - r.faults / r.references)).toFixed(2)}`,
  );
  return `${out.join('\n')}\n`;
}
