/**
 * /proc as processes see it: the files of procsys.ts and procpid.ts served through open() and
 * read() (kernel/fs/vfs.ts mounts them at /proc). A text file is rendered when it is opened (a
 * snapshot, as a seq_file's first read is) with `self` meaning the opener; pagemap is rendered
 * for each range read, 8 bytes per virtual page of the whole address space.
 */
import type { ProcSource } from '../fs/vfs.ts';
import type { Kernel } from '../proc/kernel.ts';
import { renderProc } from './procpid.ts';
import { renderProcFile } from './procsys.ts';

const PAGEMAP_PATH = /^\/proc\/(\d+|self)\/pagemap$/;
const PAGEMAP_ENTRY_BYTES = 8;

/** The source of /proc file `path` opened by the running process, or undefined. */
export function procSource(kernel: Kernel, path: string): ProcSource | undefined {
  const self = kernel.current?.pid;
  const resolved = self === undefined ? path : path.replace(/^\/proc\/self\//, `/proc/${self}/`);
  if (PAGEMAP_PATH.test(resolved)) return pagemapSource(kernel, resolved);
  const content = renderProcFile(kernel, resolved);
  if (content === undefined) return undefined;
  const bytes = typeof content === 'string' ? new TextEncoder().encode(content) : content;
  return {
    sizeBytes: bytes.length,
    read: (pos, length) => bytes.subarray(pos, pos + length),
  };
}

/** pagemap: entries rendered for the pages a read covers. */
function pagemapSource(kernel: Kernel, path: string): ProcSource | undefined {
  const page = kernel.hw.format.pageBytes;
  const pages = 2 ** kernel.hw.format.vaBits / page;
  if (renderProc(kernel, path, { pagemap: { startVa: 0, endVa: page } }) === undefined) return undefined;
  return {
    sizeBytes: pages * PAGEMAP_ENTRY_BYTES,
    read: (pos, length) => {
      const first = Math.floor(pos / PAGEMAP_ENTRY_BYTES);
      const last = Math.ceil((pos + length) / PAGEMAP_ENTRY_BYTES);
      const bytes = renderProc(kernel, path, { pagemap: { startVa: first * page, endVa: last * page } });
      if (bytes === undefined || typeof bytes === 'string') return new Uint8Array(0);
      const skip = pos - first * PAGEMAP_ENTRY_BYTES;
      return bytes.subarray(skip, skip + length);
    },
  };
}
