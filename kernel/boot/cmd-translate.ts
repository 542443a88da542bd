/** `vmlab translate`: explain page walks on a memory image, or make an exercise of them. */
import type { Command } from 'commander';
import {
  ACCESS_EXECUTE,
  ACCESS_READ,
  ACCESS_WRITE,
  type AccessKind,
  type CpuMode,
  MODE_KERNEL,
  MODE_USER,
} from '../hw/mmu.ts';
import { InputError } from './configfile.ts';
import { LINEAR_LIMITS, type LinearExerciseOptions, linearExercise } from './exercise-linear.ts';
import { translationExercise } from './exercises.ts';
import { resolveFormat } from './formatfile.ts';
import { type ImageForm, loadMemoryImage } from './memimage.ts';
import {
  explainTranslation,
  makeTranslateMachine,
  renderTranslateArgs,
  renderTranslation,
} from './translate.ts';
import { parseAddress, parseSize } from './units.ts';

const ACCESSES: Record<string, AccessKind> = {
  read: ACCESS_READ,
  write: ACCESS_WRITE,
  execute: ACCESS_EXECUTE,
  exec: ACCESS_EXECUTE,
};
const MODES: Record<string, CpuMode> = { user: MODE_USER, kernel: MODE_KERNEL };

/**
 * The options only --linear takes, and those it refuses besides --access (its memory and table
 * are its own); FLAG spells each as the user writes it.
 */
const LINEAR_ONLY = ['addressSpace', 'physMem', 'pageSize', 'used', 'verbose', 'addresses'] as const;
const NOT_LINEAR = ['format', 'image', 'root', 'imageForm', 'frames', 'mode', 'json'] as const;
const FLAG: Record<(typeof LINEAR_ONLY)[number] | (typeof NOT_LINEAR)[number], string> = {
  addressSpace: '--address-space',
  physMem: '--phys-mem',
  pageSize: '--page-size',
  used: '--used',
  verbose: '--verbose',
  addresses: '--addresses',
  format: '--format',
  image: '--image',
  root: '--root',
  imageForm: '--image-form',
  frames: '--frames',
  mode: '--mode',
  json: '--json',
};

