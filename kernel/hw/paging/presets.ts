/** The preset paging formats by name. */
import type { PagingFormat } from './format.ts';
import { sv39 } from './sv39.ts';
import { x86_32 } from './x86_32.ts';
import { x86_64 } from './x86_64.ts';
import { x86_64La57 } from './x86_64_la57.ts';

export const PRESET_FORMATS: Readonly<Record<string, PagingFormat>> = {
  'x86-32': x86_32,
  sv39,
  'x86-64': x86_64,
  'x86-64-la57': x86_64La57,
};

export const PRESET_NAMES = Object.keys(PRESET_FORMATS);

/** The preset called `name`, or undefined. */
export function presetFormat(name: string): PagingFormat | undefined {
  return Object.hasOwn(PRESET_FORMATS, name) ? PRESET_FORMATS[name] : undefined;
}
