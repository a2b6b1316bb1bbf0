/**
 * compose.yaml cannot be run here (no Docker), so its structure is checked
 * instead: the NATS cluster is wired to itself, and the workers run flags
 * `cohort worker` accepts (a renamed flag fails here).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { WORKER_FLAGS, parseWorkerArgs } from '../../cli/worker.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Service {
  image?: string;
  command?: string | string[];
  volumes?: string[];
  depends_on?: string[] | Record<string, { condition?: string }>;
}

interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

// `merge`: the file shares settings through YAML merge keys (<<: *nats), as Compose does.
const compose = parse(readFileSync(join(ROOT, 'compose.yaml'), 'utf8'), { merge: true }) as Compose;
const services = Object.entries(compose.services);

function argv(service: Service): string[] {
  const { command } = service;
  if (command === undefined) return [];
  return typeof command === 'string' ? command.split(/\s+/).filter((a) => a !== '') : command;
}

/** The value after `flag` (each of its spellings); undefined when absent. */
function flag(args: readonly string[], ...spellings: string[]): string | undefined {
  const i = args.findIndex((a) => spellings.includes(a));
  return i < 0 ? undefined : args[i + 1];
}

function dependsOn(service: Service): Record<string, string> {
  const d = service.depends_on ?? [];
  return Array.isArray(d)
    ? Object.fromEntries(d.map((name) => [name, 'service_started']))
    : Object.fromEntries(Object.entries(d).map(([name, v]) => [name, v.condition ?? 'service_started']));
}

/** `source:target[:mode]` of a short-syntax volume. */
function mount(volume: string): { source: string; target: string } {
  const [source = '', target = ''] = volume.split(':');
  return { source, target };
}

const natsNodes = services.filter(([, s]) => s.image?.startsWith('nats:'));
const WORKER_PREFIX = ['node', 'dist/cli/main.js', 'worker'];
const workers = services.filter(([, s]) => WORKER_PREFIX.every((a, i) => argv(s)[i] === a));

describe('compose.yaml', () => {
  it('runs a 3-node NATS cluster with JetStream on, each node storing on a volume', () => {
    expect(natsNodes.map(([name]) => name)).toHaveLength(3);
    const serverNames = new Set<string>();
    const clusterNames = new Set<string>();
    for (const [name, node] of natsNodes) {
      const args = argv(node);
      expect(args.includes('-js') || args.includes('--jetstream'), `${name} has JetStream on`).toBe(true);
      const store = flag(args, '-sd', '--store_dir');
      expect(store, `${name} has a store dir`).toBeDefined();
      expect(
        (node.volumes ?? []).map(mount).some((m) => m.target === store),
        `${name}'s store dir ${store} is on a volume`,
      ).toBe(true);
      serverNames.add(flag(args, '--server_name', '-n') ?? `(none on ${name})`);
      clusterNames.add(flag(args, '--cluster_name') ?? `(none on ${name})`);
    }
    expect(serverNames.size, 'server names are unique').toBe(3);
    expect(clusterNames.size, 'one --cluster_name for all').toBe(1);
  });

  it('routes each NATS node to the two others, on their cluster port', () => {
    const clusterPort = (node: Service): string => new URL(flag(argv(node), '--cluster') ?? 'nats://missing:0').port;
    for (const [name, node] of natsNodes) {
      const routes = (flag(argv(node), '--routes', '-routes') ?? '').split(',').map((r) => new URL(r.trim()));
      const others = natsNodes.filter(([n]) => n !== name);
      expect(routes.map((r) => r.hostname).sort(), `routes of ${name}`).toEqual(others.map(([n]) => n).sort());
      for (const r of routes) {
        const [, target] = others.find(([n]) => n === r.hostname)!;
        expect(r.port, `${name} → ${r.hostname}`).toBe(clusterPort(target));
      }
    }
  });

  it('runs three `cohort worker`s, in three zones, on every NATS node, after the build', () => {
    expect(workers.map(([name]) => name)).toEqual(['w1', 'w2', 'w3']);
    const nodeNames = natsNodes.map(([n]) => n).sort();
    const ids = new Set<string>();
    const zones = new Set<string>();
    const clusters = new Set<string>();
    for (const [name, worker] of workers) {
      const parsed = parseWorkerArgs(argv(worker).slice(WORKER_PREFIX.length));
      expect(parsed.apps.length, `${name} serves an application`).toBeGreaterThan(0);
      for (const app of parsed.apps) expect(existsSync(join(ROOT, app)), `${name}: --app ${app} exists`).toBe(true);
      const urls = (parsed.nats ?? []).map((u) => new URL(u));
      expect(urls.map((u) => u.hostname).sort(), `${name} --nats lists every node`).toEqual(nodeNames);
      expect(urls.every((u) => u.protocol === 'nats:' && u.port === '4222')).toBe(true);
      ids.add(parsed.id ?? `(no --id on ${name})`);
      zones.add(parsed.zone ?? `(no --zone on ${name})`);
      clusters.add(parsed.cluster);
      expect(parsed.promotable).toBe(true);
      // One copy of the journal per NATS node: the cluster may lose any one node.
      expect(parsed.storageReplicas, `${name} --storage-replicas`).toBe(natsNodes.length);

      const deps = dependsOn(worker);
      for (const node of nodeNames) expect(deps, `${name} depends on ${node}`).toHaveProperty(node);
      const builds = Object.entries(deps).filter(([, condition]) => condition === 'service_completed_successfully');
      expect(builds.length, `${name} waits for a build`).toBe(1);
      expect(argv(compose.services[builds[0]![0]]!).join(' ')).toMatch(/^npm (install|ci)\b/);
    }
    expect(ids.size, 'distinct --id').toBe(3);
    expect(zones.size, 'distinct --zone').toBe(3);
    expect(clusters.size, 'one --cluster').toBe(1);
  });

  it('gives the workers only flags `cohort worker` accepts, and the command the package installs', () => {
    const known = Object.keys(WORKER_FLAGS);
    for (const [name, worker] of workers) {
      const used = argv(worker)
        .slice(WORKER_PREFIX.length)
        .filter((a) => a.startsWith('--'))
        .map((a) => a.slice(2).split('=')[0]!);
      expect(
        used.filter((f) => !known.includes(f)),
        `${name}: unknown flags`,
      ).toEqual([]);
    }
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
      dependencies: Record<string, string>;
    };
    expect(pkg.bin['cohort']).toBe(`./${WORKER_PREFIX[1]}`);
    expect(existsSync(join(ROOT, 'cli/main.ts'))).toBe(true);
    // A .ts --app is loaded through tsx at run time, so tsx must be installed without dev dependencies too.
    expect(pkg.dependencies).toHaveProperty('tsx');
  });

  it('names only services that exist and volumes that are declared', () => {
    const names = new Set(Object.keys(compose.services));
    const declared = new Set(Object.keys(compose.volumes ?? {}));
    for (const [name, service] of services) {
      for (const dep of Object.keys(dependsOn(service))) expect(names.has(dep), `${name} depends on ${dep}`).toBe(true);
      for (const { source } of (service.volumes ?? []).map(mount)) {
        const named = !source.startsWith('.') && !source.startsWith('/') && !source.startsWith('~');
        if (named) expect(declared.has(source), `${name}: volume ${source} is declared`).toBe(true);
      }
    }
  });
});
