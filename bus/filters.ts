/**
 * Subject algebra beyond names.ts, shared by both buses: whether two filters can
 * capture the same subject (stream subjects must not), and whether one filter
 * lies inside another (a read filter must lie inside its stream).
 */

/** True when some literal subject matches both filters (nats-server's SubjectsCollide). */
export function subjectsOverlap(a: string, b: string): boolean {
  const at = a.split('.');
  const bt = b.split('.');
  const n = Math.min(at.length, bt.length);
  for (let i = 0; i < n; i++) {
    const x = at[i]!;
    const y = bt[i]!;
    if (x === '>' || y === '>') return true;
    if (x !== y && x !== '*' && y !== '*') return false;
  }
  return at.length === bt.length;
}

/** True when every subject matching `inner` also matches `outer` (nats-server's subjectIsSubsetMatch). */
export function subjectWithin(inner: string, outer: string): boolean {
  const it = inner.split('.');
  const ot = outer.split('.');
  for (let i = 0; i < it.length; i++) {
    const o = ot[i];
    if (o === undefined) return false;
    if (o === '>') return true;
    const t = it[i]!;
    if (t === '>') return false;
    if (o === '*') continue;
    if (t === '*' || t !== o) return false;
  }
  return it.length === ot.length;
}

export function hasWildcard(subject: string): boolean {
  return subject.split('.').some((t) => t === '*' || t === '>');
}

/**
 * A matcher for one subscription's filter, tokens split once. A JetStream
 * push consumer can be pointed at any deliver subject by whoever may create
 * it (nats-server does not check that subject against the creator's
 * permissions), and its messages then arrive carrying the stream's subject,
 * not the filter's: a delivery whose subject the filter does not match did
 * not come from a publisher on it and is not taken.
 */
export function subjectMatcher(filter: string): (subject: string) => boolean {
  const ft = filter.split('.');
  const last = ft.length - 1;
  const tail = ft[last] === '>';
  if (!filter.includes('*') && !tail) return (subject) => subject === filter;
  const n = tail ? last : ft.length;
  // Asked of every message a wildcard subscription takes: the subject's tokens are walked, not split.
  return (subject) => {
    let at = 0;
    for (let i = 0; i < n; i++) {
      if (at > subject.length) return false;
      let end = subject.indexOf('.', at);
      if (end < 0) end = subject.length;
      const f = ft[i]!;
      if (f !== '*' && (end - at !== f.length || !subject.startsWith(f, at))) return false;
      at = end + 1;
    }
    // Past the last token compared: `>` wants at least one more, an exact filter none.
    return tail ? at <= subject.length : at === subject.length + 1;
  };
}
