/**
 * The emulated hardware: physical memory, the paging formats, the MMU's walk and faults, the
 * TLB and the clock. Page tables here are written by hand with explicit shifts and masks, not
 * with the code under test, so translation is checked against walks built independently.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Clock } from '../kernel/hw/clock.ts';
import { resolveCostModel } from '../kernel/hw/cost.ts';
import {
  ACCESS_EXECUTE,
  ACCESS_READ,
  ACCESS_WRITE,
  Mmu,
  type MmuOptions,
  MODE_KERNEL,
  MODE_USER,
} from '../kernel/hw/mmu.ts';
import { compileFormat, FormatError, type PagingFormat } from '../kernel/hw/paging/format.ts';
import { PRESET_FORMATS } from '../kernel/hw/paging/presets.ts';
import { MachineCheck, PhysicalMemory } from '../kernel/hw/physmem.ts';
import { TLB_GLOBAL, TLB_READABLE, TLB_USER, TLB_WRITABLE, Tlb } from '../kernel/hw/tlb.ts';

const X86_P = 1;
const X86_RW = 2;
const X86_US = 4;
const X86_A = 0x20;
const X86_D = 0x40;
const X86_PS = 0x80;
const X86_NX_HI = 0x80000000;
const SV_V = 1;
const SV_R = 2;
const SV_W = 4;
const SV_X = 8;
const SV_U = 16;
const SV_A = 64;
const SV_D = 128;

function machine(fmt: PagingFormat, frames = 64, extra: Partial<MmuOptions> = {}) {
  const mem = new PhysicalMemory({ frameCount: frames, pageBytes: fmt.pageBytes });
  const clock = new Clock({ hz: 1e9 });
  const mmu = new Mmu(mem, fmt, {
    tlb: { entries: 16, ways: 4, replacement: 'lru' },
    cost: resolveCostModel(),
    clock,
    ...extra,
  });
  return { mem, mmu, clock };
}

/** x86-64 entry halves for `pfn` with low flag bits `flags` (and NX when asked). */
function x86e(pfn: number, flags: number, nx = false): [number, number] {
  return [
    (((pfn * 4096) % 2 ** 32) | flags) >>> 0,
    (Math.floor((pfn * 4096) / 2 ** 32) | (nx ? X86_NX_HI : 0)) >>> 0,
  ];
}

/** Map va in an x86-64 tree rooted at frame 1: tables in frames 2, 3, 4; data frame `data`. */
function mapX86_64(
  mem: PhysicalMemory,
  va: number,
  data: number,
  flags: { pml4?: number; pdpt?: number; pd?: number; pt?: number; nxAt?: number } = {},
) {
  const idx = [39, 30, 21, 12].map((s) => Math.floor(va / 2 ** s) % 512);
  const tables = [1, 2, 3, 4];
  const next = [2, 3, 4, data];
  const f = [
    flags.pml4 ?? X86_P | X86_RW | X86_US,
    flags.pdpt ?? X86_P | X86_RW | X86_US,
    flags.pd ?? X86_P | X86_RW | X86_US,
    flags.pt ?? X86_P | X86_RW | X86_US,
  ];
  for (let l = 0; l < 4; l++) {
    const [lo, hi] = x86e(next[l]!, f[l]!, flags.nxAt === l);
    const pa = tables[l]! * 4096 + idx[l]! * 8;
    mem.write32(pa, lo);
    mem.write32(pa + 4, hi);
  }
  return { entryPa: (l: number) => tables[l]! * 4096 + idx[l]! * 8 };
}

