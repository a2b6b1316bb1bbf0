import { afterEach } from 'vitest';

type Closable = { close(): Promise<void> } | { stop(): Promise<void> };

/** Registers an afterEach that closes (or stops) everything `track`ed during the test, newest first. */
export function cleanupAfterEach(): <T extends Closable>(thing: T) => T {
  const things: Closable[] = [];
  afterEach(async () => {
    for (const t of things.splice(0).reverse()) await ('stop' in t ? t.stop() : t.close());
  });
  return (thing) => {
    things.push(thing);
    return thing;
  };
}
