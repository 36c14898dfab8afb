/**
 * A progress figure as the store keeps it: a whole percent in 0..100. Providers may report
 * fractions (Azure's completionPercent is 33.33…) or out-of-range values; a progress that is not a
 * finite number is unknown (null).
 */
export function wholePercent(value: number | undefined | null): number | null {
  if (value === undefined || value === null || !Number.isFinite(value)) return null;
  return Math.min(100, Math.max(0, Math.floor(value)));
}
