import { newReadStats, readActivityFiles } from '../activity/read.js';
import type { RareFinding } from '../alerts/alert.js';
import { alertDefaults } from '../alerts/defaults.js';
import type { EpisodePolicy } from '../alerts/episodes.js';
import { SqliteStore } from '../baseline/sqlite.js';
import { defaultSettingValues, loadSettings, type SettingName, type Settings } from '../config/settings.js';
import type { Labels } from '../demo/evaluate.js';
import { openGeo } from '../geo/localDatabase.js';
import type { Geolocator, NetworkLocator } from '../geo/types.js';
import { AllowlistProvider } from '../ops/allowlist.js';
import { replay, type ReplayProgress, type ReplaySummary } from '../pipeline/replay.js';
import type { Verdict } from '../pipeline/verdicts.js';
import { VERSION } from '../version.js';
import { decideAt, type Suppress, type ThresholdDecision } from './decide.js';
import type { HistoryDownload } from './history.js';
import { DAY_MS, type MetricsContext, type Period, thresholdResult } from './metrics.js';
import { FindingRecorder, HISTOGRAM_BIN } from './record.js';
import {
  type BacktestResults,
  describePeriod,
  type LogAnalyticsPeriod,
  type ThresholdResult,
  type VariantResult,
  type VariedSetting,
} from './types.js';

/**
 * Settings that only the alert decision reads (episode policy, alert columns) or the allowlists (which keep
 * findings from the decision; baselines still count them): a variant that changes only these decides the
 * first replay's recorded findings again instead of replaying the files.
 */
export const DECISION_SETTINGS: readonly SettingName[] = [
  'UC_ALERT_COOLDOWN',
  'UC_RESCORE_MARGIN',
  'UC_DAILY_ALERT_CAP',
  'UC_ALERT_NAME',
  'UC_ALERT_SEVERITY',
  'UC_ALERT_RISK_SCORE',
  'UC_ALLOW_RANGES',
  'UC_ALLOW_CITIES',
  'UC_ALLOW_CALLERS',
  'UC_ALLOW_OPERATIONS',
  'UC_ALLOW_SERVICE_TAGS',
  'UC_SERVICE_TAGS_FILE',
];

export interface VaryOption {
  name: string;
  values: string[];
}

/** `backtest --days N`: the period, downloaded once from Log Analytics (history.ts), and where it came from. */
export interface BacktestHistory {
  download: HistoryDownload;
  source: LogAnalyticsPeriod;
}

export interface BacktestOptions {
  /** Exported Activity Logs to replay; or `history`. */
  files: string[];
  history?: BacktestHistory;
  /**
   * The GeoIP database for a variant's settings. Default: UC_GEOIP_DB_PATH or the embedded demo database (as
   * replay); `backtest --days` uses the detector's database (UC_GEOIP_BLOB), as the timer would.
   */
  openGeo?: (settings: Settings) => Promise<{ geo: Geolocator; networks?: NetworkLocator; warning?: string }>;
  labels?: Labels;
  labelsPath?: string;
  /** Thresholds to sweep; the configured UC_ALERT_THRESHOLD is added when missing. */
  thresholds: readonly number[];
  /** --set: applies to every variant. */
  set: Readonly<Record<string, string>>;
  vary: readonly VaryOption[];
  env: Readonly<Record<string, string | undefined>>;
  /** Noisy pairs listed per threshold (default 10). */
  top?: number;
  /** Keep every variant's decisions (`Backtest.variantDecisions`), not only the first's: more memory. */
  keepAllDecisions?: boolean;
  onProgress?: (replay: { index: number; count: number; variant: string }, p: ReplayProgress) => void;
  warn?: (message: string) => void;
  /** Analysts' verdicts (`--verdicts FILE`), applied at their ClosedTime in every variant's decisions. */
  verdicts?: readonly Verdict[];
}

export interface Backtest {
  results: BacktestResults;
  /** The first variant's (current settings) decisions, one per threshold of `results.thresholds`. */
  decisions: ThresholdDecision[];
  /** With `keepAllDecisions`: every variant's decisions, in the order of `results.variants`. */
  variantDecisions?: ThresholdDecision[][];
}

interface Variant {
  name: string;
  change?: { setting: string; value: string };
  settings: Settings;
  method: 'replay' | 'decision';
  /** The allowlists of the settings (UC_ALLOW_*), as the replay command applies them; none: undefined. */
  suppress?: Suppress;
}

