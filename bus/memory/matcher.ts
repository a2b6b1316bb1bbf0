import { subjectMatches } from '../names.js';

/**
 * A subject filter compiled once for a hot path (a stream's subjects, a
 * follower's filter): a subject outside its literal head is refused by a
 * string comparison, and `head.>` needs nothing more; the rest is
 * subjectMatches.
 */
export function subjectMatcher(filter: string): (subject: string) => boolean {
  const tokens = filter.split('.');
  const wild = tokens.findIndex((t) => t === '*' || t === '>');
  if (wild === -1) return (subject) => subject === filter;
  const head = wild === 0 ? '' : `${tokens.slice(0, wild).join('.')}.`;
  if (wild === tokens.length - 1 && tokens[wild] === '>')
    return (subject) => subject.length > head.length && subject.startsWith(head);
  return (subject) => subject.startsWith(head) && subjectMatches(filter, subject);
}
