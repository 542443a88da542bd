/**
 * Paging formats named by preset or described in a file (kernel/boot/formatfile.ts): a good
 * file compiles to the format it describes; a bad one is an InputError naming the file and the
 * field, in the file's own words (`pageSize`, `levels`, `valid`).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../kernel/boot/configfile.ts';
import { loadFormatFile, resolveFormat, withPageSize } from '../kernel/boot/formatfile.ts';
import { decodeEntry } from '../kernel/hw/paging/format.ts';
import { PRESET_FORMATS } from '../kernel/hw/paging/presets.ts';

const dir = mkdtempSync(join(tmpdir(), 'vmlab-format-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TINY = [
  'pageSize: 32',
  'levels: [5, 5]',
  'entryBytes: 1',
  'flags: { valid: 7 }',
  'pfn: { shift: 0, width: 7 }',
];

/** Write a format file made of `lines` and return its path. */
function formatFile(name: string, lines: string[]): string {
  const path = join(dir, name);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/** The tiny format with line `key: …` replaced (or added when absent). */
function tinyWith(name: string, key: string, line: string | null): string {
  const lines = TINY.filter((l) => !l.startsWith(`${key}:`));
  if (line !== null) lines.push(line);
  return formatFile(name, lines);
}

/** The InputError message loading `path` gives. */
function refusal(path: string): string {
  try {
    loadFormatFile(path);
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return (err as Error).message;
  }
  throw new Error(`${path} was accepted`);
}

describe('presets', () => {
  it('resolve by name to the compiled preset objects', () => {
    for (const name of ['x86-32', 'sv39', 'x86-64', 'x86-64-la57']) {
      expect(resolveFormat(name)).toBe(PRESET_FORMATS[name]);
    }
    expect(resolveFormat('x86-64').vaBits).toBe(48);
    expect(resolveFormat('x86-64-la57').vaBits).toBe(57);
    expect(resolveFormat('sv39').vaBits).toBe(39);
    expect(resolveFormat('x86-32').vaBits).toBe(32);
  });

  it('an unknown name that is no file lists the presets', () => {
    expect(() => resolveFormat('x86-128')).toThrow(InputError);
    expect(() => resolveFormat('x86-128')).toThrow(
      "format 'x86-128' is neither a preset (x86-32, sv39, x86-64, x86-64-la57) nor a readable format file",
    );
    // Object.prototype names are not presets.
    expect(() => resolveFormat('constructor')).toThrow(InputError);
  });
});

describe('format files', () => {
  it('compile the textbook tiny format of docs/examples', () => {
    const f = resolveFormat('docs/examples/tiny-format.yaml');
    expect(f.name).toBe('tiny');
    expect(f.pageBytes).toBe(32);
    expect(f.levelBits).toEqual([5, 5]);
    expect(f.levelShift).toEqual([10, 5]);
    expect(f.vaBits).toBe(15);
    expect(f.entryBytes).toBe(1);
    expect(f.maxPfn).toBe(127);
    expect(f.permissionScope).toBe('all-levels');
    expect(f.has.present).toBe(true);
    expect(f.has.writable).toBe(false);
    // 0xb5 = valid (bit 7) | frame 0x35.
    expect(decodeEntry(f, 0xb5, 0)).toMatchObject({ present: true, pfn: 0x35 });
    expect(decodeEntry(f, 0x7f, 0)).toMatchObject({ present: false, pfn: 0x7f });
  });

  it('take their name from the file name when they give none, and read sizes with units', () => {
    const f = loadFormatFile(
      formatFile('my-format.yaml', [
        'pageSize: 4K',
        'levels: [10, 10]',
        'entryBytes: 4',
        'flags: { present: 0, writable: 1, user: 2 }',
        'pfn: { shift: 12, width: 20 }',
      ]),
    );
    expect(f.name).toBe('my-format');
    expect(f.pageBytes).toBe(4096);
    expect(f.vaBits).toBe(32);
  });

  it('compile a leaf-only format with reserved bits (fixture)', () => {
    const f = loadFormatFile('test/fixtures/formats/leaf-only.yaml');
    expect(f.name).toBe('leaf-only');
    expect(f.permissionScope).toBe('leaf-only');
    expect(f.vaBits).toBe(6 + 4 + 5);
    expect(f.reserved).toEqual({ lo: 0x80, hi: 0 });
    expect(decodeEntry(f, (0x2a << 8) | 0b10111, 0)).toMatchObject({
      present: true,
      readable: true,
      writable: true,
      execute: false,
      user: true,
      pfn: 0x2a,
      reserved: false,
    });
  });

  it('are JSON too', () => {
    const path = join(dir, 'tiny.json');
    writeFileSync(
      path,
      JSON.stringify({
        pageSize: 32,
        levels: [5, 5],
        entryBytes: 1,
        flags: { valid: 7 },
        pfn: { shift: 0, width: 7 },
      }),
    );
    expect(resolveFormat(path).vaBits).toBe(15);
  });
});

describe('bad format files', () => {
  it('overlapping fields: both fields named, in the file', () => {
    expect(refusal('test/fixtures/formats/overlap-fields.yaml')).toBe(
      'test/fixtures/formats/overlap-fields.yaml: pfn: bit 5 overlaps flags.writable',
    );
    // `valid` is the file's alias of `present`.
    expect(refusal(tinyWith('overlap-valid.yaml', 'flags', 'flags: { valid: 3 }'))).toMatch(
      /overlap-valid\.yaml: pfn: bit 3 overlaps flags\.present$/,
    );
    expect(refusal(tinyWith('overlap-flags.yaml', 'flags', 'flags: { present: 7, dirty: 7 }'))).toMatch(
      /overlap-flags\.yaml: flags\.dirty: bit 7 overlaps flags\.present$/,
    );
  });

  it.each([
    ['48', '48 is not a power of two'],
    ['128K', '131072 is not a power of two from 16 to 65536'],
    ['8', '8 is not a power of two from 16 to 65536'],
    ['0', '0 is not a power of two'],
  ])('an impossible page size %s is refused under its own name', (size, why) => {
    const path = tinyWith(`pagesize-${size}.yaml`, 'pageSize', `pageSize: ${size}`);
    expect(refusal(path)).toContain(`pagesize-${size}.yaml: pageSize: ${why}`);
  });

  it('a page size that is no size at all names the line and column', () => {
    const path = tinyWith('pagesize-lots.yaml', 'pageSize', 'pageSize: lots');
    expect(refusal(path)).toBe(`${path}:5:11: pageSize: expected a size such as 32, 4K or 64KiB, got 'lots'`);
  });

  it('a misspelt key: did you mean, at the key (fixture)', () => {
    const msg = refusal('test/fixtures/formats/typo-key.yaml');
    expect(msg.split('\n')[0]).toBe(
      "test/fixtures/formats/typo-key.yaml:4:1: entryBtyes: unknown key (did you mean 'entryBytes'?)",
    );
    expect(msg).toContain('entryBytes: expected 1, 2, 4 or 8, got nothing');
    const flag = refusal(tinyWith('flag-typo.yaml', 'flags', 'flags: { valid: 7, writeable: 6 }'));
    expect(flag).toBe(
      `${join(dir, 'flag-typo.yaml')}:5:20: flags.writeable: unknown key (did you mean 'writable'?)`,
    );
  });

  it.each([
    ['entryBytes', 'entryBytes: 3', /:5:13: entryBytes: expected 1, 2, 4 or 8, got 3$/],
    ['levels', 'levels: [5, 5, 5, 5, 5, 5]', /levels: Too big: expected array to have <=5 items$/],
    ['levels', 'levels: [21]', /levels\.0: Too big: expected number to be <=20$/],
    ['levels', 'levels: [5, x]', /:5:13: levels\.1: expected number, received string$/],
    ['flags', 'flags: { valid: 64 }', /flags\.valid: Too big: expected number to be <=63$/],
    ['flags', 'flags: { valid: 8 }', /: flags\.present: bit 8 is outside a 8-bit entry$/],
    ['flags', 'flags: { writable: 6 }', /: flags\.present: a format needs a present\/valid bit$/],
    ['flags', 'flags: { valid: 7, present: 7 }', /: flags: give 'present' or its alias 'valid', not both$/],
    ['pfn', 'pfn: { shift: 2, width: 7 }', /: pfn: bit 7 overlaps flags\.present$/],
    [
      'permissions',
      'permissions: leaf',
      /permissions: Invalid option: expected one of "all-levels"\|"leaf-only"$/,
    ],
  ])('%s: %s', (key, line, pattern) => {
    expect(refusal(tinyWith(`bad-${line.replace(/\W+/g, '-')}.yaml`, key, line))).toMatch(pattern);
  });

  it('no execute and execute bits together, reserved ranges reversed, huge bit overlapping', () => {
    const x86ish = (extra: string[]): string[] => [
      'pageSize: 4K',
      'levels: [10, 10]',
      'entryBytes: 4',
      'pfn: { shift: 12, width: 20 }',
      ...extra,
    ];
    expect(
      refusal(formatFile('nx-x.yaml', x86ish(['flags: { present: 0, noExecute: 1, execute: 2 }']))),
    ).toMatch(/nx-x\.yaml: flags\.execute: a format has a no-execute bit or an execute bit, not both$/);
    expect(
      refusal(formatFile('resv.yaml', x86ish(['flags: { present: 0 }', 'reservedBits: [[9, 8]]']))),
    ).toMatch(/resv\.yaml: reservedBits\[0\]: range 9\.\.8 is empty$/);
    expect(refusal(formatFile('huge.yaml', x86ish(['flags: { present: 0 }', 'hugePageBit: 12'])))).toMatch(
      /huge\.yaml: pfn: bit 12 overlaps hugePageBit|hugePageBit: bit 12 overlaps pfn/,
    );
  });

  it('virtual addresses over 57 bits and tables over 1024 pages', () => {
    const wide = tinyWith('wide.yaml', 'levels', 'levels: [20, 20, 20]');
    expect(refusal(wide)).toMatch(/wide\.yaml: levels: virtual addresses of 65 bits exceed 57$/);
    const big = formatFile('bigtable.yaml', [
      'pageSize: 16',
      'levels: [20]',
      'entryBytes: 8',
      'flags: { present: 0 }',
      'pfn: { shift: 12, width: 40 }',
    ]);
    expect(refusal(big)).toMatch(
      /bigtable\.yaml: levels: a table of 8388608 bytes spans more than 1024 pages$/,
    );
  });

  it('an unreadable file', () => {
    expect(() => loadFormatFile(join(dir, 'none.yaml'))).toThrow(/none\.yaml: cannot read: ENOENT/);
  });
});

describe('withPageSize', () => {
  it('keeps the entry layout and re-splits the virtual address', () => {
    const x64 = resolveFormat('x86-64');
    expect(withPageSize(x64, 4096)).toBe(x64);
    const f = withPageSize(x64, 16384);
    // 48-bit VA, 14-bit offset, 11 index bits per level (2048 8-byte entries): 34 = 1 + 11*3.
    expect(f.pageBytes).toBe(16384);
    expect(f.vaBits).toBe(48);
    expect(f.levelBits).toEqual([1, 11, 11, 11]);
    expect(f.entryBytes).toBe(8);
    expect(f.name).toBe('x86-64/16384');
  });

  it('refuses page sizes that are not powers of two or do not fit', () => {
    const x64 = resolveFormat('x86-64');
    expect(() => withPageSize(x64, 3000)).toThrow(/--page-size: 3000 is not a power of two from 16 to 64K/);
    expect(() => withPageSize(x64, 128 * 1024)).toThrow(InputError);
    expect(() => withPageSize(x64, 16)).toThrow(/would need \d+ levels/);
  });
});
