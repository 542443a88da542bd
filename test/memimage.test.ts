/**
 * Physical memory images (kernel/boot/memimage.ts): raw binary from address 0, or text lines
 * `page N: b0 b1 …`. Bad images are InputErrors naming the file, the line and the field.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../kernel/boot/configfile.ts';
import { loadMemoryImage, loadTextImage } from '../kernel/boot/memimage.ts';
import { PhysicalMemory } from '../kernel/hw/physmem.ts';

const dir = mkdtempSync(join(tmpdir(), 'vmlab-image-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** 8 frames of 32 bytes (256 bytes), the size of the tiny examples. */
const memory = (): PhysicalMemory => new PhysicalMemory({ frameCount: 8, pageBytes: 32 });

function file(name: string, contents: string | Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, contents);
  return path;
}

/** Bytes of physical memory [pa, pa + n). */
function bytesAt(mem: PhysicalMemory, pa: number, n: number): number[] {
  const out = new Uint8Array(n);
  mem.readBytes(pa, out);
  return [...out];
}

/** The InputError message loading `path` gives. */
function refusal(path: string, form: 'auto' | 'raw' | 'text' = 'auto'): string {
  try {
    loadMemoryImage(memory(), path, form);
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return (err as Error).message;
  }
  throw new Error(`${path} was accepted`);
}

describe('raw images', () => {
  it('are physical memory from address 0; a short image leaves the rest zero', () => {
    const mem = memory();
    const img = Uint8Array.from({ length: 40 }, (_, i) => i + 1);
    const path = file('short.bin', img);
    expect(loadMemoryImage(mem, path)).toEqual({ form: 'raw', frames: 2 });
    expect(bytesAt(mem, 0, 40)).toEqual([...img]);
    expect(bytesAt(mem, 40, 216)).toEqual(new Array(216).fill(0));
  });

  it('may fill memory exactly, but not one byte more', () => {
    const mem = memory();
    const full = Uint8Array.from({ length: 256 }, (_, i) => 255 - i);
    expect(loadMemoryImage(mem, file('full.bin', full))).toEqual({ form: 'raw', frames: 8 });
    expect(mem.read8(255)).toBe(0);
    expect(mem.read8(0)).toBe(255);
    const long = file('long.bin', new Uint8Array(257));
    expect(refusal(long)).toBe(`${long}: raw image of 257 bytes exceeds physical memory of 256 bytes`);
  });

  it('an empty file is an empty raw image', () => {
    expect(loadMemoryImage(memory(), file('empty.bin', new Uint8Array(0)))).toEqual({
      form: 'raw',
      frames: 0,
    });
  });

  it('form raw takes a text file byte for byte', () => {
    const mem = memory();
    loadMemoryImage(mem, file('forced.txt', 'page 1: 7f\n'), 'raw');
    expect(bytesAt(mem, 0, 4)).toEqual([...Buffer.from('page')]);
    expect(mem.read8(32)).toBe(0);
  });
});