interface Recording {
  recorder: FindingRecorder;
  summary: ReplaySummary;
  seconds: number;
}

const policyOf = (s: Settings): EpisodePolicy => ({
  cooldownMs: s.UC_ALERT_COOLDOWN,
  rescoreMargin: s.UC_RESCORE_MARGIN,
  dailyCap: s.UC_DAILY_ALERT_CAP,
});

const sameValue = (a: Settings, b: Settings, name: string): boolean =>
  JSON.stringify(a[name as SettingName]) === JSON.stringify(b[name as SettingName]);

/**
 * Builds (and so validates) every variant's settings before the first replay: a typo fails in a second. A value
 * equal to the current one (`24h` or `1d` when the cooldown is 24h) is no variant: the current settings are.
 */
export function variantsOf(o: Pick<BacktestOptions, 'set' | 'vary' | 'env'>): Variant[] {
  const base = loadSettings(o.env, o.set);
  const out: Variant[] = [{ name: 'current settings', settings: base, method: 'replay' }];
  for (const v of o.vary) {
    for (const value of v.values) {
      const settings = loadSettings(o.env, { ...o.set, [v.name]: value });
      if (sameValue(settings, base, v.name)) continue;
      out.push({
        name: `${v.name}=${value}`,
        change: { setting: v.name, value },
        settings,
        method: (DECISION_SETTINGS as readonly string[]).includes(v.name) ? 'decision' : 'replay',
      });
    }
  }
  return out;
}

/** Ranks an option at the current threshold: smaller is better, element by element. */
function rankOf(r: ThresholdResult): number[] {
  const e = r.evaluation;
  return e !== undefined ? [-e.detected, e.falseAlertsPerDay, r.alertsPerDay] : [r.alertsPerDay];
}
const betterThan = (a: readonly number[], b: readonly number[]): boolean => {
  const i = a.findIndex((x, k) => x !== b[k]);
  return i >= 0 && a[i]! < b[i]!;
};

/** Per --vary setting: its current value, the values that equal it, and the best option at the current threshold. */
export function variedSettings(
  o: Pick<BacktestOptions, 'set' | 'vary' | 'env'>,
  variants: readonly VariantResult[],
): VariedSetting[] {
  const base = loadSettings(o.env, o.set);
  const defaults: Record<string, string> = defaultSettingValues();
  const atCurrent = (v: VariantResult) => v.results.find((r) => r.current) ?? v.results[0]!;
  return o.vary.map((v) => {
    const given = o.set[v.name] ?? o.env[v.name];
    const current = given !== undefined && given.trim() !== '' ? given : (defaults[v.name] ?? '');
    const skipped = v.values.filter((value) =>
      sameValue(loadSettings(o.env, { ...o.set, [v.name]: value }), base, v.name),
    );
    const options = variants.filter((r) => r.change === undefined || r.change.setting === v.name);
    let best = options[0]!;
    for (const option of options.slice(1))
      if (betterThan(rankOf(atCurrent(option)), rankOf(atCurrent(best)))) best = option;
    return {
      setting: v.name,
      current,
      skipped,
      options: options.map((r) => r.name),
      best: best.name,
      rule: atCurrent(best).evaluation !== undefined ? 'labels' : 'fewest alerts',
    };
  });
}

async function record(
  input: Pick<BacktestOptions, 'files' | 'history' | 'openGeo'>,
  settings: Settings,
  floor: number,
  onProgress: ((p: ReplayProgress) => void) | undefined,
  warn: ((message: string) => void) | undefined,
): Promise<Recording> {
  const t0 = performance.now();
  const { geo, networks, warning } = await (input.openGeo ?? openGeo)(settings);
  if (warning !== undefined) warn?.(warning);
  const recorder = new FindingRecorder(floor);
  const stats = newReadStats();
  const store = SqliteStore.open(':memory:');
  let summary: ReplaySummary;
  try {
    // Threshold 0 and no allowlists: every per-caller score reaches the recorder (for the histogram). The
    // replay's own alerts are discarded; scores and baselines depend on neither.
    summary = await replay({
      ...(input.history !== undefined
        ? { history: input.history.download.events }
        : { events: readActivityFiles(input.files, stats) }),
      readStats: stats,
      store,
      geo,
      ...(networks ? { networks } : {}),
      sink: { write: () => Promise.resolve() },
      settings: { ...settings, UC_ALERT_THRESHOLD: 0 },
      defaults: alertDefaults(settings),
      onFindings: recorder.onFindings,
      ...(onProgress ? { onProgress } : {}),
    });
  } finally {
    await store.close();
  }
  return { recorder, summary, seconds: (performance.now() - t0) / 1000 };
}

