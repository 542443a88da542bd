/**
 * `vmlab translate`, run as a user runs it (a child process, cwd the repository): the walk as a
 * student writes it, its JSON form, every preset on a raw image built here by hand with
 * explicit shifts, the --linear exercise with OSTEP's options, and refusals of bad input with
 * exit status 2, the file or the option, and no stack trace. The runs are spawned in parallel
 * once, before the tests read their results.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CLI = join(process.cwd(), 'kernel/boot/vmlab.mjs');
const dir = mkdtempSync(join(tmpdir(), 'vmlab-translate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function vmlab(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('node', [CLI, 'translate', ...args], { cwd: process.cwd() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Run every named command line, at most `width` at a time. */
async function runAll(commands: Record<string, string[]>, width: number): Promise<Map<string, Run>> {
  const names = Object.keys(commands);
  const out = new Map<string, Run>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < names.length) {
      const name = names[next++]!;
      out.set(name, await vmlab(commands[name]!));
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return out;
}

// ---- images built by hand ----

const PAGE = 4096;

/** A raw image of `frames` 4 KiB frames; entries written little-endian at frame*4096 + index*size. */
class RawImage {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  constructor(frames: number) {
    this.bytes = new Uint8Array(frames * PAGE);
    this.view = new DataView(this.bytes.buffer);
  }
  entry32(frame: number, index: number, value: number): void {
    this.view.setUint32(frame * PAGE + index * 4, value >>> 0, true);
  }
  entry64(frame: number, index: number, value: bigint): void {
    this.view.setBigUint64(frame * PAGE + index * 8, value, true);
  }
  write(name: string): string {
    const path = join(dir, name);
    writeFileSync(path, this.bytes);
    return path;
  }
}

// x86-32: P = bit 0, RW = 1, US = 2, frame number in bits 12..31.
const P = 1;
const RW = 2;
const US = 4;

function x86_32Image(): string {
  const img = new RawImage(6);
  img.entry32(1, 1, (2 << 12) | P | RW | US); // PDE 1 -> page table in frame 2
  img.entry32(2, 1, (3 << 12) | P | RW | US); // 0x401000 -> frame 3, user read-write
  img.entry32(2, 2, (4 << 12) | P | US); //      0x402000 -> frame 4, user read-only
  img.entry32(2, 3, (5 << 12) | P | RW); //      0x403000 -> frame 5, supervisor only
  img.bytes[3 * PAGE + 0x234] = 0xab;
  return img.write('x86-32.bin');
}

// x86-64 and LA57: the same bits, 8-byte entries, NX = bit 63, PS = bit 7, bits 46..51 reserved.
const NX = 1n << 63n;
const PS = 1n << 7n;
const RESERVED_46 = 1n << 46n;
const pte64 = (frame: number, flags: number, extra = 0n): bigint =>
  (BigInt(frame) << 12n) | BigInt(flags) | extra;

/** A 4 KiB-page virtual address from its indices, root first, and an offset. */
function va(indices: number[], offset: number): string {
  let v = 0n;
  for (const ix of indices) v = (v << 9n) | BigInt(ix);
  return `0x${((v << 12n) | BigInt(offset)).toString(16)}`;
}

function x86_64Image(): string {
  const img = new RawImage(8);
  img.entry64(1, 1, pte64(2, P | RW | US)); // PML4[1] -> PDPT in frame 2
  img.entry64(2, 2, pte64(3, P | RW | US)); // PDPT[2] -> PD in frame 3
  img.entry64(2, 3, pte64(3, P | RW | US, RESERVED_46)); // PDPT[3]: a reserved bit set
  img.entry64(3, 3, pte64(4, P | RW | US)); // PD[3] -> PT in frame 4
  img.entry64(3, 4, pte64(5, P | RW | US, PS)); // PD[4]: a 2 MiB page (not modelled)
  img.entry64(4, 4, pte64(5, P | RW | US, NX)); // PT[4] -> frame 5, no-execute
  img.entry64(4, 5, pte64(6, P | RW)); // PT[5] -> frame 6, supervisor, executable
  img.entry64(4, 6, pte64(7, P | US)); // PT[6] -> frame 7, user read-only, executable
  img.bytes[6 * PAGE + 0x010] = 0xc3;
  img.bytes[7 * PAGE + 0x020] = 0x90;
  return img.write('x86-64.bin');
}

