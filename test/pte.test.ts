/**
 * PteCodec: the kernel's view of page-table entries, for every preset format and a few tiny
 * custom ones. Leaf entries decode (through the format's own decoder) to the frame and
 * permissions asked for; non-present swap and PROT_NONE entries carry any payload up to
 * maxPayload and never look present or none; withWritable/withDirty change one bit.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileFormat, decodeEntry, type PagingFormat } from '../kernel/hw/paging/format.ts';
import { PRESET_FORMATS } from '../kernel/hw/paging/presets.ts';
import { NP_PROTNONE, NP_SWAP, PTE_EXEC, PTE_READ, PTE_WRITE, PteCodec } from '../kernel/mm/pte.ts';

const tiny8 = compileFormat({
  name: 'tiny-1byte',
  pageBytes: 32,
  levelBits: [3, 2],
  entryBytes: 1,
  flags: { present: 7, writable: 6, user: 5 },
  pfn: { shift: 0, width: 5 },
  permissionScope: 'all-levels',
});
const tiny16 = compileFormat({
  name: 'tiny-2byte-leaf-only',
  pageBytes: 256,
  levelBits: [4, 4],
  entryBytes: 2,
  flags: { present: 0, readable: 1, writable: 2, execute: 3, user: 4, accessed: 5, dirty: 6 },
  pfn: { shift: 8, width: 8 },
  permissionScope: 'leaf-only',
});

const FORMATS: Array<[string, PagingFormat]> = [
  ...Object.entries(PRESET_FORMATS),
  [tiny8.name, tiny8],
  [tiny16.name, tiny16],
];

const PERMS = [
  PTE_READ,
  PTE_READ | PTE_WRITE,
  PTE_READ | PTE_EXEC,
  PTE_READ | PTE_WRITE | PTE_EXEC,
  PTE_WRITE,
  0,
];

describe.each(FORMATS)('PteCodec on %s', (_name, fmt) => {
  const pte = new PteCodec(fmt);
  const pfnArb = fc.integer({ min: 0, max: fmt.maxPfn });

  it('leaf entries carry the frame and the permissions asked for', () => {
    fc.assert(
      fc.property(
        pfnArb,
        fc.constantFrom(...PERMS),
        fc.boolean(),
        fc.boolean(),
        (pfn, perm, dirty, accessed) => {
          const lo = pte.leaf(pfn, perm, { dirty, accessed });
          const hi = pte.hi;
          const d = decodeEntry(fmt, lo, hi);
          expect(pte.isPresent(lo, hi)).toBe(true);
          expect(pte.isNone(lo, hi)).toBe(false);
          expect(pte.pfnOf(lo, hi)).toBe(pfn);
          expect(d.pfn).toBe(pfn);
          expect(d.reserved).toBe(false);
          if (fmt.has.user) expect(d.user).toBe(true);
          if (fmt.has.writable) expect(d.writable).toBe((perm & PTE_WRITE) !== 0);
          expect(pte.isWritable(lo, hi)).toBe(!fmt.has.writable || (perm & PTE_WRITE) !== 0);
          if (fmt.has.readable) expect(d.readable).toBe((perm & (PTE_READ | PTE_WRITE)) !== 0);
          if (fmt.has.noExecute) expect(d.noExecute).toBe((perm & PTE_EXEC) === 0);
          if (fmt.has.execute) expect(d.execute).toBe((perm & PTE_EXEC) !== 0);
          expect(pte.isDirty(lo, hi)).toBe(fmt.has.dirty && dirty);
          expect(pte.isAccessed(lo, hi)).toBe(fmt.has.accessed && accessed);
          expect(lo >>> 0).toBe(lo);
          expect(hi >>> 0).toBe(hi);
          if (fmt.entryBytes < 8) expect(hi).toBe(0);
          if (fmt.entryBytes < 4) expect(lo).toBeLessThan(2 ** (fmt.entryBytes * 8));
        },
      ),
      { seed: 7, numRuns: 200 },
    );
  });

  it('withWritable and withDirty change their bit and nothing else', () => {
    fc.assert(
      fc.property(pfnArb, fc.constantFrom(...PERMS), fc.boolean(), (pfn, perm, dirty) => {
        const lo = pte.leaf(pfn, perm, { dirty, accessed: true });
        const hi = pte.hi;
        const rwLo = pte.withWritable(lo, hi, true);
        const rwHi = pte.hi;
        expect(pte.isWritable(rwLo, rwHi)).toBe(true);
        expect(pte.pfnOf(rwLo, rwHi)).toBe(pfn);
        expect(pte.isDirty(rwLo, rwHi)).toBe(pte.isDirty(lo, hi));
        const roLo = pte.withWritable(rwLo, rwHi, false);
        const roHi = pte.hi;
        expect(pte.isWritable(roLo, roHi)).toBe(!fmt.has.writable);
        expect(pte.isPresent(roLo, roHi)).toBe(true);
        expect(pte.pfnOf(roLo, roHi)).toBe(pfn);
        const dLo = pte.withDirty(roLo, roHi, true);
        const dHi = pte.hi;
        expect(pte.isDirty(dLo, dHi)).toBe(fmt.has.dirty);
        expect(pte.isWritable(dLo, dHi)).toBe(!fmt.has.writable);
        const cLo = pte.withDirty(dLo, dHi, false);
        const cHi = pte.hi;
        expect(pte.isDirty(cLo, cHi)).toBe(false);
        expect(pte.pfnOf(cLo, cHi)).toBe(pfn);
        // Clearing what was set gives back the read-only clean entry exactly.
        expect([cLo, cHi]).toEqual([pte.withDirty(roLo, roHi, false), pte.hi]);
        const aLo = pte.withAccessed(cLo, cHi, false);
        expect(pte.isAccessed(aLo, pte.hi)).toBe(false);
      }),
      { seed: 8, numRuns: 100 },
    );
  });

  it('pointer entries are present, name the table frame and carry no leaf permissions on leaf-only formats', () => {
    for (const pfn of [0, 1, fmt.maxPfn]) {
      const lo = pte.pointer(pfn);
      const hi = pte.hi;
      expect(pte.isPresent(lo, hi)).toBe(true);
      expect(pte.pfnOf(lo, hi)).toBe(pfn);
      const d = decodeEntry(fmt, lo, hi);
      if (fmt.permissionScope === 'leaf-only') {
        expect(d.readable || d.writable || d.execute).toBe(false);
      } else {
        if (fmt.has.writable) expect(d.writable).toBe(true);
        if (fmt.has.user) expect(d.user).toBe(true);
        if (fmt.has.noExecute) expect(d.noExecute).toBe(false);
      }
    }
  });

  it('non-present entries round-trip swap and PROT_NONE payloads up to maxPayload', () => {
    expect(pte.maxPayload).toBeGreaterThanOrEqual(fmt.entryBytes === 1 ? 31 : 2 ** 13 - 1);
    const payloads = fc.oneof(
      fc.integer({ min: 0, max: pte.maxPayload }),
      fc.constantFrom(0, 1, pte.maxPayload, pte.maxPayload - 1, Math.floor(pte.maxPayload / 2)),
    );
    fc.assert(
      fc.property(payloads, fc.constantFrom(NP_SWAP, NP_PROTNONE), (payload, tag) => {
        const lo = pte.nonPresent(tag, payload);
        const hi = pte.hi;
        expect(pte.isPresent(lo, hi)).toBe(false);
        expect(pte.isNone(lo, hi)).toBe(false);
        expect(pte.nonPresentTag(lo, hi)).toBe(tag);
        expect(pte.nonPresentPayload(lo, hi)).toBe(payload);
        expect(lo >>> 0).toBe(lo);
        if (fmt.entryBytes < 8) expect(hi).toBe(0);
        if (fmt.entryBytes < 4) expect(lo).toBeLessThan(2 ** (fmt.entryBytes * 8));
      }),
      { seed: 9, numRuns: 300 },
    );
  });

  it('refuses a payload that does not fit, or is not a natural number', () => {
    expect(() => pte.nonPresent(NP_SWAP, pte.maxPayload + 1)).toThrow(RangeError);
    expect(() => pte.nonPresent(NP_SWAP, -1)).toThrow(RangeError);
    expect(() => pte.nonPresent(NP_SWAP, 1.5)).toThrow(RangeError);
  });

  it('the none entry is none and not present', () => {
    expect(pte.isNone(0, 0)).toBe(true);
    expect(pte.isPresent(0, 0)).toBe(false);
  });
});

describe('PteCodec payload width', () => {
  it('uses every bit but the present bit: 1-byte entries hold 5-bit payloads, 8-byte ones 50-bit', () => {
    expect(new PteCodec(tiny8).maxPayload).toBe(2 ** 5 - 1);
    expect(new PteCodec(tiny16).maxPayload).toBe(2 ** 13 - 1);
    expect(new PteCodec(PRESET_FORMATS['x86-32']!).maxPayload).toBe(2 ** 29 - 1);
    expect(new PteCodec(PRESET_FORMATS['x86-64']!).maxPayload).toBe(2 ** 50 - 1);
  });
});