describe('physical memory', () => {
  it('is sparse: untouched frames read zero and cost nothing until written', () => {
    const gib = 1024 ** 3;
    const mem = new PhysicalMemory({ frameCount: (16 * gib) / 4096, pageBytes: 4096 });
    expect(mem.sizeBytes).toBe(16 * gib);
    expect(mem.read32(15 * gib)).toBe(0);
    expect(mem.materializedFrames).toBe(0);
    mem.write8(15 * gib + 5, 7);
    expect(mem.materializedFrames).toBe(1);
    expect(mem.read8(15 * gib + 5)).toBe(7);
  });

  it('reads and writes little-endian 16/32/64-bit values, across frame boundaries too', () => {
    const mem = new PhysicalMemory({ frameCount: 4, pageBytes: 4096 });
    mem.write32(0x100, 0x11223344);
    expect([mem.read8(0x100), mem.read8(0x103)]).toEqual([0x44, 0x11]);
    mem.write32(4094, 0xa1b2c3d4);
    expect(mem.read8(4094)).toBe(0xd4);
    expect(mem.read8(4097)).toBe(0xa1);
    expect(mem.read32(4094)).toBe(0xa1b2c3d4);
    mem.write16(8191, 0xbeef);
    expect(mem.read16(8191)).toBe(0xbeef);
    mem.write64(0x200, 2 ** 40 + 5);
    expect(mem.read64(0x200)).toBe(2 ** 40 + 5);
    mem.write64(0x208, -1);
    expect(mem.read64Big(0x208)).toBe(2n ** 64n - 1n);
    mem.write64Big(0x210, 0x8000000000000001n);
    expect(mem.read32(0x214)).toBe(0x80000000);
    expect(mem.read32(0x210)).toBe(1);
  });

  it('copies ranges and frames, fills and zeroes them', () => {
    const mem = new PhysicalMemory({ frameCount: 4, pageBytes: 4096 });
    mem.writeBytes(
      4000,
      Uint8Array.from({ length: 200 }, (_, i) => i),
    );
    const out = new Uint8Array(200);
    mem.readBytes(4000, out);
    expect(out[199]).toBe(199);
    mem.copyFrame(0, 2);
    expect(mem.read8(2 * 4096 + 4010)).toBe(10);
    expect(mem.read8(2 * 4096 + 4050)).toBe(50);
    mem.fillFrame(3, 0x5a);
    expect(mem.read32(3 * 4096 + 100)).toBe(0x5a5a5a5a);
    mem.zeroFrameContents(3);
    expect(mem.read32(3 * 4096 + 100)).toBe(0);
    expect(mem.isFrameUntouched(3)).toBe(true);
  });

  it('raises a machine check beyond installed memory, never wrapping', () => {
    const mem = new PhysicalMemory({ frameCount: 2, pageBytes: 4096 });
    expect(() => mem.read8(8192)).toThrow(MachineCheck);
    expect(() => mem.read32(8190)).toThrow(/machine check/);
    expect(() => mem.write8(-1, 0)).toThrow(MachineCheck);
  });
});