function la57Image(): string {
  const img = new RawImage(7);
  img.entry64(1, 1, pte64(2, P | RW | US)); // PML5[1]
  img.entry64(2, 0, pte64(3, P | RW | US)); // PML4[0]
  img.entry64(3, 0, pte64(4, P | RW | US)); // PDPT[0]
  img.entry64(4, 0, pte64(5, P | RW | US)); // PD[0]
  img.entry64(5, 7, pte64(6, P | RW | US)); // PT[7] -> frame 6
  img.bytes[6 * PAGE + 0x123] = 0x77;
  return img.write('la57.bin');
}

// Sv39: V = bit 0, R = 1, W = 2, X = 3, U = 4; the frame number from bit 10.
const V = 1;
const R = 2;
const W = 4;
const U = 16;
const sv39Pte = (frame: number, flags: number): bigint => (BigInt(frame) << 10n) | BigInt(flags);

function sv39Image(): string {
  const img = new RawImage(9);
  img.entry64(1, 1, sv39Pte(2, V)); // L0[1] -> table in frame 2 (R = W = X = 0: a pointer)
  img.entry64(2, 2, sv39Pte(3, V)); // L1[2] -> table in frame 3
  img.entry64(2, 3, sv39Pte(8, V | R | U)); // L1[3]: a leaf above the last level (a superpage)
  img.entry64(3, 0, sv39Pte(4, V | R | W | U)); // -> frame 4, user read-write
  img.entry64(3, 1, sv39Pte(5, V | R | U)); // -> frame 5, user read-only
  img.entry64(3, 2, sv39Pte(6, V | R | W)); // -> frame 6, supervisor
  img.entry64(3, 3, sv39Pte(7, V | W | U)); // -> frame 7, writable but not readable
  img.bytes[4 * PAGE + 0xabc] = 0x5e;
  return img.write('sv39.bin');
}

function textFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const TINY = ['-f', 'docs/examples/tiny-format.yaml', '-i', 'docs/examples/tiny-image.txt', '-r', '108'];

let runs: Map<string, Run>;
const paths: Record<string, string> = {};

