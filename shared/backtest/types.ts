/** The JSON results of `unusual-city backtest` (`--json`); the HTML report and the stdout table show them. */
export interface BacktestResults {
  tool: 'unusual-city backtest';
  version: string;
  generatedAt: string;
  /** The exported Activity Logs replayed; empty when the period was read from Log Analytics. */
  files: string[];
  /** `backtest --days N`: the period was read from Log Analytics. */
  logAnalytics?: LogAnalyticsPeriod;
  /** The labels file, when one was given. */
  labels?: string;
  /** Time range the per-day numbers are over: the labels' range, else the first to the last event. */
  period: { start: string; end: string; days: number };
  /** Thresholds swept, ascending; the configured UC_ALERT_THRESHOLD is always one of them. */
  thresholds: number[];
  /** Settings given with --set (every variant has them). */
  set: Record<string, string>;
  /** Full replays of the files that were run (decision-only variants need none). */
  replays: number;
  /** The first is the configured settings; one more per --vary value (except the current value). */
  variants: VariantResult[];
  /** Per --vary setting: its current value and the best of its options at the current threshold. */
  varied?: VariedSetting[];
}

/** One --vary setting: the options tried and which is best at the current threshold. */
export interface VariedSetting {
  setting: string;
  /** Its value in the current settings (--set, the environment or the default). */
  current: string;
  /** --vary values equal to the current value: not replayed, the current settings stand for them. */
  skipped: string[];
  /** The options compared: "current settings", then this setting's variants in --vary order. */
  options: string[];
  /**
   * The best option at the current threshold (a variant name or "current settings"). With labels: most attacks
   * detected, then fewest false alerts, then fewest alerts; without labels: fewest alerts. A tie keeps the
   * current settings.
   */
  best: string;
  rule: 'labels' | 'fewest alerts';
}

/** Where `backtest --days N` read its period. */
export interface LogAnalyticsPeriod {
  workspace: string;
  additionalWorkspaces: string[];
  days: number;
  /** Queries the download took (the source splits a window that hits the service's limits), and its groups. */
  queries: number;
  groups: number;
  /** The slot the query grouped by: the timer's, so every simulated run reads exactly its window. */
  slotMinutes: number;
  seconds: number;
}

/** "Log Analytics workspace W (+ 1 more), last N days": for messages and the report. */
export function describePeriod(p: LogAnalyticsPeriod): string {
  const more = p.additionalWorkspaces.length > 0 ? ` (+ ${p.additionalWorkspaces.length} more)` : '';
  return `Log Analytics workspace ${p.workspace}${more}, last ${p.days} day(s)`;
}

export interface VariantResult {
  /** "current settings" or NAME=VALUE. */
  name: string;
  /** The setting changed from the current settings (absent for the first variant). */
  change?: { setting: string; value: string };
  /** The configured UC_ALERT_THRESHOLD. */
  currentThreshold: number;
  /**
   * "replay": the files were replayed with this variant's settings; "decision": the first replay's findings
   * were decided again (a setting only the alert decision or the allowlists read).
   */
  method: 'replay' | 'decision';
  replay: {
    events: number;
    runs: number;
    observations: number;
    internalEvents: number;
    noCityEvents: number;
    notFoundEvents: number;
    /** Per-caller scores of the replay (before allowlists), and those kept (≥ the lowest threshold). */
    scores: number;
    findingsKept: number;
    seconds: number;
  };
  /** Per-caller scores of every (operation, city, hour) observation, in 20 bins of 5 points (last bin: 95–100). */
  scoreHistogram: { binWidth: number; counts: number[] };
  results: ThresholdResult[];
}

export interface ThresholdResult {
  threshold: number;
  /** The configured UC_ALERT_THRESHOLD. */
  current: boolean;
  alerts: number;
  alertsPerDay: number;
  perDay: DayCount[];
  /** Distinct callers alerted on. */
  callers: number;
  /** Distinct operations named in alerts (every rare operation an alert lists, case-insensitive). */
  operations: number;
  /** Distinct places (cities, or egress labels) alerted from. */
  cities: number;
  suppressedByCooldown: number;
  suppressedByCap: number;
  /** Rare findings at or above the threshold that allowlists (UC_ALLOW_*) kept from alerting. */
  allowlisted: number;
  evaluation?: ThresholdEvaluation;
  topPairs: NoisyPair[];
  alertCities: AlertCity[];
  alertIds: string[];
}

export interface DayCount {
  day: string;
  alerts: number;
  /** With labels: alerts not part of a labelled attack. */
  falseAlerts?: number;
}

export interface ThresholdEvaluation {
  attacks: number;
  detected: number;
  detectedIds: string[];
  missedIds: string[];
  falseAlerts: number;
  falseAlertsPerDay: number;
  medianTimeToDetectMin?: number;
  maxTimeToDetectMin?: number;
}

/** An (operation, city) pair that alerts; with labels only pairs with false alerts count as noisy. */
export interface NoisyPair {
  operation: string;
  cityKey: string;
  city: string;
  country: string;
  alerts: number;
  falseAlerts?: number;
  callers: string[];
  callerCount: number;
  maxScore: number;
  silence?: Silence;
}

/** The one change (a setting, or an allow rule) that would silence a pair, why, and what it costs. */
export interface Silence {
  /** The setting, or `baseline allow <kind>` for an allow rule. */
  setting: string;
  /** The setting's new value, or the rule's canonical value (`ann@contoso.com g:2988507`). */
  value: string;
  /**
   * NAME=VALUE, ready for --set, app settings or settingsOverrides; for an allow rule, the command line that adds
   * it (`unusual-city baseline allow caller+city ann@contoso.com 2988507 --for 30d --by … --reason …`).
   */
  assignment: string;
  why: string;
  /**
   * For a new UC_ALERT_THRESHOLD, an allowed city or an allow rule: what the whole tenant gets after the change (computed by
   * deciding the recorded findings again, not estimated).
   */
  at?: { alerts: number; alertsPerDay: number; detected?: number; attacks?: number };
  /** For an allow rule (shared/ops/allowlist.ts): its kind and canonical value. */
  rule?: { kind: string; value: string };
}

export interface AlertCity {
  cityKey: string;
  city: string;
  country: string;
  latitude: number;
  longitude: number;
  alerts: number;
  /** With labels: alerts of labelled attacks from this place. */
  attackAlerts?: number;
}
