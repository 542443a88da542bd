/**
 * The vmlab command line. Each subcommand lives in its own module; this file only wires them.
 * A user's mistake (InputError, a bad option) prints one clear line and exits with status 2.
 */
import { Command, CommanderError } from 'commander';
import { registerDemo } from './cmd-demo.ts';
import { registerDiagram } from './cmd-diagram.ts';
import { registerGcReplay } from './cmd-gc-replay.ts';
import { registerMallocReplay } from './cmd-malloc-replay.ts';
import { registerReplay } from './cmd-replay.ts';
import { registerProc, registerRun } from './cmd-run.ts';
import { registerTranslate } from './cmd-translate.ts';
import { InputError } from './configfile.ts';

const program = new Command('vmlab')
  .description('vmlab: an emulated computer and a small Unix-like kernel whose subject is memory')
  .showHelpAfterError('(run with --help for usage)')
  .addHelpText(
    'after',
    `
Examples:
  vmlab run                                   # the default tour: demand paging, COW, swapping
  vmlab run userland/workloads/thrashing.yaml --report report.html
  vmlab proc userland/workloads/cow.yaml /proc/meminfo 'pmap 3' --at 1ms
  vmlab demo --pages 16 -f sv39
  vmlab translate -f docs/examples/tiny-format.yaml -i docs/examples/tiny-image.txt -r 108 0x611c
  vmlab replay --generate 10 --max-page 5 --frames 3 --policy fifo -s 2   # a replacement exercise
  vmlab malloc-replay userland/labs/malloc/traces/binary.rep
  vmlab gc-replay binarytrees 10              # one managed-heap program under every collector
  vmlab diagram
  vmlab COMMAND --help                        # each command's options and examples`,
  )
  .exitOverride();

registerRun(program);
registerProc(program);
registerDemo(program);
registerDiagram(program);
registerTranslate(program);
registerReplay(program);
registerMallocReplay(program);
registerGcReplay(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else if (err instanceof InputError) {
    process.stderr.write(`vmlab: ${err.message}\n`);
    process.exitCode = 2;
  } else {
    throw err;
  }
}