function periodOf(
  labels: Labels | undefined,
  summary: ReplaySummary,
  history: BacktestHistory | undefined,
): Period {
  const startMs = (labels?.startMs || undefined) ?? history?.download.startMs ?? summary.firstEventMs;
  const endMs = (labels?.endMs || undefined) ?? history?.download.endMs ?? summary.lastEventMs;
  return { startMs, endMs, days: Math.max(1, (endMs - startMs) / DAY_MS) };
}

/**
 * Replays the files once per variant that needs it, recording every rare finding at the lowest threshold,
 * then decides alerts again at each threshold (pure and in memory) and computes the numbers of each.
 */
export async function runBacktest(o: BacktestOptions): Promise<Backtest> {
  const variants = variantsOf(o);
  await applyAllowlists(variants);
  const current = variants[0]!.settings.UC_ALERT_THRESHOLD;
  const thresholds = [...new Set([...o.thresholds, current])].sort((a, b) => a - b);
  const sweep: Sweep = { thresholds, current, floor: thresholds[0]! };
  const { evaluated, period } = await evaluateVariants(o, variants, sweep);
  const results = variants.map((v) => evaluated.get(v)!.result);
  return {
    results: resultsOf(o, sweep, period, variants, results),
    decisions: evaluated.get(variants[0]!)!.decisions ?? [],
    ...(o.keepAllDecisions === true
      ? { variantDecisions: variants.map((v) => evaluated.get(v)!.decisions!) }
      : {}),
  };
}

/** The thresholds every variant is decided at: the sorted sweep, the current one and the lowest (the recording's floor). */
interface Sweep {
  thresholds: number[];
  current: number;
  floor: number;
}

/** One variant's numbers, and its decisions per threshold when the caller keeps them. */
interface Evaluated {
  result: VariantResult;
  decisions?: ThresholdDecision[];
}

/**
 * Allowlists of every variant, before the first replay (a bad service tags file fails here). No allow table:
 * a backtest starts from an empty state, like replay without --state.
 */
async function applyAllowlists(variants: Variant[]): Promise<void> {
  for (const v of variants) {
    const allowlist = await (await AllowlistProvider.fromSettings(v.settings)).forRun();
    if (allowlist.size > 0) v.suppress = allowlist.suppress;
  }
}

/**
 * Records and evaluates the variants: the current settings first, then the variants that re-use its findings,
 * then one replay per other variant. The period is the current settings' (labels, history or events).
 */
async function evaluateVariants(
  o: BacktestOptions,
  variants: readonly Variant[],
  sweep: Sweep,
): Promise<{ evaluated: Map<Variant, Evaluated>; period: Period }> {
  const base = variants[0]!;
  const replays = variants.filter((v) => v.method === 'replay');
  let baseRecording: Recording | undefined;
  let period: Period | undefined;
  const order = [base, ...variants.filter((v) => v.method === 'decision'), ...replays.slice(1)];
  const evaluated = new Map<Variant, Evaluated>();
  for (const v of order) {
    let rec: Recording;
    if (v.method === 'decision') {
      rec = baseRecording!;
    } else {
      rec = await recordVariant(o, v, replays, sweep.floor);
      if (v === base) {
        baseRecording = rec;
        period = periodOf(o.labels, rec.summary, o.history);
      }
    }
    const keep = v === base || o.keepAllDecisions === true;
    evaluated.set(v, evaluateVariant(o, v, rec, { ...sweep, period: period! }, keep));
  }
  return { evaluated, period: period! };
}

/** Replays the period with one variant's settings (progress numbered among the replays); none: an error. */
async function recordVariant(
  o: BacktestOptions,
  v: Variant,
  replays: readonly Variant[],
  floor: number,
): Promise<Recording> {
  const index = replays.indexOf(v);
  const isBase = index === 0;
  const rec = await record(
    o,
    v.settings,
    floor,
    o.onProgress
      ? (p) => o.onProgress!({ index: index + 1, count: replays.length, variant: v.name }, p)
      : undefined,
    isBase ? o.warn : undefined,
  );
  if (isBase && rec.summary.events === 0)
    throw new Error(
      `no events to backtest in ${o.history !== undefined ? describePeriod(o.history.source) : o.files.join(', ')} (after UC_CATEGORIES/UC_STATUSES filters)`,
    );
  return rec;
}

