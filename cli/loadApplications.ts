import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Application } from '../index.js';

/** A mistake in how the command was called (a flag, a path, a module): exit code 2, no stack trace. */
export class CliUsageError extends Error {
  override readonly name = 'CliUsageError';
  /** Print the usage text after the message (for a wrong or missing flag, not for a wrong file). */
  readonly showUsage: boolean;
  constructor(message: string, options: ErrorOptions & { showUsage?: boolean } = {}) {
    super(message, options);
    this.showUsage = options.showUsage ?? false;
  }
}

/**
 * An application as `defineApplication` makes it, recognised by shape: a
 * module loaded by path may carry its own copy of cohort (or, under tsx, the
 * sources rather than dist), so `instanceof` or identity cannot tell.
 */
export function isApplication(value: unknown): value is Application {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  const machine = v['machine'];
  return (
    typeof v['name'] === 'string' &&
    typeof machine === 'object' &&
    machine !== null &&
    typeof (machine as { transition?: unknown }).transition === 'function' &&
    typeof (machine as { config?: unknown }).config === 'object' &&
    (v['commit'] === 'memory' || v['commit'] === 'journal' || v['commit'] === 'replicas') &&
    typeof v['unusedSessionLifetime'] === 'number' &&
    typeof v['snapshotEvery'] === 'number'
  );
}

const TYPESCRIPT = /\.(?:ts|mts|cts|tsx)$/i;
let typescriptLoader: Promise<void> | undefined;

/**
 * Makes `import()` of a .ts file work under plain `node dist/cli/main.js`:
 * registers tsx's ESM hooks (tsx 4: `register()` from `tsx/esm/api`, which
 * needs node's module.register, Node >= 20.6). Skipped when this file is
 * itself running as TypeScript: then a loader that handles .ts (node --import
 * tsx, vitest) is already in place, and a second one would only slow it down.
 */
export function enableTypeScript(): Promise<void> {
  if (import.meta.url.endsWith('.ts')) return Promise.resolve();
  typescriptLoader ??= import('tsx/esm/api').then(({ register }) => {
    register();
  });
  return typescriptLoader;
}

/**
 * Imports each module (paths relative to the current directory) and collects
 * every export that is an application. Throws CliUsageError for a missing
 * file, a module that exports no application, and two different applications
 * with one name. The same application exported twice (say, by name and as
 * default) counts once.
 */
export async function loadApplications(paths: readonly string[]): Promise<Application[]> {
  if (paths.length === 0)
    throw new CliUsageError('no application given: pass --app FILE (a module exporting applications)');
  const found = new Map<string, { app: Application; from: string }>();
  for (const path of paths) {
    const absolute = resolve(process.cwd(), path);
    let isFile: boolean;
    try {
      isFile = statSync(absolute).isFile();
    } catch {
      throw new CliUsageError(`--app ${path}: no such file (${absolute})`);
    }
    if (!isFile) throw new CliUsageError(`--app ${path}: not a file (${absolute})`);
    if (TYPESCRIPT.test(absolute)) await enableTypeScript();

    let module: Record<string, unknown>;
    try {
      module = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
    } catch (err) {
      // The module itself is broken (or throws while loading): its error, with the path in front.
      throw new Error(`--app ${path}: cannot load it: ${err instanceof Error ? err.message : String(err)}`, {
        cause: err,
      });
    }

    const names = Object.keys(module);
    const apps = names.flatMap((n) => {
      const value = module[n];
      return isApplication(value) ? [{ app: value, from: `export ${n} of ${path}` }] : [];
    });
    if (apps.length === 0) {
      const exported = names.length === 0 ? 'it has no exports' : `its exports: ${names.join(', ')}`;
      throw new CliUsageError(
        `--app ${path}: exports no application (${exported}); export one made with defineApplication()`,
      );
    }
    for (const { app, from } of apps) {
      const seen = found.get(app.name);
      if (seen === undefined) found.set(app.name, { app, from });
      else if (seen.app !== app) {
        throw new CliUsageError(`two applications are named ${JSON.stringify(app.name)}: ${seen.from} and ${from}`);
      }
    }
  }
  return [...found.values()].map((f) => f.app);
}
