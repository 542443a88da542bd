/**
 * System-wide event counters, named as Linux's /proc/vmstat names them. They are plain number
 * fields, incremented where the event happens, and always on.
 */
export class VmEvents {
  pgfault = 0;
  pgmajfault = 0;
  /**
   * User and page-cache pages freed by the mm layer and reclaim. /proc/vmstat's pgfree is the
   * buddy allocator's count instead (every page freed, kernel pages too), as pgalloc_<zone> is.
   */
  pgfree = 0;
  pswpin = 0;
  pswpout = 0;
  pgpgin = 0;
  pgpgout = 0;
  pgscan_kswapd = 0;
  pgscan_direct = 0;
  pgsteal_kswapd = 0;
  pgsteal_direct = 0;
  /** Of the scans and steals above, those whose victim was a file page. */
  pgscan_file = 0;
  pgsteal_file = 0;
  /**
   * Allocations that entered direct reclaim. vmlab reclaims only for user and page-cache pages,
   * which Linux allocates GFP_HIGHUSER_MOVABLE (highest zone Movable): vmstat allocstall_movable.
   */
  allocstall_movable = 0;
  pgactivate = 0;
  pgdeactivate = 0;
  pglazyfree = 0;
  pglazyfreed = 0;
  pgreuse = 0;
  oom_kill = 0;
  /** File pages that went from clean to dirty, and file pages written to their files. */
  nr_dirtied = 0;
  nr_written = 0;
  /** Pages reclaim wrote out (to swap or to their files) in order to free them. */
  nr_vmscan_write = 0;
  workingset_refault_anon = 0;
  workingset_refault_file = 0;
  workingset_activate_anon = 0;
  workingset_activate_file = 0;
  /** Copy-on-write faults that copied a page (no Linux name; shown in summaries). */
  cow_fault = 0;
  /** Stack-growth faults. */
  stack_grow = 0;
  /** Context switches. */
  context_switches = 0;
  nr_tlb_local_flush_all = 0;
  nr_tlb_local_flush_one = 0;
}