beforeAll(async () => {
  paths.x86_32 = x86_32Image();
  paths.x86_64 = x86_64Image();
  paths.la57 = la57Image();
  paths.sv39 = sv39Image();
  paths.badByte = textFile('bad-byte.txt', '# root table\npage 108: 7f 7f zz 7f\n');
  paths.farPage = textFile('far-page.txt', 'page 108: a1\npage 128: 00\n');
  paths.missing = join(dir, 'missing.bin');
  runs = await runAll(
    {
      tiny: [...TINY, '0x611c', '0x3da8', '0x6124'],
      tinyJson: [...TINY, '--json', '0x611c', '0x3da8', '0x6124'],
      x86_32: [
        ...['-f', 'x86-32', '-i', paths.x86_32, '-r', '1', '--access', 'write'],
        ...['0x401234', '0x402234', '0x403234', '0x404234', '0x800000', '0x401234'],
      ],
      x86_64: [
        ...['-f', 'x86-64', '-i', paths.x86_64, '-r', '0x1', '--access', 'execute', '--mode', 'kernel'],
        va([1, 2, 3, 4], 0x678),
        va([1, 2, 3, 5], 0x010),
        va([1, 2, 3, 6], 0x020),
        va([1, 3, 0, 0], 0),
        va([1, 2, 4, 0], 0),
        '4096',
      ],
      sv39: [
        ...['-f', 'sv39', '-i', paths.sv39, '-r', '1', '-a', 'write'],
        ...['0x40400abc', '0x40401abc', '0x40402abc', '0x40403000', '0x40600000', '0x40400abc'],
      ],
      la57: ['-f', 'x86-64-la57', '-i', paths.la57, '-r', '1', '--json', va([1, 0, 0, 0, 7], 0x123), '0x123'],
      unreadable: ['-f', 'x86-32', '-i', paths.missing, '-r', '1', '0x0'],
      badByte: ['-f', 'docs/examples/tiny-format.yaml', '-i', paths.badByte, '-r', '108', '0x0'],
      farPage: ['-f', 'docs/examples/tiny-format.yaml', '-i', paths.farPage, '-r', '108', '0x0'],
      overlap: [
        '-f',
        'test/fixtures/formats/overlap-fields.yaml',
        '-i',
        'docs/examples/tiny-image.txt',
        '-r',
        '1',
        '0',
      ],
      pageSize: [
        '-f',
        'test/fixtures/formats/pagesize-128k.yaml',
        '-i',
        'docs/examples/tiny-image.txt',
        '-r',
        '1',
        '0',
      ],
      typo: [
        '-f',
        'test/fixtures/formats/typo-key.yaml',
        '-i',
        'docs/examples/tiny-image.txt',
        '-r',
        '1',
        '0',
      ],
      wide: [...TINY, '0x611c', '0x8000'],
      badRoot: [
        '-f',
        'docs/examples/tiny-format.yaml',
        '-i',
        'docs/examples/tiny-image.txt',
        '-r',
        '128',
        '0x0',
      ],
      linearDefaults: ['--linear'],
      linear: [
        ...['--linear', '--address-space', '32k', '-p', '128k', '-P', '1k', '-u', '75'],
        ...['-v', '-s', '7', '--generate', '8', '-c'],
      ],
      linearAddresses: ['--linear', '-A', '0x3a39,4660,0b11', '-u', '100', '-c'],
      linearAccess: ['--linear', '-a', '32k'],
      linearNotPowerOfTwo: ['--linear', '--address-space', '12k'],
      linearPageTooBig: ['--linear', '-P', '32k'],
      linearSpaceTooBig: ['--linear', '--address-space', '128k'],
      linearUsed: ['--linear', '-u', '101'],
      linearCount: ['--linear', '--generate', 'five'],
      linearOutside: ['--linear', '-A', '0x100,0x4000', '-c'],
      linearOnly: ['-P', '1k', '--generate', '3'],
      linearImage: ['--linear', '-i', 'docs/examples/tiny-image.txt'],
      linearPositional: ['--linear', '0x12'],
    },
    4,
  );
});

/** The run called `name`, which must have succeeded. */
function ok(name: string): Run {
  const r = runs.get(name)!;
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r;
}

/** The text blocks of a run: the ARG lines, then one block per address. */
function blocks(r: Run): string[] {
  return r.stdout.trimEnd().split('\n\n');
}

