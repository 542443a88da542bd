/**
 * Paging formats named on the command line or in a workload: a preset name, or a YAML/JSON
 * file describing a custom format. The file's fields:
 *
 *   name: tiny                  # optional; defaults to the file name
 *   pageSize: 32                # bytes (or 4K …): a power of two from 16 B to 64 KiB
 *   levels: [5, 5]              # index bits per level, root first (1 to 5 levels)
 *   entryBytes: 1               # 1, 2, 4 or 8
 *   flags: { valid: 7 }         # bit positions; absent flags are unsupported
 *   pfn: { shift: 0, width: 7 } # the frame-number field
 *   reservedBits: [[8, 9]]      # optional: must-be-zero ranges
 *   permissions: all-levels     # or leaf-only (RISC-V style); default all-levels
 *   hugePageBit: 7              # optional: x86 PS in non-leaf entries (faults as reserved)
 *
 * Flag names: present (alias valid), readable, writable, user, accessed, dirty, global,
 * noExecute, execute.
 */
import { existsSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { z } from 'zod';
import { compileFormat, FormatError, type PagingFormat } from '../hw/paging/format.ts';
import { PRESET_NAMES, presetFormat } from '../hw/paging/presets.ts';
import { InputError, loadConfigFile } from './configfile.ts';
import { parseSize } from './units.ts';

const bit = z.number().int().min(0).max(63);

const sizeField = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const n = parseSize(v);
  if (n === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a size such as 32, 4K or 64KiB, got '${v}'` });
    return z.NEVER;
  }
  return n;
});

export const formatFileSchema = z.strictObject({
  name: z.string().min(1).optional(),
  pageSize: sizeField,
  levels: z.array(z.number().int().min(1).max(20)).min(1).max(5),
  entryBytes: z.union([z.literal(1), z.literal(2), z.literal(4), z.literal(8)]),
  flags: z.strictObject({
    present: bit.optional(),
    valid: bit.optional(),
    readable: bit.optional(),
    writable: bit.optional(),
    user: bit.optional(),
    accessed: bit.optional(),
    dirty: bit.optional(),
    global: bit.optional(),
    noExecute: bit.optional(),
    execute: bit.optional(),
  }),
  pfn: z.strictObject({ shift: bit, width: z.number().int().min(1).max(52) }),
  reservedBits: z.array(z.tuple([bit, bit])).optional(),
  permissions: z.enum(['all-levels', 'leaf-only']).default('all-levels'),
  hugePageBit: bit.optional(),
});

/**
 * The paging format called `nameOrPath`: a preset name, or a format file. Throws InputError
 * naming the file and field for a bad file, or listing the presets for an unknown name.
 */
export function resolveFormat(nameOrPath: string): PagingFormat {
  const preset = presetFormat(nameOrPath);
  if (preset !== undefined) return preset;
  if (!existsSync(nameOrPath)) {
    throw new InputError(
      `format '${nameOrPath}' is neither a preset (${PRESET_NAMES.join(', ')}) nor a readable format file`,
    );
  }
  return loadFormatFile(nameOrPath);
}

/** Load and compile a custom format file. */
export function loadFormatFile(path: string): PagingFormat {
  const f = loadConfigFile(path, formatFileSchema);
  if (f.flags.present !== undefined && f.flags.valid !== undefined) {
    throw new InputError(`${path}: flags: give 'present' or its alias 'valid', not both`);
  }
  const { valid, present, ...rest } = f.flags;
  try {
    return compileFormat({
      name: f.name ?? basename(path, extname(path)),
      pageBytes: f.pageSize,
      levelBits: f.levels,
      entryBytes: f.entryBytes,
      flags: { ...rest, present: present ?? valid },
      pfn: f.pfn,
      reservedBits: f.reservedBits,
      hugePageBit: f.hugePageBit,
      permissionScope: f.permissions,
    });
  } catch (err) {
    if (err instanceof FormatError)
      throw new InputError(`${path}: ${fieldAlias(err.field)}: ${err.message.slice(err.field.length + 2)}`);
    throw err;
  }
}

/** Map compileFormat's field names back to the file's names. */
function fieldAlias(field: string): string {
  return field.replace(/^pageBytes/, 'pageSize').replace(/^levelBits/, 'levels');
}

/**
 * `base` with a different page size (for `vmlab replay --page-size`): the same entry layout,
 * with one-page tables of (pageBytes / entryBytes) entries and as many levels as cover the
 * base's virtual-address width (the root level takes what is left over).
 */
export function withPageSize(base: PagingFormat, pageBytes: number): PagingFormat {
  if (pageBytes === base.pageBytes) return base;
  const pageShift = Math.log2(pageBytes);
  if (!Number.isInteger(pageShift) || pageBytes < 16 || pageBytes > 65536) {
    throw new InputError(`--page-size: ${pageBytes} is not a power of two from 16 to 64K`);
  }
  const perLevel = pageShift - Math.log2(base.entryBytes);
  const spanBits = base.vaBits - pageShift;
  if (perLevel < 1 || spanBits < 1)
    throw new InputError(`--page-size: ${pageBytes}-byte pages do not fit ${base.name}`);
  const levels = Math.ceil(spanBits / perLevel);
  if (levels > 5)
    throw new InputError(`--page-size: ${pageBytes}-byte pages would need ${levels} levels in ${base.name}`);
  const levelBits = new Array<number>(levels).fill(perLevel);
  levelBits[0] = spanBits - perLevel * (levels - 1);
  try {
    return compileFormat({ ...base.spec, name: `${base.name}/${pageBytes}`, pageBytes, levelBits });
  } catch (err) {
    if (err instanceof FormatError) throw new InputError(`--page-size: ${err.message}`);
    throw err;
  }
}
