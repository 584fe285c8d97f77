import { formatDuration, parseDuration } from '../config/duration.js';
import type { ReplaySummary } from '../pipeline/replay.js';
import { UsageError } from './args.js';

/** Events out of time order beyond --reorder: what happened to them and the option that replays them in order. */
export function lateNote(s: ReplaySummary): string {
  const hours = Math.ceil(s.lateByMs / 3_600_000);
  return (
    `late events:         ${s.lateEvents.toLocaleString('en-US')} arrived up to ${formatDuration(s.lateByMs)} behind ` +
    'later ones, after runs that read them: counted only by the runs after (as the timer counts events ' +
    `ingested that late); --reorder ${hours}h (or all) replays them as a sorted file`
  );
}

/** --reorder DURATION|all: how far out of time order events may arrive (undefined: the default). */
export function reorderOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === 'all') return Number.POSITIVE_INFINITY;
  const ms = parseDuration(value);
  if (ms === undefined)
    throw new UsageError(
      `--reorder expects a duration such as 1h or 30m, or all, got ${JSON.stringify(value)}`,
    );
  return ms;
}
