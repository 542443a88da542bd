import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { withPageSize } from '../kernel/boot/formatfile.ts';
import { replayTrace } from '../kernel/boot/replay.ts';
import { parseTrace, REF_FETCH, REF_READ, REF_WRITE } from '../kernel/boot/traces.ts';
import { PRESET_FORMATS } from '../kernel/hw/paging/presets.ts';

const dir = mkdtempSync(join(tmpdir(), 'vmlab-replay-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PAGE = 4096;
const limits = { pageBytes: PAGE, vaLimit: 2 ** 48 };

function replayPages(text: string, frames: number, policy: string) {
  const trace = parseTrace('inline', text, { ...limits, format: 'pages' });
  return replayTrace({ trace, frames, policy, machine: { memoryBytes: 32 * 1024 * 1024 } });
}

const BELADY = '1,2,3,4,1,2,5,1,2,3,4,5';
const CLASSIC = '7,0,1,2,0,3,0,4,2,3,0,3,2,1,2,0,1,7,0,1';

describe('replay through the full machine: textbook counts', () => {
  it("shows Belady's anomaly with FIFO: 9 faults with 3 frames, 10 with 4", () => {
    expect(replayPages(BELADY, 3, 'fifo').faults).toBe(9);
    expect(replayPages(BELADY, 4, 'fifo').faults).toBe(10);
  });

  it('gives FIFO 15, OPT 9 and LRU 12 faults on the classic 20-reference string with 3 frames', () => {
    expect(replayPages(CLASSIC, 3, 'fifo').faults).toBe(15);
    expect(replayPages(CLASSIC, 3, 'opt').faults).toBe(9);
    expect(replayPages(CLASSIC, 3, 'lru').faults).toBe(12);
  });

  it('counts a writeback only for a page written since it was loaded', () => {
    // FIFO, 3 frames: 1 is evicted dirty (ref 4), 4 is evicted dirty (ref 7); every other
    // eviction is of a clean page: 9 faults, 2 writebacks.
    const r = replayPages('1w,2,3,4w,1,2,5,1,2,3,4,5', 3, 'fifo');
    expect(r.faults).toBe(9);
    expect(r.writebacks).toBe(2);
  });

  it('counts every reference once in the TLB and reports the configuration', () => {
    const r = replayPages(CLASSIC, 3, 'lru');
    expect(r.references).toBe(20);
    expect(r.tlbHits + r.tlbMisses).toBe(20);
    expect(r.config).toMatchObject({ policy: 'lru', frames: 3, pageBytes: PAGE });
    // Pages only read are zero pages: evicted, they are dropped and come back as minor faults.
    expect(r.majorFaults).toBe(0);
    // Written pages go to swap and come back from it: major faults.
    const w = replayPages(
      CLASSIC.split(',')
        .map((p) => `${p}w`)
        .join(','),
      3,
      'lru',
    );
    expect(w.faults).toBe(12);
    expect(w.majorFaults).toBe(12 - 6); // 6 distinct pages: their first touch is demand-zero
    expect(w.writebacks).toBe(12 - 3); // every eviction is of a dirty page; 3 stay resident
  });

  it('takes another page size by giving the format more or fewer levels', () => {
    const fmt = withPageSize(PRESET_FORMATS['x86-64']!, 16384);
    expect(fmt.pageBytes).toBe(16384);
    expect(fmt.levelBits).toEqual([1, 11, 11, 11]); // 48 - 14 = 34 bits: 11 per level, 1 at the root
    const trace = parseTrace('inline', CLASSIC, { pageBytes: 16384, vaLimit: 2 ** 48, format: 'pages' });
    const r = replayTrace({
      trace,
      frames: 3,
      policy: 'lru',
      machine: { format: fmt, memoryBytes: 32 * 1024 * 1024 },
    });
    expect(r.faults).toBe(12);
    expect(r.config.pageBytes).toBe(16384);
  });

  it('is deterministic: the same trace and seed give the same counts and cycles', () => {
    const a = replayPages(CLASSIC, 3, 'random');
    const b = replayPages(CLASSIC, 3, 'random');
    expect({ ...a, hostSeconds: 0 }).toEqual({ ...b, hostSeconds: 0 });
  });

  it('prints an OSTEP-style verbose trace', () => {
    const trace = parseTrace('inline', BELADY, { ...limits, format: 'pages' });
    const r = replayTrace({ trace, frames: 3, policy: 'fifo', machine: {}, verbose: true });
    expect(r.lines).toHaveLength(12);
    expect(r.lines![3]).toMatch(/page 4 R MISS evict 1 +resident \[2, 3, 4\]/);
    expect(r.lines![4]).toMatch(/page 1 R MISS evict 2/);
  });
});

describe('trace formats', () => {
  it('parses lackey output: L, S, M (load then store), I only when asked', () => {
    const text = '==123== Lackey\nI  0023C790,2\n L BE80199C,4\n S BE80199C,4\n M 0025747C,1\n';
    const t = parseTrace('x', text, limits);
    expect(t.format).toBe('lackey');
    expect([...t.kinds]).toEqual([REF_READ, REF_WRITE, REF_READ, REF_WRITE]);
    expect(t.addresses[0]).toBe(0xbe80199c);
    const withI = parseTrace('x', text, { ...limits, includeInstructions: true });
    expect(withI.kinds[0]).toBe(REF_FETCH);
    expect(withI.length).toBe(5);
  });

  it('parses R/W lines and page strings', () => {
    // Both values fit as page numbers too, so auto refuses this one: the format is given.
    const rw = parseTrace('x', 'R 0x1000\nW 2000\n', { ...limits, format: 'rw' });
    expect(rw.format).toBe('rw');
    expect([...rw.addresses]).toEqual([0x1000, 0x2000]);
    const high = parseTrace('x', 'R 0x7ffd12345678\nW 2000\n', limits);
    expect(high.format).toBe('rw'); // 0x7ffd12345678 >= 2^36 pages: only a byte address
    const pages = parseTrace('x', '1, 2,3w\n4', limits);
    expect([...pages.addresses]).toEqual([PAGE, 2 * PAGE, 3 * PAGE, 4 * PAGE]);
    expect(pages.kinds[2]).toBe(REF_WRITE);
  });

  it('refuses a malformed line with the file, line number and text', () => {
    expect(() => parseTrace('t.txt', 'R 0x1000\nQ 12\n', { ...limits, format: 'rw' })).toThrow(
      /t\.txt:2: .*'Q 12'/,
    );
    expect(() => parseTrace('t.txt', 'R 0x1000000000000\n', { ...limits, format: 'rw' })).toThrow(
      /t\.txt:1: address/,
    );
  });
});

describe('vmlab replay (the command)', () => {
  const cli = join(process.cwd(), 'kernel/boot/vmlab.mjs');

  it('replays a gzip-compressed trace and prints JSON', () => {
    const path = join(dir, 'classic.txt.gz');
    writeFileSync(path, gzipSync(CLASSIC));
    const out = execFileSync('node', [cli, 'replay', path, '--frames', '3', '--policy', 'fifo', '--json'], {
      encoding: 'utf8',
    });
    const r = JSON.parse(out);
    expect(r).toMatchObject({ references: 20, faults: 15 });
    for (const k of ['majorFaults', 'writebacks', 'tlbMisses', 'tlbHits', 'cycles', 'config'])
      expect(r).toHaveProperty(k);
  });

  it('exits with status 2 naming the file and line of a malformed trace', () => {
    const path = join(dir, 'bad.txt');
    writeFileSync(path, 'R 1000\nW zz\n');
    const r = spawnSync('node', [cli, 'replay', path, '--frames', '3'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${path}:2:`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
