/**
 * Sizes, times, frequencies and addresses as users write them (kernel/boot/units.ts). Each
 * parser answers undefined for text it cannot read, so that its caller can name the field.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatSize, parseAddress, parseFrequency, parseSize, parseTime } from '../kernel/boot/units.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

describe('parseSize', () => {
  it.each([
    ['4K', 4 * KiB],
    ['4k', 4 * KiB],
    ['4KB', 4 * KiB],
    ['4 KiB', 4 * KiB],
    ['64MiB', 64 * MiB],
    ['64M', 64 * MiB],
    ['2G', 2 * GiB],
    ['1T', 1024 * GiB],
    ['1.5K', 1536],
    ['0x1000', 4096],
    ['0X1000', 4096],
    ['4096', 4096],
    ['512B', 512],
    ['  8M  ', 8 * MiB],
    ['0', 0],
  ])('reads %j as %d bytes (binary units)', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each([
    '',
    'K',
    'lots',
    '-4K',
    '4X',
    '4 K B',
    '0x',
    '0x10K',
    '1e3',
    '1.1K', // 1126.4 bytes is not a whole number
    '0.5',
    '99999999999T', // beyond 2^53
  ])('refuses %j', (text) => {
    expect(parseSize(text)).toBeUndefined();
  });

  it('takes numbers as bytes when they are safe non-negative integers', () => {
    expect(parseSize(4096)).toBe(4096);
    expect(parseSize(0)).toBe(0);
    expect(parseSize(-1)).toBeUndefined();
    expect(parseSize(1.5)).toBeUndefined();
    expect(parseSize(Number.NaN)).toBeUndefined();
    expect(parseSize(Number.POSITIVE_INFINITY)).toBeUndefined();
    expect(parseSize(2 ** 53)).toBeUndefined();
  });

  it('agrees with n * 1024^k for every unit spelling (property)', () => {
    const units: Array<[string, number]> = [
      ['', 1],
      ['b', 1],
      ['K', KiB],
      ['KiB', KiB],
      ['kb', KiB],
      ['M', MiB],
      ['MiB', MiB],
      ['G', GiB],
      ['gib', GiB],
    ];
    fc.assert(
      fc.property(fc.nat({ max: 1_000_000 }), fc.constantFrom(...units), (n, [unit, scale]) => {
        expect(parseSize(`${n}${unit}`)).toBe(n * scale);
        expect(parseSize(`0x${n.toString(16)}`)).toBe(n);
      }),
    );
  });
});

describe('parseTime', () => {
  const hz = 1e9;
  it.each([
    ['10ms', 10_000_000],
    ['10 ms', 10_000_000],
    ['250us', 250_000],
    ['250µs', 250_000],
    ['3ns', 3],
    ['1s', 1_000_000_000],
    ['5000', 5000],
    ['5000cycles', 5000],
    ['1cycle', 1],
    ['0.5ms', 500_000],
  ])('reads %j as %d cycles at 1 GHz', (text, cycles) => {
    expect(parseTime(text, hz)).toBe(cycles);
  });

  it('converts seconds at the clock frequency given', () => {
    expect(parseTime('1ms', 3.3e9)).toBe(3_300_000);
    expect(parseTime('2us', 2.5e9)).toBe(5000);
    expect(parseTime('1s', 100)).toBe(100);
    // Whole cycles only: a fraction of a cycle rounds to the nearest.
    expect(parseTime('1ns', 2.4e9)).toBe(2);
  });

  it.each(['', 'ms', '10min', '1.5', '1.5cycles', '-1ms', 'soon', '10 m s'])('refuses %j', (text) => {
    expect(parseTime(text, hz)).toBeUndefined();
  });

  it('takes numbers as cycles', () => {
    expect(parseTime(5, hz)).toBe(5);
    expect(parseTime(-1, hz)).toBeUndefined();
    expect(parseTime(2.5, hz)).toBeUndefined();
  });
});

describe('parseFrequency', () => {
  it('reads Hz, kHz, MHz, GHz and exponents', () => {
    expect(parseFrequency('1GHz')).toBe(1e9);
    expect(parseFrequency('1.5 GHz')).toBe(1.5e9);
    expect(parseFrequency('500MHz')).toBe(5e8);
    expect(parseFrequency('100kHz')).toBe(1e5);
    expect(parseFrequency('2e9')).toBe(2e9);
    expect(parseFrequency(1e9)).toBe(1e9);
  });

  it('refuses zero, negatives and words', () => {
    expect(parseFrequency('0Hz')).toBeUndefined();
    expect(parseFrequency('fast')).toBeUndefined();
    expect(parseFrequency(0)).toBeUndefined();
    expect(parseFrequency(-5)).toBeUndefined();
    expect(parseFrequency(Number.POSITIVE_INFINITY)).toBeUndefined();
  });
});

describe('parseAddress', () => {
  it.each([
    ['0x7f00', 0x7f00n],
    ['0X1F', 31n],
    ['32512', 32512n],
    ['010', 10n], // decimal, not octal
    ['0b1010', 10n],
    ['0B11', 3n],
    ['1_000', 1000n],
    ['0xffff_ffff', 0xffffffffn],
    [' 0x10 ', 16n],
    ['0x1ffffffffffffff', 0x1ffffffffffffffn], // 57 bits: wider than a safe integer
  ])('reads %j', (text, value) => {
    expect(parseAddress(text)).toBe(value);
  });

  it.each(['', '0x', '0b', '-1', '12a', '0o17', '0b102', '0xg', 'main', '1.5'])('refuses %j', (text) => {
    expect(parseAddress(text)).toBeUndefined();
  });

  it('reads back any address written in hex, decimal or binary (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (v) => {
        expect(parseAddress(`0x${v.toString(16)}`)).toBe(v);
        expect(parseAddress(v.toString(10))).toBe(v);
        expect(parseAddress(`0b${v.toString(2)}`)).toBe(v);
      }),
    );
  });
});

describe('formatSize', () => {
  it.each([
    [0, '0'],
    [1, '1'],
    [1023, '1023'],
    [1024, '1K'],
    [1536, '1.5K'],
    [4096, '4K'],
    [1000 * KiB, '1000K'],
    [MiB, '1M'],
    [64 * MiB, '64M'],
    [1.5 * GiB, '1.5G'],
    [1024 * GiB, '1T'],
    [3.5 * 1024 * GiB, '3.5T'],
    [1024 * 1024 * GiB, '1024T'], // T is the largest unit
  ])('%d bytes is %s', (bytes, text) => {
    expect(formatSize(bytes)).toBe(text);
  });

  it('rounds sizes that are not whole units to one decimal, in the largest unit reached', () => {
    expect(formatSize(1025)).toBe('1K');
    expect(formatSize(1.5 * MiB + 1)).toBe('1.5M'); // was 1536K
    expect(formatSize(MiB - 1)).toBe('1M'); // was 1024K: rounding carries into the next unit
    expect(formatSize(GiB + 100 * MiB)).toBe('1.1G');
  });

  it('reads back through parseSize for whole units (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1023 }), fc.integer({ min: 0, max: 4 }), (n, k) => {
        const bytes = n * 1024 ** k;
        expect(parseSize(formatSize(bytes))).toBe(bytes);
      }),
    );
  });
});
