import { Session } from 'node:inspector/promises';

/**
 * Allocation sampling in this process through the inspector's sampling heap
 * profiler, counting objects the GC has already collected too: the figure is
 * garbage made, not heap kept. Used by bench/profileSend.ts on both its sides.
 */

export interface AllocSite {
  /** "function file:line" of the frame that allocated. */
  readonly site: string;
  readonly bytes: number;
}

export interface AllocSummary {
  /** Estimated bytes allocated over the sampling window (sampled sizes summed). */
  readonly bytes: number;
  /** Top allocating frames, largest first. */
  readonly sites: readonly AllocSite[];
  /** The same by source file (a package for node_modules), largest first. */
  readonly files: readonly AllocSite[];
  /** CPU time used by this process over the window, µs (user + system). */
  readonly cpuUs: number;
}

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}/${rest.slice(2).join('/')}` : rest.join('/');
  }
  const wt = url.search(/\/(actors|bus|protocol|machines|metrics|harness|bench|cli)\//);
  if (wt >= 0) return url.slice(wt + 1);
  return url.replace(/^file:\/\//, '') || '(native)';
}

function fileKey(url: string): string {
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  return shortUrl(url);
}

function top(map: Map<string, number>, n: number): AllocSite[] {
  return [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([site, bytes]) => ({ site, bytes }));
}

export class AllocSampler {
  readonly #session = new Session();
  #cpu: NodeJS.CpuUsage | undefined;

  constructor(
    readonly samplingInterval = 1024,
    readonly callers = Number(process.env.PROFILE_CALLERS ?? 0),
  ) {
    this.#session.connect();
  }

  async start(): Promise<void> {
    // An interval of 0: CPU time only, without the sampler's own cost.
    if (this.samplingInterval <= 0) {
      this.#cpu = process.cpuUsage();
      return;
    }
    await this.#session.post('HeapProfiler.startSampling', {
      samplingInterval: this.samplingInterval,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    this.#cpu = process.cpuUsage();
  }

  async stop(topN = 25): Promise<AllocSummary> {
    const cpu = process.cpuUsage(this.#cpu);
    if (this.samplingInterval <= 0) return { bytes: 0, sites: [], files: [], cpuUs: cpu.user + cpu.system };
    const { profile } = (await this.#session.post('HeapProfiler.stopSampling')) as unknown as {
      profile: { head: ProfileNode };
    };
    const bySite = new Map<string, number>();
    const byFile = new Map<string, number>();
    let bytes = 0;
    // A native frame (Set, Map, Object.assign...) is named with the JS frame that called it; with
    // `callers` > 0, each site is followed by that many of the JS frames above it.
    const walk = (node: ProfileNode, caller: string, callerUrl: string, above: readonly string[]): void => {
      const { functionName, url, lineNumber } = node.callFrame;
      const here = `${functionName || '(anonymous)'} ${shortUrl(url)}:${lineNumber + 1}`;
      const native = url === '';
      if (node.selfSize > 0) {
        const named = native ? `${functionName || '(native)'} <- ${caller}` : here;
        const chain = above.slice(native ? 1 : 0, (native ? 1 : 0) + this.callers);
        const site = chain.length === 0 ? named : `${named} <- ${chain.join(' <- ')}`;
        bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
        const file = fileKey(native ? callerUrl : url);
        byFile.set(file, (byFile.get(file) ?? 0) + node.selfSize);
        bytes += node.selfSize;
      }
      const next = native || this.callers === 0 ? above : [here, ...above].slice(0, this.callers + 1);
      for (const child of node.children) walk(child, native ? caller : here, native ? callerUrl : url, next);
    };
    walk(profile.head, '(root)', '', []);
    return { bytes, sites: top(bySite, topN), files: top(byFile, topN), cpuUs: cpu.user + cpu.system };
  }

  close(): void {
    this.#session.disconnect();
  }
}
