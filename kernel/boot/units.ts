/**
 * Parsing of sizes, times and addresses as users write them: `4K`, `64MiB`, `2G`, `0x1000`;
 * `10ms`, `250us`, `1s`, `5000` (cycles); `0x7f00`, `32512`. Units are binary for sizes
 * (K = KiB = 1024, as Linux and OSTEP's tools read them). Each parser returns undefined for
 * text it cannot read, so callers can name the field in their error.
 */

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  tib: 1024 ** 4,
};

/** Bytes in a size such as `4K`, `64MiB`, `2G`, `4096` or `0x1000`; undefined if unreadable. */
export function parseSize(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isSafeInteger(text) && text >= 0 ? text : undefined;
  const t = text.trim();
  if (/^0x[0-9a-f]+$/i.test(t)) return safe(Number.parseInt(t.slice(2), 16));
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(t);
  if (!m) return undefined;
  const unit = SIZE_UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return undefined;
  const v = Number(m[1]) * unit;
  return Number.isInteger(v) ? safe(v) : undefined;
}

/** Cycles in a time such as `10ms`, `250us`, `3ns`, `1s` or `5000` (plain cycles) at `hz`. */
export function parseTime(text: string | number, hz: number): number | undefined {
  if (typeof text === 'number') return Number.isSafeInteger(text) && text >= 0 ? text : undefined;
  const m = /^(\d+(?:\.\d+)?)\s*(s|ms|us|µs|ns|cycles?|)$/i.exec(text.trim());
  if (!m) return undefined;
  const v = Number(m[1]);
  const unit = m[2]!.toLowerCase();
  const seconds: Record<string, number> = { s: 1, ms: 1e-3, us: 1e-6, µs: 1e-6, ns: 1e-9 };
  const cycles = unit in seconds ? Math.round(v * seconds[unit]! * hz) : v;
  return Number.isInteger(cycles) ? safe(cycles) : undefined;
}

/** A frequency such as `1GHz`, `500MHz`, `2e9`; undefined if unreadable. */
export function parseFrequency(text: string | number): number | undefined {
  if (typeof text === 'number') return text > 0 && Number.isFinite(text) ? text : undefined;
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)\s*(hz|khz|mhz|ghz|)$/i.exec(text.trim());
  if (!m) return undefined;
  const mult: Record<string, number> = { '': 1, hz: 1, khz: 1e3, mhz: 1e6, ghz: 1e9 };
  const v = Number(m[1]) * mult[m[2]!.toLowerCase()]!;
  return v > 0 && Number.isFinite(v) ? v : undefined;
}

/** An address in hex (`0x…`), octal-free decimal, or binary (`0b…`), as a BigInt; undefined if unreadable. */
export function parseAddress(text: string): bigint | undefined {
  const t = text.trim().replace(/_/g, '');
  if (/^0x[0-9a-f]+$/i.test(t) || /^0b[01]+$/i.test(t) || /^\d+$/.test(t)) return BigInt(t);
  return undefined;
}

/**
 * `bytes` as a short binary size: 4K, 64M, 1.5G, in the largest unit it reaches; exact when
 * it is a whole number of that unit, else rounded to one decimal (1025 -> 1K, 1048575 -> 1M).
 */
export function formatSize(bytes: number): string {
  const units = ['', 'K', 'M', 'G', 'T'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (Number.isInteger(v)) return `${v}${units[i]}`;
  let tenths = Math.round(v * 10);
  if (tenths >= 10240 && i < units.length - 1) {
    tenths = Math.round(tenths / 1024);
    i++;
  }
  return `${tenths / 10}${units[i]}`;
}

function safe(v: number): number | undefined {
  return Number.isSafeInteger(v) ? v : undefined;
}
