/**
 * Loading students' code for the labs: a TypeScript (or JavaScript) file whose default export is
 * the thing the lab asks for (a replacement policy class, an allocator class, a walker function).
 * Files load through tsx, as vmlab's own sources do. A file that cannot be loaded or exports the
 * wrong thing is refused with the file's name and what was expected (exit status 2).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Libc } from '../../userland/libc/libc.ts';
import type { Allocator } from '../../userland/malloc/allocator.ts';
import type { PolicyFactory, PolicyOptions, ReplacementPolicy } from '../mm/policy/types.ts';
import { InputError } from './configfile.ts';

async function loadDefault(path: string, what: string): Promise<unknown> {
  const file = resolve(path);
  if (!existsSync(file)) throw new InputError(`${path}: no such file (expected ${what})`);
  try {
    const mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
    if (mod.default === undefined) throw new InputError(`${path}: no default export (expected ${what})`);
    return mod.default;
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`${path}: cannot load: ${(err as Error).message.split('\n')[0]}`);
  }
}

/** A policy class from a file: `export default class MyPolicy implements ReplacementPolicy`. */
export async function loadPolicyFile(path: string): Promise<PolicyFactory> {
  const cls = (await loadDefault(path, 'a replacement policy class')) as new (
    o: PolicyOptions,
  ) => ReplacementPolicy;
  if (typeof cls !== 'function') throw new InputError(`${path}: the default export is not a class`);
  return (options) => new cls(options);
}

/** An allocator class from a file: `export default class MyAllocator implements Allocator`. */
export async function loadAllocatorFile(path: string): Promise<(libc: Libc) => Allocator> {
  const cls = (await loadDefault(path, 'an allocator class')) as new (libc: Libc) => Allocator;
  if (typeof cls !== 'function') throw new InputError(`${path}: the default export is not a class`);
  return (libc) => new cls(libc);
}

/** A function from a file (the page-walk lab's walker). */
export async function loadFunctionFile<F>(path: string, what: string): Promise<F> {
  const fn = await loadDefault(path, what);
  if (typeof fn !== 'function')
    throw new InputError(`${path}: the default export is not a function (expected ${what})`);
  return fn as F;
}
