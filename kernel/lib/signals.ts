/** Signal numbers (x86/generic Linux), si_codes, and wait-status encoding. */
export const SIGHUP = 1;
export const SIGINT = 2;
export const SIGQUIT = 3;
export const SIGILL = 4;
export const SIGABRT = 6;
export const SIGBUS = 7;
export const SIGFPE = 8;
export const SIGKILL = 9;
export const SIGUSR1 = 10;
export const SIGSEGV = 11;
export const SIGUSR2 = 12;
export const SIGPIPE = 13;
export const SIGALRM = 14;
export const SIGTERM = 15;
export const SIGCHLD = 17;
export const SIGCONT = 18;
export const SIGSTOP = 19;
export const NSIG = 64;

export const SEGV_MAPERR = 1;
export const SEGV_ACCERR = 2;
export const BUS_ADRERR = 2;

const NAMES: Record<number, string> = {
  [SIGHUP]: 'SIGHUP',
  [SIGINT]: 'SIGINT',
  [SIGQUIT]: 'SIGQUIT',
  [SIGILL]: 'SIGILL',
  [SIGABRT]: 'SIGABRT',
  [SIGBUS]: 'SIGBUS',
  [SIGFPE]: 'SIGFPE',
  [SIGKILL]: 'SIGKILL',
  [SIGUSR1]: 'SIGUSR1',
  [SIGSEGV]: 'SIGSEGV',
  [SIGUSR2]: 'SIGUSR2',
  [SIGPIPE]: 'SIGPIPE',
  [SIGALRM]: 'SIGALRM',
  [SIGTERM]: 'SIGTERM',
  [SIGCHLD]: 'SIGCHLD',
  [SIGCONT]: 'SIGCONT',
  [SIGSTOP]: 'SIGSTOP',
};

export function signalName(sig: number): string {
  return NAMES[sig] ?? `SIG${sig}`;
}

/** Signals whose default action is to ignore them (the rest terminate in vmlab). */
export function signalIsIgnoredByDefault(sig: number): boolean {
  return sig === SIGCHLD || sig === SIGCONT;
}

// wait status, as <sys/wait.h> decodes it
export const exitStatus = (code: number): number => (code & 0xff) << 8;
export const signaledStatus = (sig: number): number => sig & 0x7f;
export const WIFEXITED = (status: number): boolean => (status & 0x7f) === 0;
export const WEXITSTATUS = (status: number): number => (status >> 8) & 0xff;
export const WIFSIGNALED = (status: number): boolean => (status & 0x7f) !== 0 && (status & 0x7f) !== 0x7f;
export const WTERMSIG = (status: number): number => status & 0x7f;

/** A wait status in words: "exited 0", "killed by SIGSEGV". */
export function describeStatus(status: number): string {
  if (WIFEXITED(status)) return `exited ${WEXITSTATUS(status)}`;
  if (WIFSIGNALED(status)) return `killed by ${signalName(WTERMSIG(status))}`;
  return `status 0x${status.toString(16)}`;
}