export function registerTranslate(program: Command): void {
  program
    .command('translate')
    .description('walk the page tables in a physical memory image for one or more virtual addresses')
    .argument('[address...]', 'virtual addresses (0x… hex, decimal or 0b… binary)')
    .option('-f, --format <name|file>', 'paging format: x86-32, sv39, x86-64, x86-64-la57, or a format file')
    .option('-i, --image <file>', "physical memory image: raw binary, or text lines 'page N: b0 b1 …'")
    .option('-r, --root <frame>', 'frame number of the root table (PDBR / CR3 / satp)')
    .option('--image-form <form>', 'auto, raw or text', 'auto')
    .option(
      '--frames <n>',
      'physical frames in the machine (default: what the PFN field can name, at most 2^20)',
    )
    .option('-a, --access <kind>', 'read, write or execute', 'read')
    .option('-m, --mode <mode>', 'user or kernel', 'user')
    .option('--json', 'print the walks as JSON')
    .option('-g, --generate <n>', 'make an exercise instead: a random memory and N addresses (OSTEP style)')
    .option('-s, --seed <n>', 'seed for --generate or --linear', '0')
    .option('-c, --compute', 'with --generate or --linear: print the answers too')
    .option('--linear', "a one-level (linear) page-table exercise, as OSTEP's paging-linear-translate.py")
    .option('--address-space <size>', "with --linear: address-space size (OSTEP's -a)", '16k')
    .option('-p, --phys-mem <size>', 'with --linear: physical memory size', '64k')
    .option('-P, --page-size <size>', 'with --linear: page size', '4k')
    .option('-u, --used <percent>', 'with --linear: percent of the virtual pages that are valid', '50')
    .option('-v, --verbose', 'with --linear: print the VPN beside each page-table entry')
    .option(
      '-A, --addresses <list>',
      'with --linear: comma-separated addresses to translate, instead of N random ones',
    )
    .addHelpText(
      'after',
      `
Examples:
  vmlab translate -f docs/examples/tiny-format.yaml -i docs/examples/tiny-image.txt -r 0x6c 0x611c 0x3da8
  vmlab translate -f x86-32 -i mem.bin -r 1 0x00401234 --access write --json
  vmlab translate --generate 5 -s 3          # an exercise: questions only
  vmlab translate --generate 5 -s 3 -c       # the same exercise with its answers
  vmlab translate --linear -s 1 -c           # OSTEP's paging-linear-translate.py -s 1 -c
  vmlab translate --linear --generate 0 -P 1k --address-space 1m -p 512m -v   # the table only
  vmlab translate --linear -A 0x3a39,0x1234 -u 100 -c

With --linear, OSTEP's -n N is --generate N (default 5), and its -a is --address-space
(-a is --access here); -p, -P, -u, -v, -A, -s and -c are OSTEP's.`,
    )
    .action((addresses: string[], opts: Record<string, string | boolean | undefined>, cmd: Command) => {
      if (opts.linear === true) {
        process.stdout.write(linearExercise(linearOptions(addresses, opts, cmd)));
        return;
      }
      for (const key of LINEAR_ONLY) {
        if (cmd.getOptionValueSource(key) === 'cli') throw new InputError(`${FLAG[key]}: only with --linear`);
      }
      if (opts.generate !== undefined) {
        const count = Number(opts.generate);
        const seed = Number(opts.seed);
        if (!Number.isInteger(count) || count < 1 || count > 1000) {
          throw new InputError(`--generate: '${opts.generate}' is not a count from 1 to 1000`);
        }
        if (!Number.isInteger(seed) || seed < 0)
          throw new InputError(`--seed: '${opts.seed}' is not a whole number`);
        process.stdout.write(translationExercise({ seed, count, compute: opts.compute === true }));
        return;
      }
      for (const name of ['format', 'image', 'root'] as const) {
        if (opts[name] === undefined)
          throw new InputError(`--${name} is required (or use --generate for an exercise)`);
      }
      if (addresses.length === 0) throw new InputError('give at least one virtual address');
      const format = resolveFormat(String(opts.format));
      const access = ACCESSES[String(opts.access)];
      if (access === undefined)
        throw new InputError(`--access: '${opts.access}' is not read, write or execute`);
      const mode = MODES[String(opts.mode)];
      if (mode === undefined) throw new InputError(`--mode: '${opts.mode}' is not user or kernel`);
      const frames =
        opts.frames === undefined ? Math.min(format.maxPfn + 1, 2 ** 20) : parseSize(String(opts.frames));
      if (frames === undefined || frames < 1 || frames > 2 ** 26) {
        throw new InputError(`--frames: '${opts.frames}' is not a frame count from 1 to 2^26`);
      }
      const root = parseAddress(String(opts.root));
      if (root === undefined || root >= BigInt(frames)) {
        throw new InputError(`--root: '${opts.root}' is not a frame number below ${frames}`);
      }
      const form = String(opts.imageForm);
      if (!['auto', 'raw', 'text'].includes(form))
        throw new InputError(`--image-form: '${form}' is not auto, raw or text`);
      const { mem, mmu } = makeTranslateMachine(format, frames);
      const image = String(opts.image);
      loadMemoryImage(mem, image, form as ImageForm);
      const parsed = addresses.map((a) => {
        const v = parseAddress(a);
        if (v === undefined)
          throw new InputError(`address '${a}': not a number (use 0x… hex, decimal or 0b… binary)`);
        return { text: a, value: v };
      });
      const reports = parsed.map((a) =>
        explainTranslation(mem, mmu, a.value, { rootFrame: Number(root), access, mode, label: a.text }),
      );
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify({ format: format.name, image, frames, rootFrame: Number(root), translations: reports }, null, 2)}\n`,
        );
        return;
      }
      const lines = [
        renderTranslateArgs(format, { image, frames, rootFrame: Number(root), access, mode }),
        '',
      ];
      for (const r of reports) lines.push(renderTranslation(format, r), '');
      process.stdout.write(lines.join('\n'));
    });
}

/**
 * The options of a --linear exercise, from the command line. Throws InputError for an option
 * --linear has no use for (its memory is its own), and for unreadable numbers; the exercise
 * checks the rest.
 */
function linearOptions(
  addresses: string[],
  opts: Record<string, string | boolean | undefined>,
  cmd: Command,
): LinearExerciseOptions {
  if (cmd.getOptionValueSource('access') === 'cli') {
    throw new InputError(
      "--access: not with --linear (OSTEP's -a, the address-space size, is --address-space here)",
    );
  }
  for (const key of NOT_LINEAR) {
    if (cmd.getOptionValueSource(key) === 'cli') {
      throw new InputError(`${FLAG[key]}: not with --linear, which makes its own memory and page table`);
    }
  }
  if (addresses.length > 0) {
    throw new InputError(
      `address '${addresses[0]}': with --linear, give addresses with --addresses (OSTEP's -A)`,
    );
  }
  const seed = wholeNumber(opts.seed);
  if (seed === undefined) throw new InputError(`--seed: '${opts.seed}' is not a whole number`);
  const count = opts.generate === undefined ? 5 : wholeNumber(opts.generate);
  if (count === undefined)
    throw new InputError(
      `--generate: '${opts.generate}' is not a count from 0 to ${LINEAR_LIMITS.maxAddresses}`,
    );
  const used = wholeNumber(opts.used);
  if (used === undefined)
    throw new InputError(`--used: '${opts.used}' is not a whole percentage from 0 to 100`);
  return {
    seed,
    addressSpace: String(opts.addressSpace),
    physMem: String(opts.physMem),
    pageSize: String(opts.pageSize),
    usedPercent: used,
    count,
    ...(typeof opts.addresses === 'string' ? { addresses: opts.addresses } : {}),
    verbose: opts.verbose === true,
    compute: opts.compute === true,
  };
}

/** Digits only, as a number (below 2^53); undefined for anything else. */
function wholeNumber(text: string | boolean | undefined): number | undefined {
  if (typeof text !== 'string' || !/^\d+$/.test(text.trim())) return undefined;
  const n = Number(text.trim());
  return Number.isSafeInteger(n) ? n : undefined;
}