/** The alert decisions of one variant's recording: memoised per threshold, and with one more allow rule. */
function decidersOf(
  o: BacktestOptions,
  v: Variant,
  rec: Recording,
  floor: number,
): Pick<MetricsContext, 'decide' | 'decideAllowing'> {
  const defaults = alertDefaults(v.settings);
  const policy = policyOf(v.settings);
  const verdicts =
    o.verdicts !== undefined && o.verdicts.length > 0
      ? () => ({ list: o.verdicts!, allowDays: v.settings.UC_VERDICT_ALLOW_DAYS })
      : () => undefined;
  const memo = new Map<number, ThresholdDecision>();
  const check = (t: number) => {
    if (t < floor) throw new Error(`backtest: threshold ${t} is below the recording's ${floor}`);
  };
  const decide = (t: number): ThresholdDecision => {
    check(t);
    let d = memo.get(t);
    if (d === undefined) {
      d = decideAt(rec.recorder.ticks, t, policy, defaults, v.suppress, verdicts());
      memo.set(t, d);
    }
    return d;
  };
  const decideAllowing = (t: number, allowed: (f: RareFinding) => boolean): ThresholdDecision => {
    check(t);
    const own = v.suppress;
    const suppress: Suppress = (f) => (allowed(f) ? 'proposed allow rule' : own?.(f));
    return decideAt(rec.recorder.ticks, t, policy, defaults, suppress, verdicts());
  };
  return { decide, decideAllowing };
}

/** Decides one variant's recording at every threshold and computes its numbers (and keeps its decisions if asked). */
function evaluateVariant(
  o: BacktestOptions,
  v: Variant,
  rec: Recording,
  sweep: Sweep & { period: Period },
  keep: boolean,
): Evaluated {
  const { thresholds, current } = sweep;
  const ctx: MetricsContext = {
    ...(o.labels !== undefined ? { labels: o.labels } : {}),
    period: sweep.period,
    settings: v.settings,
    ticks: rec.recorder.ticks,
    ...decidersOf(o, v, rec, sweep.floor),
    top: o.top ?? 10,
  };
  const perThreshold = thresholds.map((t) => thresholdResult(ctx.decide(t), current, ctx));
  const result: VariantResult = {
    name: v.name,
    ...(v.change !== undefined ? { change: v.change } : {}),
    currentThreshold: current,
    method: v.method,
    replay: replayNumbers(v, rec),
    scoreHistogram: { binWidth: HISTOGRAM_BIN, counts: [...rec.recorder.histogram] },
    results: perThreshold,
  };
  return keep ? { result, decisions: thresholds.map((t) => ctx.decide(t)) } : { result };
}

/** What the variant's replay read and recorded (seconds only for a variant that replayed). */
function replayNumbers(v: Variant, rec: Recording): VariantResult['replay'] {
  const s = rec.summary;
  return {
    events: s.events,
    runs: s.ticks,
    observations: s.observations,
    internalEvents: s.internalEvents,
    noCityEvents: s.noCityEvents,
    notFoundEvents: s.notFoundEvents,
    scores: rec.recorder.scores,
    findingsKept: rec.recorder.kept,
    seconds: v.method === 'replay' ? Math.round(rec.seconds * 10) / 10 : 0,
  };
}

/** The backtest's JSON: what was replayed, the period, the thresholds, every variant and the varied settings. */
function resultsOf(
  o: BacktestOptions,
  sweep: Sweep,
  p: Period,
  variants: readonly Variant[],
  results: VariantResult[],
): BacktestResults {
  return {
    tool: 'unusual-city backtest',
    version: VERSION,
    generatedAt: new Date().toISOString(),
    files: [...o.files],
    ...(o.history !== undefined ? { logAnalytics: o.history.source } : {}),
    ...(o.labelsPath !== undefined ? { labels: o.labelsPath } : {}),
    period: {
      start: new Date(p.startMs).toISOString(),
      end: new Date(p.endMs).toISOString(),
      days: p.days,
    },
    thresholds: sweep.thresholds,
    set: { ...o.set },
    replays: variants.filter((v) => v.method === 'replay').length,
    variants: results,
    ...(o.vary.length > 0 ? { varied: variedSettings(o, results) } : {}),
  };
}
