import { DAY_MS } from './model.js';

/** Lazy exponential decay in wall-clock time: x · 2^(−Δt / half-life). Never grows a value (Δt < 0 → x). */
export function decayed(value: number, fromMs: number, toMs: number, halfLifeDays: number): number {
  if (value === 0 || toMs <= fromMs) return value;
  return value * Math.pow(2, -(toMs - fromMs) / (halfLifeDays * DAY_MS));
}
