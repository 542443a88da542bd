/**
 * Helpers of the mremap tests: the VMAs of a range as /proc/PID/maps lists them, the commit
 * charge checked against the VM_ACCOUNT VMAs, a machine whose sandbox holds a patterned file,
 * and a check that free and committed pages come back after a run.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect } from 'vitest';
import type { AddressSpace } from '../../kernel/mm/mm.ts';
import { VM_ACCOUNT } from '../../kernel/mm/vma.ts';
import { meminfoFields } from '../../kernel/observe/procsys.ts';
import type { Task } from '../../kernel/proc/task.ts';
import type { Syscalls, UserMain } from '../../kernel/proc/uapi.ts';
import { bootTestMachine, PAGE, settleFreePages, type TestMachine } from './kernel.ts';

/** The VMAs (maps entries) overlapping [start, end). */
export function vmasIn(sys: Syscalls, start: number, end: number) {
  return sys.vmlab_maps().filter((e) => e.end > start && e.start < end);
}

/** The lengths in pages of the VMAs overlapping [start, end), joined: '2,6'. */
export function lengthsIn(sys: Syscalls, start: number, end: number): string {
  return vmasIn(sys, start, end)
    .map((e) => (e.end - e.start) / PAGE)
    .join();
}

/** Pages `mm` has committed beyond what its VM_ACCOUNT VMAs add up to (0 when the charge is right). */
export function chargeDrift(mm: AddressSpace): number {
  let pages = 0;
  for (const v of mm.vmas.all()) if ((v.flags & VM_ACCOUNT) !== 0) pages += v.length / PAGE;
  return mm.committedPages - pages;
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/**
 * A machine whose sandbox holds /f.bin of `pages` pages, the first byte of page i being
 * 0x40 + i (the directory goes after the test).
 */
export function fileMachine(
  pages: number,
  options: { memoryMiB?: number; swapMiB?: number } = {},
): { m: TestMachine; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'vmlab-mremap-'));
  dirs.push(dir);
  const bytes = new Uint8Array(pages * PAGE);
  for (let i = 0; i < pages; i++) bytes[i * PAGE] = 0x40 + i;
  writeFileSync(join(dir, 'f.bin'), bytes);
  return { m: bootTestMachine({ ...options, files: { from: dir, writeThrough: true } }), dir };
}

/** Byte `at` of the host's /f.bin. */
export const hostByte = (dir: string, at: number): number => readFileSync(join(dir, 'f.bin'))[at]!;

/** /proc/meminfo's Dirty, in kB. */
export const dirtyKb = (m: TestMachine): number => meminfoFields(m.kernel).find(([k]) => k === 'Dirty')![1];

/** The free and committed pages now; the check it returns expects both back (nothing leaked). */
export function baseline(m: TestMachine): () => void {
  const free0 = settleFreePages(m);
  const committed0 = m.kernel.committedAs;
  return () => {
    expect(m.kernel.committedAs).toBe(committed0);
    expect(settleFreePages(m)).toBe(free0);
  };
}

/**
 * Run `main` as a process of `m` to the end: it must exit 0 and leave behind no free page or
 * commit charge it took (the baseline is taken before it starts).
 */
export function runLeakFree(m: TestMachine, main: UserMain): Task {
  const nothingLeft = baseline(m);
  const t = m.start(main);
  m.runToEnd();
  expect(t.waitStatus).toBe(0);
  nothingLeft();
  return t;
}