describe('text images', () => {
  it('read comments, blank lines, CRLF, 0x bytes, capitals and commas', () => {
    const mem = memory();
    const path = file(
      'ok.txt',
      [
        '# a comment line',
        '',
        'page 2: 01 02 0x03 0XfF # a trailing comment',
        '   ',
        'PAGE 0x3: a0,a1, a2 ,\ta3',
        'page 7:',
        'page 5: 7f\r',
      ].join('\n'),
    );
    expect(loadMemoryImage(mem, path)).toEqual({ form: 'text', frames: 4 });
    expect(bytesAt(mem, 64, 5)).toEqual([1, 2, 3, 0xff, 0]);
    expect(bytesAt(mem, 96, 5)).toEqual([0xa0, 0xa1, 0xa2, 0xa3, 0]);
    expect(mem.read8(160)).toBe(0x7f);
    expect(bytesAt(mem, 224, 32)).toEqual(new Array(32).fill(0));
    expect(bytesAt(mem, 0, 64)).toEqual(new Array(64).fill(0));
  });

  it('a page may list fewer bytes than it holds, or exactly as many', () => {
    const mem = memory();
    const full = Array.from({ length: 32 }, (_, i) => (i + 0x10).toString(16)).join(' ');
    expect(loadTextImage(mem, 'mem.txt', `page 1: ${full}\npage 4: 42\n`)).toBe(2);
    expect(bytesAt(mem, 32, 32)).toEqual(Array.from({ length: 32 }, (_, i) => i + 0x10));
    expect(bytesAt(mem, 128, 2)).toEqual([0x42, 0]);
  });

  it('a trailing comma is not a byte', () => {
    // Regression: "7f, 7e," was refused with "byte 2: '' is not a hex byte".
    const mem = memory();
    loadTextImage(mem, 'mem.txt', 'page 1: 7f, 7e,\n');
    expect(bytesAt(mem, 32, 3)).toEqual([0x7f, 0x7e, 0]);
  });

  it('the tiny example of docs/examples loads its three frames', () => {
    const mem = new PhysicalMemory({ frameCount: 128, pageBytes: 32 });
    expect(loadMemoryImage(mem, 'docs/examples/tiny-image.txt')).toEqual({ form: 'text', frames: 3 });
    expect(mem.read8(108 * 32 + 24)).toBe(0xa1);
    expect(mem.read8(33 * 32 + 8)).toBe(0xb5);
    expect(mem.read8(0x6bc)).toBe(0x42);
  });

  it.each([
    [
      'too many bytes',
      `page 1: ${new Array(33).fill('00').join(' ')}`,
      ':2: bytes: 33 bytes given for a 32-byte page',
    ],
    ['a bad byte', 'page 1: 00 1g', ":2: byte 1: '1g' is not a hex byte"],
    ['a byte over 0xff', 'page 1: 100', ":2: byte 0: '100' is not a hex byte"],
    ['a negative byte', 'page 1: -1', ":2: byte 0: '-1' is not a hex byte"],
    ['a page beyond memory', 'page 8: 00', ':2: page number: 8 is beyond the 8 frames of this machine'],
    ['a page number that is no number', 'page two: 00', ":2: page number: 'two' is not a number"],
    ['a line that is no page', 'frame 1: 00', ":2: expected 'page N: b0 b1 …', got 'frame 1: 00'"],
    ['a page without its colon', 'page 1 00', ":2: expected 'page N: b0 b1 …', got 'page 1 00'"],
  ])('%s is refused, naming the line', (_what, line, message) => {
    const path = file('bad.txt', `page 0: 00\n${line}\n`);
    expect(refusal(path)).toBe(`${path}${message}`);
  });

  it('a page given twice is refused, however its number is written', () => {
    const path = file('dup.txt', '# header\npage 5: 01\npage 3: 02\npage 0x5: 03\n');
    expect(refusal(path)).toBe(`${path}:4: page number: page 5 is given twice`);
  });

  it('form text on a binary file names the first line', () => {
    const path = file('bin-as-text.bin', Uint8Array.of(0, 1, 2, 3));
    expect(refusal(path, 'text')).toMatch(new RegExp(`^${path}:1: expected 'page N: b0 b1 …'`));
  });
});

describe('auto-detection', () => {
  it('reads a file as text when its first meaningful line starts with page', () => {
    const mem = memory();
    expect(loadMemoryImage(mem, file('a.txt', '\n# c\n\n  page 1: 11\n')).form).toBe('text');
    expect(mem.read8(32)).toBe(0x11);
  });

  it('reads anything else as raw: binary, or text that is not a page list', () => {
    expect(loadMemoryImage(memory(), file('b.bin', Uint8Array.of(0x70, 0x61, 0x67, 0x65))).form).toBe('raw'); // "page", no space
    expect(loadMemoryImage(memory(), file('c.bin', 'hello\npage 1: 00\n')).form).toBe('raw');
    expect(loadMemoryImage(memory(), file('d.bin', new Uint8Array(64))).form).toBe('raw');
    expect(loadMemoryImage(memory(), file('e.bin', '# only a comment\n')).form).toBe('raw');
  });

  it('looks past a comment header longer than 4 KiB', () => {
    // Regression: only the first 4096 bytes were examined, so this text image was taken as raw.
    const mem = new PhysicalMemory({ frameCount: 512, pageBytes: 32 });
    const header = Array.from({ length: 100 }, (_, i) => `# line ${i} of a long header ${'-'.repeat(40)}`);
    const path = file('long-header.txt', `${header.join('\n')}\npage 2: 5a\n`);
    expect(loadMemoryImage(mem, path)).toEqual({ form: 'text', frames: 1 });
    expect(mem.read8(64)).toBe(0x5a);
  });

  it('an unreadable image names the file and the reason', () => {
    const missing = join(dir, 'missing.bin');
    expect(refusal(missing)).toBe(`${missing}: cannot read the memory image: ENOENT`);
    expect(refusal(dir)).toBe(`${dir}: cannot read the memory image: EISDIR`);
  });
});