describe('translation against hand-built walks', () => {
  it('x86-32: directory and table entries, accessed at both levels, dirty in the PTE on a write', () => {
    const fmt = PRESET_FORMATS['x86-32']!;
    const { mem, mmu } = machine(fmt);
    const va = 0x00c01234; // dir 3, table 1, offset 0x234
    mem.write32(1 * 4096 + 3 * 4, (2 << 12) | X86_P | X86_RW | X86_US);
    mem.write32(2 * 4096 + 1 * 4, (9 << 12) | X86_P | X86_RW | X86_US);
    mmu.switchAddressSpace(1, 0);
    expect(mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(9 * 4096 + 0x234);
    expect(mem.read32(1 * 4096 + 12) & X86_A).toBe(X86_A);
    expect(mem.read32(2 * 4096 + 4) & (X86_A | X86_D)).toBe(X86_A);
    mmu.store8(va, 1);
    expect(mem.read32(2 * 4096 + 4) & X86_D).toBe(X86_D);
    expect(mem.read32(1 * 4096 + 12) & X86_D).toBe(0);
    expect(mmu.dirtyAssists).toBe(1);
  });

  it('x86-64 and la57: four and five levels of 9 bits', () => {
    const fmt = PRESET_FORMATS['x86-64']!;
    const { mem, mmu } = machine(fmt);
    const va = 0x7f12_3456_7abc;
    mapX86_64(mem, va, 40);
    mmu.switchAddressSpace(1, 0);
    expect(mmu.translate(va, ACCESS_WRITE, MODE_USER)).toBe(40 * 4096 + 0xabc);

    const la57 = PRESET_FORMATS['x86-64-la57']!;
    const m5 = machine(la57);
    const va5 = 2 ** 50 + 0x1234_5678;
    const idx = [48, 39, 30, 21, 12].map((s) => Math.floor(va5 / 2 ** s) % 512);
    const next = [2, 3, 4, 5, 33];
    for (let l = 0; l < 5; l++)
      m5.mem.write32((l + 1) * 4096 + idx[l]! * 8, (next[l]! << 12) | X86_P | X86_RW | X86_US);
    m5.mmu.switchAddressSpace(1, 0);
    expect(m5.mmu.translate(va5, ACCESS_READ, MODE_USER)).toBe(33 * 4096 + 0x678);
  });

  it('sv39: pointers have R=W=X=0, permissions and A/D only in the leaf', () => {
    const fmt = PRESET_FORMATS.sv39!;
    const { mem, mmu } = machine(fmt);
    const va = 0x40_1234_5678 % 2 ** 39;
    const idx = [30, 21, 12].map((s) => Math.floor(va / 2 ** s) % 512);
    mem.write32(1 * 4096 + idx[0]! * 8, (2 << 10) | SV_V);
    mem.write32(2 * 4096 + idx[1]! * 8, (3 << 10) | SV_V);
    mem.write32(3 * 4096 + idx[2]! * 8, (17 << 10) | SV_V | SV_R | SV_W | SV_U);
    mmu.switchAddressSpace(1, 0);
    expect(mmu.translate(va, ACCESS_WRITE, MODE_USER)).toBe(17 * 4096 + (va % 4096));
    expect(mem.read32(1 * 4096 + idx[0]! * 8) & SV_A).toBe(0);
    expect(mem.read32(3 * 4096 + idx[2]! * 8) & (SV_A | SV_D)).toBe(SV_A | SV_D);
  });

  it('the custom tiny format: 15-bit VA, 32-byte pages, 5+5 index bits, 1-byte entries', () => {
    const tiny = compileFormat({
      name: 'tiny',
      pageBytes: 32,
      levelBits: [5, 5],
      entryBytes: 1,
      flags: { present: 7 },
      pfn: { shift: 0, width: 7 },
      permissionScope: 'all-levels',
    });
    const { mem, mmu } = machine(tiny, 128);
    // va 0x611c = 0b11000_01000_11100: directory index 24, table index 8, offset 28.
    // Root table in frame 108: entry 24 at PA 108*32 + 24 = 0xd98 holds 0xa1 (valid, pfn 0x21).
    // Table in frame 33: entry 8 at PA 33*32 + 8 = 0x428 holds 0xb5 (valid, pfn 0x35 = 53).
    // PA = 53 * 32 + 28 = 1724 = 0x6bc.
    mem.write8(0xd98, 0xa1);
    mem.write8(0x428, 0xb5);
    mem.write8(0x6bc, 0x42);
    mmu.switchAddressSpace(108, 0);
    expect(mmu.translate(0x611c, ACCESS_READ, MODE_USER)).toBe(0x6bc);
    expect(mmu.load8(0x611c)).toBe(0x42);
    expect(mmu.translate(0x6124, ACCESS_READ, MODE_USER)).toBe(-1); // table entry 9 is zero
    expect(mmu.fault).toMatchObject({ kind: 'not-present', level: 1 });
  });
});

describe('faults', () => {
  const fmt = PRESET_FORMATS['x86-64']!;
  const va = 0x0000_4020_1000;

  it('not present, at the level where the walk stops', () => {
    for (let level = 0; level < 4; level++) {
      const { mem, mmu } = machine(fmt);
      const map = mapX86_64(mem, va, 40);
      mem.write32(map.entryPa(level), 0);
      mmu.switchAddressSpace(1, 0);
      expect(mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(-1);
      expect(mmu.fault).toMatchObject({ kind: 'not-present', level, va });
    }
  });

  it('protection: write to read-only (any level on x86), user to kernel, no-execute', () => {
    let m = machine(fmt);
    mapX86_64(m.mem, va, 40, { pdpt: X86_P | X86_US });
    m.mmu.switchAddressSpace(1, 0);
    expect(m.mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(40 * 4096);
    expect(m.mmu.translate(va, ACCESS_WRITE, MODE_USER)).toBe(-1);
    expect(m.mmu.fault).toMatchObject({ kind: 'protection', reason: 'write-to-read-only' });
    // WP=1: the kernel may not write a read-only page either.
    expect(m.mmu.translate(va, ACCESS_WRITE, MODE_KERNEL)).toBe(-1);

    m = machine(fmt);
    mapX86_64(m.mem, va, 40, { pd: X86_P | X86_RW });
    m.mmu.switchAddressSpace(1, 0);
    expect(m.mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(m.mmu.fault.reason).toBe('user-to-kernel');
    expect(m.mmu.translate(va, ACCESS_READ, MODE_KERNEL)).toBe(40 * 4096);

    m = machine(fmt);
    mapX86_64(m.mem, va, 40, { nxAt: 1 });
    m.mmu.switchAddressSpace(1, 0);
    expect(m.mmu.translate(va, ACCESS_EXECUTE, MODE_USER)).toBe(-1);
    expect(m.mmu.fault.reason).toBe('execute-no-execute');
    expect(m.mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(40 * 4096);
  });

  it('reserved bits, huge pages (not modelled), frames beyond memory, addresses too wide', () => {
    let m = machine(fmt);
    let map = mapX86_64(m.mem, va, 40);
    m.mem.write32(map.entryPa(2) + 4, 1 << (46 - 32)); // bit 46: above MAXPHYADDR
    m.mmu.switchAddressSpace(1, 0);
    expect(m.mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(m.mmu.fault).toMatchObject({ kind: 'reserved', level: 2 });

    m = machine(fmt);
    map = mapX86_64(m.mem, va, 40, { pd: X86_P | X86_RW | X86_US | X86_PS });
    m.mmu.switchAddressSpace(1, 0);
    expect(m.mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(m.mmu.fault).toMatchObject({ kind: 'reserved', level: 2 });

    m = machine(fmt);
    mapX86_64(m.mem, va, 1000); // frame 1000 > 64 installed
    m.mmu.switchAddressSpace(1, 0);
    expect(m.mmu.translate(va, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(m.mmu.fault.kind).toBe('bus');

    expect(m.mmu.translate(2 ** 48, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(m.mmu.fault.kind).toBe('address-size');
  });

  it('sv39: execute needs X, a read of an execute-only page faults, W without R is reserved', () => {
    const sv = PRESET_FORMATS.sv39!;
    const leaf = (flags: number) => {
      const m = machine(sv);
      m.mem.write32(1 * 4096, (2 << 10) | SV_V);
      m.mem.write32(2 * 4096, (3 << 10) | SV_V);
      m.mem.write32(3 * 4096 + 8, (9 << 10) | flags);
      m.mmu.switchAddressSpace(1, 0);
      return m.mmu;
    };
    let mmu = leaf(SV_V | SV_R | SV_W | SV_U);
    expect(mmu.translate(0x1000, ACCESS_EXECUTE, MODE_USER)).toBe(-1);
    expect(mmu.fault.reason).toBe('execute-no-execute');
    mmu = leaf(SV_V | SV_X | SV_U);
    expect(mmu.translate(0x1000, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(mmu.fault.reason).toBe('read-not-readable');
    expect(mmu.translate(0x1000, ACCESS_EXECUTE, MODE_USER)).toBe(9 * 4096);
    mmu = leaf(SV_V | SV_W | SV_U);
    expect(mmu.translate(0x1000, ACCESS_WRITE, MODE_USER)).toBe(-1);
    expect(mmu.fault.kind).toBe('reserved');
  });

  it('a handler that maps the page makes the access retry: one access, one TLB miss, two walks', () => {
    const { mem, mmu } = machine(fmt);
    mmu.switchAddressSpace(1, 0);
    let calls = 0;
    mmu.setFaultHandler((f) => {
      calls++;
      expect(f.kind).toBe('not-present');
      mapX86_64(mem, f.va, 50);
    });
    mmu.store32(va + 8, 0xcafe);
    expect(calls).toBe(1);
    expect(mem.read32(50 * 4096 + 8)).toBe(0xcafe);
    expect(mmu.accesses).toBe(1);
    expect(mmu.dtlb.misses).toBe(1);
    expect(mmu.dtlb.hits).toBe(0);
    expect(mmu.walks).toBe(2);
  });

  it('charges cycles as the textbook effective access time says', () => {
    const { mem, mmu, clock } = machine(fmt);
    mapX86_64(mem, va, 40);
    mmu.switchAddressSpace(1, 0);
    const c = mmu.cost;
    const t0 = clock.now;
    for (let i = 0; i < 10; i++) mmu.load8(va + i); // 1 miss (4-level walk), 9 hits
    const h = 0.9;
    const eat =
      h * (c.tlbLookupCycles + c.memoryAccessCycles) +
      (1 - h) * (c.tlbLookupCycles + 5 * c.memoryAccessCycles);
    expect(clock.now - t0).toBe(Math.round(10 * eat));
  });
});

describe('the TLB', () => {
  it('puts a VPN in set vpn mod sets, also for a set count that is not a power of two', () => {
    const t = new Tlb({ entries: 12, ways: 2, replacement: 'lru' });
    expect(t.sets).toBe(6);
    const slot = t.insert(13, 0, 5, TLB_READABLE);
    expect(Math.floor(slot / 2)).toBe(13 % 6);
    expect(t.lookup(13, 0)).toBe(slot);
    t.checkInvariants();
  });

  it('replaces by LRU, FIFO, or seeded random', () => {
    const fill = (rep: 'lru' | 'fifo' | 'random', seed = 1) => {
      const t = new Tlb({ entries: 2, ways: 2, replacement: rep, seed });
      t.insert(1, 0, 1, 0);
      t.insert(2, 0, 2, 0);
      t.lookup(1, 0); // 1 becomes most recent
      t.insert(3, 0, 3, 0);
      return [t.probe(1, 0) >= 0, t.probe(2, 0) >= 0];
    };
    expect(fill('lru')).toEqual([true, false]);
    expect(fill('fifo')).toEqual([false, true]);
    expect(fill('random', 5)).toEqual(fill('random', 5));
  });

  it('misses exactly as a textbook set-associative LRU cache of the same geometry', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 300 }),
        fc.constantFrom([8, 1], [8, 2], [8, 8], [16, 4], [6, 3]),
        (pages, [entries, ways]) => {
          const fmt = PRESET_FORMATS['x86-32']!;
          const mem = new PhysicalMemory({ frameCount: 64, pageBytes: 4096 });
          // identity-ish map of 41 pages: directory entry 0 -> table in frame 2
          mem.write32(1 * 4096, (2 << 12) | X86_P | X86_RW | X86_US);
          for (let p = 0; p <= 40; p++)
            mem.write32(2 * 4096 + p * 4, ((p + 3) << 12) | X86_P | X86_RW | X86_US | X86_A | X86_D);
          const mmu = new Mmu(mem, fmt, {
            tlb: { entries: entries!, ways: ways!, replacement: 'lru' },
            cost: resolveCostModel(),
            clock: new Clock({ hz: 1e9 }),
          });
          mmu.switchAddressSpace(1, 0);
          for (const p of pages) mmu.load8(p * 4096);
          // The model: sets of `ways` pages in LRU order.
          const sets = entries! / ways!;
          const model: number[][] = Array.from({ length: sets }, () => []);
          let misses = 0;
          for (const p of pages) {
            const s = model[p % sets]!;
            const i = s.indexOf(p);
            if (i >= 0) s.splice(i, 1);
            else {
              misses++;
              if (s.length === ways) s.shift();
            }
            s.push(p);
          }
          expect(mmu.dtlb.misses).toBe(misses);
          expect(mmu.dtlb.hits).toBe(pages.length - misses);
        },
      ),
      { seed: 42, numRuns: 120 },
    );
  });

  it('keeps entries across switches with ASIDs; flushes them without; global entries survive', () => {
    const fmt = PRESET_FORMATS['x86-64']!;
    const va = 0x1000;
    const run = (asidBits: number) => {
      const { mem, mmu } = machine(fmt, 64, { asidBits });
      mapX86_64(mem, va, 40);
      mmu.switchAddressSpace(1, 1);
      mmu.load8(va);
      mmu.switchAddressSpace(1, 2);
      mmu.switchAddressSpace(1, 1);
      mmu.load8(va);
      return mmu.dtlb.misses;
    };
    expect(run(8)).toBe(1);
    expect(run(0)).toBe(2);
    const t = new Tlb({ entries: 4, ways: 4, replacement: 'lru' });
    t.insert(7, 1, 3, TLB_READABLE | TLB_GLOBAL);
    t.insert(8, 1, 4, TLB_READABLE | TLB_USER | TLB_WRITABLE);
    t.flushNonGlobal();
    expect(t.lookup(7, 9)).toBeGreaterThanOrEqual(0); // global: any ASID
    expect(t.lookup(8, 1)).toBe(-1);
    t.invalidateAsid(1);
    expect(t.lookup(7, 1)).toBeGreaterThanOrEqual(0);
    t.invalidatePage(7, 1);
    expect(t.lookup(7, 1)).toBe(-1);
    t.flushAll();
    expect(t.validCount()).toBe(0);
  });

  it('splits instruction and data TLBs when asked', () => {
    const fmt = PRESET_FORMATS['x86-64']!;
    const { mem, mmu } = machine(fmt, 64, { splitTlb: true });
    mapX86_64(mem, 0x1000, 40);
    mmu.switchAddressSpace(1, 0);
    mmu.fetch8(0x1000);
    mmu.load8(0x1000);
    expect(mmu.itlb).not.toBe(mmu.dtlb);
    expect(mmu.itlb.misses).toBe(1);
    expect(mmu.dtlb.misses).toBe(1);
  });

  it('software-managed: every miss traps to the refill handler and nothing is walked', () => {
    const fmt = PRESET_FORMATS['x86-64']!;
    const { mmu } = machine(fmt, 64, { tlbManagement: 'software' });
    mmu.switchAddressSpace(1, 0);
    expect(mmu.translate(0x5000, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(mmu.fault.kind).toBe('tlb-miss');
    mmu.setRefillHandler((m, va) => {
      if (va >= 0x10000) {
        m.raiseFault('not-present', 3);
        return false;
      }
      m.tlbWrite(va, 20, TLB_READABLE | TLB_USER);
      return true;
    });
    expect(mmu.translate(0x5004, ACCESS_READ, MODE_USER)).toBe(20 * 4096 + 4);
    expect(mmu.translate(0x20000, ACCESS_READ, MODE_USER)).toBe(-1);
    expect(mmu.fault).toMatchObject({ kind: 'not-present', level: 3 });
    expect(mmu.walks).toBe(0);
    expect(mmu.refillTraps).toBe(3);
  });
});

describe('format specs', () => {
  const base = {
    name: 'x',
    pageBytes: 32,
    levelBits: [5, 5],
    entryBytes: 1 as const,
    flags: { present: 7 },
    pfn: { shift: 0, width: 7 },
    permissionScope: 'all-levels' as const,
  };
  it.each([
    [{ ...base, pfn: { shift: 0, width: 8 } }, 'pfn'],
    [{ ...base, flags: { present: 9 } }, 'flags.present'],
    [{ ...base, pageBytes: 48 }, 'pageBytes'],
    [{ ...base, pageBytes: 8 }, 'pageBytes'],
    [{ ...base, levelBits: [] }, 'levelBits'],
    [{ ...base, levelBits: [2, 2, 2, 2, 2, 2] }, 'levelBits'],
    [{ ...base, flags: {} }, 'flags.present'],
  ])('refuses an impossible spec and names the field (%#)', (spec, field) => {
    try {
      compileFormat(spec as never);
      throw new Error('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(FormatError);
      expect((err as FormatError).field).toBe(field);
    }
  });
});

describe('the clock', () => {
  it('fires events in time order, ties in scheduling order, past events at once', () => {
    const clock = new Clock({ hz: 1e9 });
    const seen: string[] = [];
    clock.schedule(30, 'c', () => seen.push('c'));
    clock.schedule(10, 'a', () => seen.push('a'));
    clock.schedule(10, 'b', () => seen.push('b'));
    clock.runUntil(20);
    expect(seen).toEqual(['a', 'b']);
    expect(clock.now).toBe(20);
    clock.schedule(5, 'late', () => seen.push('late'));
    expect(clock.advanceToNextEvent()).toBe(true);
    expect(seen).toEqual(['a', 'b', 'late']);
    clock.advanceToNextEvent();
    expect(seen.at(-1)).toBe('c');
    expect(clock.now).toBe(30);
    expect(clock.advanceToNextEvent()).toBe(false);
  });
});
