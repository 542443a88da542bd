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

/**
 * The module in `path` (resolved against the working directory). InputError naming the file
 * when it is missing or fails to load.
 */
export async function loadModuleFile(path: string, what: string): Promise<Record<string, unknown>> {
  const file = resolve(path);
  if (!existsSync(file)) throw new InputError(`${path}: no such file (expected ${what})`);
  try {
    return await importModule(file);
  } catch (err) {
    throw new InputError(`${path}: cannot load: ${firstLines((err as Error).message)}`);
  }
}

/**
 * Import a TypeScript or JavaScript file as an ES module. A .ts file outside any package with
 * `"type": "module"` (a student's folder) is taken for CommonJS by the loader and fails with
 * ERR_REQUIRE_CYCLE_MODULE; it is then imported through tsx's own import, whose CommonJS
 * wrapping (`{ default: module.exports }`) is undone.
 */
async function importModule(file: string): Promise<Record<string, unknown>> {
  try {
    return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_REQUIRE_CYCLE_MODULE') throw err;
  }
  const { tsImport } = await import('tsx/esm/api');
  const mod = (await tsImport(pathToFileURL(file).href, import.meta.url)) as Record<string, unknown>;
  const inner = mod.default as Record<string, unknown> | undefined;
  return inner !== null && typeof inner === 'object' && 'default' in inner ? inner : mod;
}

async function loadDefault(path: string, what: string): Promise<unknown> {
  const mod = await loadModuleFile(path, what);
  if (mod.default === undefined) throw new InputError(`${path}: no default export (expected ${what})`);
  return mod.default;
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

/** An error's message without a stack, at most two lines joined (a transform error names the spot on its second). */
function firstLines(message: string): string {
  const lines = message
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  return lines[0]?.endsWith(':') ? lines.slice(0, 2).join(' ') : (lines[0] ?? '');
}
