/**
 * Polls `check` until it returns something other than false/undefined, or
 * fails after `timeoutMs`. The one way tests wait for another process: a
 * deadline, never a fixed sleep.
 */
export async function waitFor<T>(
  check: () => T | false | undefined | Promise<T | false | undefined>,
  options: { timeoutMs?: number; what?: string } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 5_000);
  let delay = 1;
  for (;;) {
    const v = await check();
    if (v !== false && v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${options.what ?? 'condition'}`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 50);
  }
}
