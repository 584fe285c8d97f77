import type { RareFinding } from '../alerts/alert.js';

/** Width of a score-histogram bin: 20 bins over 0–100, a score of 100 counts in the last one. */
export const HISTOGRAM_BIN = 5;
export const HISTOGRAM_BINS = 100 / HISTOGRAM_BIN;

/** The rare findings of one detection run, in the order the pipeline handed them to the alert decision. */
export interface RecordedTick {
  tickMs: number;
  findings: RareFinding[];
}

export function histogramBin(score: number): number {
  return Math.min(HISTOGRAM_BINS - 1, Math.max(0, Math.floor(score / HISTOGRAM_BIN)));
}

/**
 * Records, during one replay with UC_ALERT_THRESHOLD=0, every per-caller score of every run (before allowlists
 * and the alert decision): all of them in a histogram, and those at or above `floor` (the lowest threshold of
 * the sweep) as findings per run, to decide alerts again at each threshold without another replay.
 */
export class FindingRecorder {
  readonly ticks: RecordedTick[] = [];
  readonly histogram: number[] = new Array<number>(HISTOGRAM_BINS).fill(0);
  scores = 0;
  kept = 0;

  constructor(readonly floor: number) {}

  readonly onFindings = (tickMs: number, findings: readonly RareFinding[]): void => {
    const keep: RareFinding[] = [];
    for (const f of findings) {
      const bin = histogramBin(f.rarity.score);
      this.histogram[bin] = (this.histogram[bin] ?? 0) + 1;
      if (f.rarity.score >= this.floor) keep.push(f);
    }
    this.scores += findings.length;
    if (keep.length === 0) return;
    this.kept += keep.length;
    const last = this.ticks[this.ticks.length - 1];
    if (last !== undefined && last.tickMs >= tickMs)
      throw new Error(`backtest: runs out of order (${tickMs} after ${last.tickMs})`);
    this.ticks.push({ tickMs, findings: keep });
  };
}
