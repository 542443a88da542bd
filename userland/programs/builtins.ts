/**
 * Built-in programs, as execve finds them under /bin. Each is a generator over the user API
 * (kernel/proc/uapi.ts): it reaches memory through `cpu` and the kernel through `sys`, and
 * yields at least once per loop iteration.
 */
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  type ProgramImage,
  type ProgramLoader,
  type UserContext,
  type UserMain,
} from '../../kernel/proc/uapi.ts';

const PAGE_GUESS = 4096;

function argNum(ctx: UserContext, i: number, fallback: number): number {
  const v = ctx.argv[i];
  if (v === undefined) return fallback;
  const n = Number(v);
  return Number.isFinite(n) ? n : fallback;
}

/** touch PAGES [ROUNDS]: map PAGES anonymous pages and write then read each page ROUNDS times. */
const touch: UserMain = function* (ctx) {
  const { cpu, sys } = ctx;
  const pages = argNum(ctx, 1, 64);
  const rounds = argNum(ctx, 2, 2);
  const base = sys.mmap(0, pages * PAGE_GUESS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base < 0) return 1;
  for (let r = 0; r < rounds; r++) {
    for (let p = 0; p < pages; p++) {
      const va = base + p * PAGE_GUESS;
      if (r === 0) cpu.store32(va, p);
      else if (cpu.load32(va) !== p) return 2;
      yield;
    }
  }
  return 0;
};

/** cowdemo PAGES: fill a heap, fork, the child writes half the pages, both verify. */
const cowdemo: UserMain = function* (ctx) {
  const { cpu, sys } = ctx;
  const pages = argNum(ctx, 1, 32);
  const start = sys.brk(0);
  const end = sys.brk(start + pages * PAGE_GUESS);
  if (end !== start + pages * PAGE_GUESS) return 1;
  for (let p = 0; p < pages; p++) {
    cpu.store32(start + p * PAGE_GUESS, 1000 + p);
    yield;
  }
  const child = sys.fork(function* (c) {
    for (let p = 0; p < pages / 2; p++) {
      c.cpu.store32(start + p * PAGE_GUESS, 2000 + p);
      yield;
    }
    for (let p = 0; p < pages; p++) {
      const want = p < pages / 2 ? 2000 + p : 1000 + p;
      if (c.cpu.load32(start + p * PAGE_GUESS) !== want) return 3;
      yield;
    }
    return 0;
  });
  if (child < 0) return 4;
  const status = yield* sys.wait4(child, 0, 0);
  if (status !== child) return 5;
  for (let p = 0; p < pages; p++) {
    if (cpu.load32(start + p * PAGE_GUESS) !== 1000 + p) return 6;
    yield;
  }
  return 0;
};

/** segv: touch an unmapped address (the kernel kills it with SIGSEGV). */
const segv: UserMain = function* (ctx) {
  yield;
  ctx.cpu.store8(0x10, 1);
  return 0;
};

/** sleep NS: sleep for NS nanoseconds of emulated time. */
const sleep: UserMain = function* (ctx) {
  yield* ctx.sys.nanosleep(argNum(ctx, 1, 1_000_000));
  return 0;
};

function image(
  path: string,
  main: UserMain,
  sizes: Partial<Omit<ProgramImage, 'path' | 'main'>> = {},
): ProgramImage {
  return {
    path,
    main,
    textBytes: sizes.textBytes ?? 8192,
    dataBytes: sizes.dataBytes ?? 4096,
    bssBytes: sizes.bssBytes ?? 4096,
  };
}

export const BUILTIN_PROGRAMS: Readonly<Record<string, ProgramImage>> = {
  '/bin/touch': image('/bin/touch', touch),
  '/bin/cowdemo': image('/bin/cowdemo', cowdemo),
  '/bin/segv': image('/bin/segv', segv),
  '/bin/sleep': image('/bin/sleep', sleep),
};

/** The loader for built-ins: '/bin/NAME' or just 'NAME'. */
export const loadBuiltin: ProgramLoader = (path) => {
  const full = path.startsWith('/') ? path : `/bin/${path}`;
  return Object.hasOwn(BUILTIN_PROGRAMS, full) ? BUILTIN_PROGRAMS[full] : undefined;
};