describe('the tiny textbook example', () => {
  it('prints the ARG lines, then each walk exactly as a student writes it', () => {
    const [args, hit, faultL0, faultL1, ...rest] = blocks(ok('tiny'));
    expect(rest).toEqual([]);
    expect(args).toBe(
      [
        'ARG format tiny',
        'ARG page size 32',
        'ARG levels 5/5 (index bits, root first)',
        'ARG entry bytes 1',
        'ARG va bits 15',
        'ARG image docs/examples/tiny-image.txt',
        'ARG phys frames 128',
        'ARG root frame 0x6c (108)',
        'ARG access read',
        'ARG mode user',
      ].join('\n'),
    );
    // 0x611c = 11000 01000 11100: L0 index 24, L1 index 8, offset 28. Root 108 * 32 + 24 =
    // 0xd98 holds 0xa1 (valid, frame 33); 33 * 32 + 8 = 0x428 holds 0xb5 (valid, frame 53);
    // 53 * 32 + 28 = 0x6bc holds 0x42.
    expect(hit).toBe(
      [
        'VA 0x611c (decimal 24860) = 0b110000100011100 (15 bits)',
        '  split: L0 index 0x18 (24) | L1 index 0x8 (8) | offset 0x1c (28)',
        '  L0: table frame 0x6c (108), entry 24 at PA 0xd98: 0xa1  present=1 pfn=0x21',
        '  L1: table frame 0x21 (33), entry 8 at PA 0x428: 0xb5  present=1 pfn=0x35',
        '  --> PA 0x6bc (decimal 1724) = frame 0x35 + offset 0x1c, byte there 0x42',
      ].join('\n'),
    );
    // 0x3da8 = 01111 01101 01000: L0 index 15 at 108 * 32 + 15 = 0xd8f holds 0x7f (not valid).
    expect(faultL0).toBe(
      [
        'VA 0x3da8 (decimal 15784) = 0b011110110101000 (15 bits)',
        '  split: L0 index 0xf (15) | L1 index 0xd (13) | offset 0x8 (8)',
        '  L0: table frame 0x6c (108), entry 15 at PA 0xd8f: 0x7f  present=0 pfn=0x7f',
        '  --> FAULT not-present at level 0',
      ].join('\n'),
    );
    // 0x6124 = 11000 01001 00100: the same directory entry, then 33 * 32 + 9 = 0x429 holds 0x7f.
    expect(faultL1).toBe(
      [
        'VA 0x6124 (decimal 24868) = 0b110000100100100 (15 bits)',
        '  split: L0 index 0x18 (24) | L1 index 0x9 (9) | offset 0x4 (4)',
        '  L0: table frame 0x6c (108), entry 24 at PA 0xd98: 0xa1  present=1 pfn=0x21',
        '  L1: table frame 0x21 (33), entry 9 at PA 0x429: 0x7f  present=0 pfn=0x7f',
        '  --> FAULT not-present at level 1',
      ].join('\n'),
    );
  });

  it('--json gives the same walks as data', () => {
    const j = JSON.parse(ok('tinyJson').stdout);
    expect(j).toEqual({
      format: 'tiny',
      image: 'docs/examples/tiny-image.txt',
      frames: 128,
      rootFrame: 108,
      translations: [
        {
          va: '0x611c',
          vaDecimal: '24860',
          vaBits: 15,
          indices: [24, 8],
          offset: 28,
          steps: [
            {
              level: 0,
              index: 24,
              tableFrame: 108,
              entryAddress: 0xd98,
              raw: '0xa1',
              fields: { present: true, pfn: 33 },
            },
            {
              level: 1,
              index: 8,
              tableFrame: 33,
              entryAddress: 0x428,
              raw: '0xb5',
              fields: { present: true, pfn: 53 },
            },
          ],
          result: { pa: '0x6bc', paDecimal: 0x6bc, byte: 0x42 },
        },
        {
          va: '0x3da8',
          vaDecimal: '15784',
          vaBits: 15,
          indices: [15, 13],
          offset: 8,
          steps: [
            {
              level: 0,
              index: 15,
              tableFrame: 108,
              entryAddress: 0xd8f,
              raw: '0x7f',
              fields: { present: false, pfn: 127 },
            },
          ],
          result: { fault: { kind: 'not-present', level: 0 } },
        },
        {
          va: '0x6124',
          vaDecimal: '24868',
          vaBits: 15,
          indices: [24, 9],
          offset: 4,
          steps: [
            {
              level: 0,
              index: 24,
              tableFrame: 108,
              entryAddress: 0xd98,
              raw: '0xa1',
              fields: { present: true, pfn: 33 },
            },
            {
              level: 1,
              index: 9,
              tableFrame: 33,
              entryAddress: 0x429,
              raw: '0x7f',
              fields: { present: false, pfn: 127 },
            },
          ],
          result: { fault: { kind: 'not-present', level: 1 } },
        },
      ],
    });
  });
});

