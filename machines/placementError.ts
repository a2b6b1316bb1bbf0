/**
 * The one failure placement reports, in its own file so the map transforms
 * (placement, hand-off completion) throw the same class without importing
 * each other.
 */

/** Input no cluster could produce (a caller bug): thrown, never turned into a map. */
export class PlacementError extends Error {
  override readonly name = 'PlacementError';
}
