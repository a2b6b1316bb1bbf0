/**
 * Resolves with the first SIGINT or SIGTERM; a second one exits with code 1
 * at once. Holds the event loop open until disposed (a process on the memory
 * bus has nothing else that does).
 */
export function stopSignal(
  warn: (line: string) => void,
  onSecond = 'exiting now, without stopping cleanly',
): { received: Promise<NodeJS.Signals>; readonly signal: NodeJS.Signals | undefined; dispose(): void } {
  let first: NodeJS.Signals | undefined;
  let done!: (signal: NodeJS.Signals) => void;
  const received = new Promise<NodeJS.Signals>((r) => (done = r));
  const onSignal = (signal: NodeJS.Signals): void => {
    if (first === undefined) {
      first = signal;
      done(signal);
      return;
    }
    warn(`${signal} again: ${onSecond}`);
    process.exit(1);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const keepAlive = setInterval(() => {}, 1 << 30);
  return {
    received,
    get signal() {
      return first;
    },
    dispose: () => {
      clearInterval(keepAlive);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