describe('the presets on raw images built by hand', () => {
  it('x86-32, a user write: success, read-only, supervisor-only, missing table entry, missing directory entry', () => {
    const r = ok('x86_32');
    const [args, rw, ro, sup, noPte, noPde, again] = blocks(r);
    expect(args).toContain('ARG format x86-32');
    expect(args).toContain('ARG levels 10/10 (index bits, root first)');
    expect(args).toContain('ARG phys frames 1048576');
    expect(args).toContain('ARG access write');
    expect(args).toContain('ARG mode user');
    const flags = (w: number, u: number) => `writable=${w} user=${u} accessed=0 dirty=0 global=0`;
    expect(rw).toBe(
      [
        'VA 0x401234 (decimal 4198964) = 0b00000000010000000001001000110100 (32 bits)',
        '  split: L0 index 0x1 (1) | L1 index 0x1 (1) | offset 0x234 (564)',
        `  L0: table frame 0x1 (1), entry 1 at PA 0x1004: 0x00002007  present=1 ${flags(1, 1)} pfn=0x2`,
        `  L1: table frame 0x2 (2), entry 1 at PA 0x2004: 0x00003007  present=1 ${flags(1, 1)} pfn=0x3`,
        '  --> PA 0x3234 (decimal 12852) = frame 0x3 + offset 0x234, byte there 0xab',
      ].join('\n'),
    );
    expect(ro).toContain(
      `  L1: table frame 0x2 (2), entry 2 at PA 0x2008: 0x00004005  present=1 ${flags(0, 1)} pfn=0x4`,
    );
    expect(ro).toMatch(/--> FAULT protection \(write-to-read-only\) at level 1$/);
    expect(sup).toContain(`entry 3 at PA 0x200c: 0x00005003  present=1 ${flags(1, 0)} pfn=0x5`);
    expect(sup).toMatch(/--> FAULT protection \(user-to-kernel\) at level 1$/);
    expect(noPte).toContain('entry 4 at PA 0x2010: 0x00000000  present=0');
    expect(noPte).toMatch(/--> FAULT not-present at level 1$/);
    expect(noPde).toContain('  split: L0 index 0x2 (2) | L1 index 0x0 (0) | offset 0x0 (0)');
    expect(noPde).toContain('  L0: table frame 0x1 (1), entry 2 at PA 0x1008: 0x00000000  present=0');
    expect(noPde).toMatch(/--> FAULT not-present at level 0$/);
    // Regression: the first walk's accessed and dirty bits showed in the second walk of the
    // same address (0x00002027, 0x00003067): each address is explained against the image.
    expect(again).toBe(rw);
  });

  it('x86-64 in kernel mode, executing: no-execute, supervisor and read-only pages, reserved bit, huge page', () => {
    const [args, nx, sup, ro, resv, huge, low] = blocks(ok('x86_64'));
    expect(args).toContain('ARG levels 9/9/9/9 (index bits, root first)');
    expect(args).toContain('ARG va bits 48');
    expect(args).toContain('ARG access execute');
    expect(args).toContain('ARG mode kernel');
    // (1 << 39) | (2 << 30) | (3 << 21) | (4 << 12) | 0x678
    expect(nx).toContain('VA 0x8080604678 (decimal 551909607032) = 0b');
    expect(nx).toContain(
      '  split: L0 index 0x1 (1) | L1 index 0x2 (2) | L2 index 0x3 (3) | L3 index 0x4 (4) | offset 0x678 (1656)',
    );
    expect(nx).toContain(
      '  L0: table frame 0x1 (1), entry 1 at PA 0x1008: 0x0000000000002007  present=1 writable=1 user=1 accessed=0 dirty=0 global=0 noExecute=0 pfn=0x2',
    );
    expect(nx).toContain('  L1: table frame 0x2 (2), entry 2 at PA 0x2010: 0x0000000000003007');
    expect(nx).toContain('  L2: table frame 0x3 (3), entry 3 at PA 0x3018: 0x0000000000004007');
    expect(nx).toContain(
      '  L3: table frame 0x4 (4), entry 4 at PA 0x4020: 0x8000000000005007  present=1 writable=1 user=1 accessed=0 dirty=0 global=0 noExecute=1 pfn=0x5',
    );
    expect(nx).toMatch(/--> FAULT protection \(execute-no-execute\) at level 3$/);
    // A supervisor page is fine in kernel mode; so is a user page without NX.
    expect(sup).toContain('L3: table frame 0x4 (4), entry 5 at PA 0x4028: 0x0000000000006003');
    expect(sup).toMatch(/--> PA 0x6010 \(decimal 24592\) = frame 0x6 \+ offset 0x10, byte there 0xc3$/);
    expect(ro).toMatch(/--> PA 0x7020 \(decimal 28704\) = frame 0x7 \+ offset 0x20, byte there 0x90$/);
    expect(resv).toContain(
      '  L1: table frame 0x2 (2), entry 3 at PA 0x2018: 0x0000400000003007  present=1 writable=1 user=1 accessed=0 dirty=0 global=0 noExecute=0 reserved=1 pfn=0x3',
    );
    expect(resv).toMatch(/--> FAULT reserved at level 1$/);
    expect(huge).toContain('  L2: table frame 0x3 (3), entry 4 at PA 0x3020: 0x0000000000005087');
    expect(huge).toMatch(/--> FAULT reserved at level 2$/);
    expect(low).toContain('VA 0x1000 (decimal 4096)');
    expect(low).toMatch(/--> FAULT not-present at level 0$/);
  });

  it('sv39, a user write: leaf permissions only, superpages and W without R are reserved', () => {
    const [args, rw, ro, sup, wOnly, superpage, again] = blocks(ok('sv39'));
    expect(args).toContain('ARG levels 9/9/9 (index bits, root first)');
    expect(args).toContain('ARG va bits 39');
    // 0x40400abc = (1 << 30) | (2 << 21) | (0 << 12) | 0xabc
    expect(rw).toContain(
      '  split: L0 index 0x1 (1) | L1 index 0x2 (2) | L2 index 0x0 (0) | offset 0xabc (2748)',
    );
    expect(rw).toContain(
      '  L0: table frame 0x1 (1), entry 1 at PA 0x1008: 0x0000000000000801  present=1 readable=0 writable=0 user=0 accessed=0 dirty=0 global=0 execute=0 pfn=0x2',
    );
    expect(rw).toContain('  L1: table frame 0x2 (2), entry 2 at PA 0x2010: 0x0000000000000c01');
    expect(rw).toContain(
      '  L2: table frame 0x3 (3), entry 0 at PA 0x3000: 0x0000000000001017  present=1 readable=1 writable=1 user=1 accessed=0 dirty=0 global=0 execute=0 pfn=0x4',
    );
    expect(rw).toMatch(/--> PA 0x4abc \(decimal 19132\) = frame 0x4 \+ offset 0xabc, byte there 0x5e$/);
    expect(ro).toContain('entry 1 at PA 0x3008: 0x0000000000001413');
    expect(ro).toMatch(/--> FAULT protection \(write-to-read-only\) at level 2$/);
    expect(sup).toContain('entry 2 at PA 0x3010: 0x0000000000001807');
    expect(sup).toMatch(/--> FAULT protection \(user-to-kernel\) at level 2$/);
    expect(wOnly).toContain('entry 3 at PA 0x3018: 0x0000000000001c15');
    expect(wOnly).toMatch(/--> FAULT reserved at level 2$/);
    expect(superpage).toContain('  L1: table frame 0x2 (2), entry 3 at PA 0x2018: 0x0000000000002013');
    expect(superpage).toMatch(/--> FAULT reserved at level 1$/);
    expect(again).toBe(rw); // the write's accessed and dirty bits do not stay in the image
  });

  it('x86-64-la57 --json: a five-level walk above 2^48, and a missing PML5 entry', () => {
    const j = JSON.parse(ok('la57').stdout);
    expect(j.format).toBe('x86-64-la57');
    expect(j.rootFrame).toBe(1);
    const [high, low] = j.translations;
    // (1 << 48) | (7 << 12) | 0x123
    expect(high.va).toBe('0x1000000007123');
    expect(high.vaDecimal).toBe(String((1n << 48n) | 0x7123n));
    expect(high.vaBits).toBe(57);
    expect(high.indices).toEqual([1, 0, 0, 0, 7]);
    expect(high.offset).toBe(0x123);
    expect(high.steps.map((s: { entryAddress: number }) => s.entryAddress)).toEqual([
      0x1008, 0x2000, 0x3000, 0x4000, 0x5038,
    ]);
    expect(high.steps.map((s: { tableFrame: number }) => s.tableFrame)).toEqual([1, 2, 3, 4, 5]);
    expect(high.steps[4]).toEqual({
      level: 4,
      index: 7,
      tableFrame: 5,
      entryAddress: 0x5038,
      raw: '0x0000000000006007',
      fields: {
        present: true,
        writable: true,
        user: true,
        accessed: false,
        dirty: false,
        global: false,
        noExecute: false,
        pfn: 6,
      },
    });
    expect(high.result).toEqual({ pa: '0x6123', paDecimal: 0x6123, byte: 0x77 });
    expect(low.steps).toHaveLength(1);
    expect(low.steps[0]).toMatchObject({
      level: 0,
      index: 0,
      entryAddress: 0x1000,
      raw: '0x0000000000000000',
    });
    expect(low.result).toEqual({ fault: { kind: 'not-present', level: 0 } });
  });
});

