/**
 * Loaded with `--import` into the worker processes `cohort up` and `cohort
 * demo` start, whose stdin is a pipe from that parent. When the pipe closes,
 * the parent is gone, however it ended (even SIGKILL, when it could not stop
 * them itself): the worker then stops as on SIGTERM, and exits anyway if that
 * takes longer than STOP_BOUND_MS. Orphaned workers would otherwise run on,
 * reconnecting to a server that died with the parent.
 */
const STOP_BOUND_MS = 15_000;

const stdin = process.stdin;
stdin.on('error', () => {});
stdin.once('end', () => {
  process.kill(process.pid, 'SIGTERM');
  setTimeout(() => process.exit(1), STOP_BOUND_MS).unref();
});
stdin.resume();
// Watching the pipe must not keep the process alive once the worker has stopped.
(stdin as { unref?: () => void }).unref?.();

export {};