/** The printed page-table entries of a --linear run, and its trace lines' addresses and answers. */
function linearParts(text: string): { table: number[]; trace: Array<{ va: number; answer: string }> } {
  const table = [...text.matchAll(/^ {2}(?:\[ *\d+\] {2})?0x([0-9a-f]{8})$/gm)].map((m) =>
    Number.parseInt(m[1]!, 16),
  );
  const trace = [...text.matchAll(/^ {2}VA 0x([0-9a-f]{8}) \(decimal: +\d+\) --> (.*)$/gm)].map((m) => ({
    va: Number.parseInt(m[1]!, 16),
    answer: m[2]!,
  }));
  return { table, trace };
}

/** An answer worked by hand: VPN and offset from the VA, the PFN from the entry's low 31 bits. */
function linearByHand(va: number, table: number[], pageBytes: number): string {
  const vpn = Math.floor(va / pageBytes);
  const pte = table[vpn]!;
  if (pte < 2 ** 31) return ` Invalid (VPN ${vpn} not valid)`;
  const pa = (pte - 2 ** 31) * pageBytes + (va % pageBytes);
  return `${pa.toString(16).padStart(8, '0')} (decimal ${String(pa).padStart(8)}) [VPN ${vpn}]`;
}

describe("--linear: OSTEP's paging-linear-translate.py", () => {
  it("no options: OSTEP's defaults echoed, four entries, five questions and the closing lines", () => {
    const r = ok('linearDefaults');
    expect(r.stdout.split('\n').slice(0, 7)).toEqual([
      'ARG seed 0',
      'ARG address space size 16k',
      'ARG phys mem size 64k',
      'ARG page size 4k',
      'ARG verbose False',
      'ARG addresses -1',
      '',
    ]);
    const { table, trace } = linearParts(r.stdout);
    expect(table).toHaveLength(4);
    expect(trace.map((t) => t.answer)).toEqual(new Array(5).fill('PA or invalid address?'));
    expect(r.stdout).toMatch(/\(e\.g\., segfault\)\.\n\n$/);
  });

  it('-a/-p/-P/-u/-v/-s/-n as --address-space, -p, -P, -u, -v, -s, --generate: answers as worked by hand', () => {
    const r = ok('linear');
    expect(r.stdout.split('\n').slice(0, 6)).toEqual([
      'ARG seed 7',
      'ARG address space size 32k',
      'ARG phys mem size 128k',
      'ARG page size 1k',
      'ARG verbose True',
      'ARG addresses -1',
    ]);
    expect(r.stdout).toContain('\n  [      31]  0x');
    const { table, trace } = linearParts(r.stdout);
    expect(table).toHaveLength(32);
    expect(trace).toHaveLength(8);
    for (const { va, answer } of trace) expect(answer).toBe(linearByHand(va, table, 1024));
  });

  it('-A: the addresses given, in hex, decimal and binary; -u 100 translates them all', () => {
    const r = ok('linearAddresses');
    expect(r.stdout).toContain('ARG addresses 0x3a39,4660,0b11\n');
    const { table, trace } = linearParts(r.stdout);
    expect(trace.map((t) => t.va)).toEqual([0x3a39, 4660, 3]);
    for (const { va, answer } of trace) {
      expect(answer).toMatch(/\[VPN \d\]$/);
      expect(answer).toBe(linearByHand(va, table, 4096));
    }
  });

  it.each([
    [
      'linearAccess',
      "--access: not with --linear (OSTEP's -a, the address-space size, is --address-space here)",
    ],
    ['linearNotPowerOfTwo', '--address-space: 12k is not a power of two'],
    ['linearPageTooBig', '--page-size: 32k is larger than the address space (16k)'],
    ['linearSpaceTooBig', '--address-space: 128k is larger than the physical memory (64k)'],
    ['linearUsed', "--used: '101' is not a whole percentage from 0 to 100"],
    ['linearCount', "--generate: 'five' is not a count from 0 to 100000"],
    [
      'linearOutside',
      '--addresses: 0x4000 (decimal 16384) is outside the address space (0 to 0x3fff, 16384 bytes)',
    ],
    ['linearOnly', '--page-size: only with --linear'],
    ['linearImage', '--image: not with --linear, which makes its own memory and page table'],
    ['linearPositional', "address '0x12': with --linear, give addresses with --addresses (OSTEP's -A)"],
  ])('%s: exit status 2 and the option named', (name, message) => {
    const r = runs.get(name)!;
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`vmlab: ${message}\n`);
  });
});

describe('bad input: exit status 2, the file and the field, no stack trace', () => {
  it.each([
    ['unreadable', () => `vmlab: ${paths.missing}: cannot read the memory image: ENOENT`],
    ['badByte', () => `vmlab: ${paths.badByte}:2: byte 2: 'zz' is not a hex byte`],
    ['farPage', () => `vmlab: ${paths.farPage}:2: page number: 128 is beyond the 128 frames of this machine`],
    ['overlap', () => 'vmlab: test/fixtures/formats/overlap-fields.yaml: pfn: bit 5 overlaps flags.writable'],
    [
      'pageSize',
      () =>
        'vmlab: test/fixtures/formats/pagesize-128k.yaml: pageSize: 131072 is not a power of two from 16 to 65536',
    ],
    ['wide', () => 'vmlab: address 0x8000: wider than the 15-bit virtual addresses of tiny'],
    ['badRoot', () => "vmlab: --root: '128' is not a frame number below 128"],
  ])('%s', (name, message) => {
    const r = runs.get(name)!;
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`${message()}\n`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('an unknown key in a format file: did you mean, at the line and column of the key', () => {
    const r = runs.get('typo')!;
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).toBe(
      "vmlab: test/fixtures/formats/typo-key.yaml:4:1: entryBtyes: unknown key (did you mean 'entryBytes'?)",
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
