import type { ActivityEvent, ReadStats } from '../activity/types.js';
import type { AlertDefaults } from '../alerts/alert.js';
import type { AlertSink } from '../alerts/sinks.js';
import type { BaselineStore } from '../baseline/store.js';
import type { Settings } from '../config/settings.js';
import type { Geolocator, NetworkLocator } from '../geo/types.js';
import type { LogFn, Pipeline } from './tick.js';
import type { AggregatedEvents } from './window.js';

/** What a replay is given and what it reports (shared/pipeline/replay.ts runs it). */
export interface ReplayOptions {
  /** The events to replay (files); or `history`. */
  events?: AsyncIterable<ActivityEvent>;
  /**
   * Instead of `events`: a period already aggregated per slot (the backtest's download from Log Analytics, which
   * applied UC_CATEGORIES/UC_STATUSES in the query). Its slots must fit the settings' runs (see slotOf).
   */
  history?: AggregatedEvents;
  readStats: ReadStats;
  store: BaselineStore;
  geo: Geolocator;
  /** The networks (ASN) of caller IPs; absent: the model uses cities only. */
  networks?: NetworkLocator;
  sink: AlertSink;
  settings: Settings;
  defaults: AlertDefaults;
  /** Simulate only runs scheduled at or after this time. */
  fromMs?: number;
  /** Simulate only runs scheduled at or before this time. */
  toMs?: number;
  log?: LogFn;
  onProgress?: (p: ReplayProgress) => void;
  /** Passed to every run (see `Pipeline.onFindings`): the backtest records rare findings with it. */
  onFindings?: Pipeline['onFindings'];
  /** Allowlists (shared/ops/allowlist.ts), passed to every run: see `Pipeline.suppress`. Absent: none. */
  suppress?: Pipeline['suppress'];
  /**
   * Called before each run that has events (the analysts' verdicts due by then are applied here, see VerdictFeed);
   * a result replaces `suppress` from this run on (the allow table changed). Absent: nothing.
   */
  beforeRun?: (tickMs: number) => Promise<{ suppress: Pipeline['suppress'] } | undefined>;
  /**
   * How far out of time order events may arrive (ms; see DEFAULT_REORDER_MS): the runs then follow the reading.
   * Absent or Infinity: the whole input is read before the first run (any order; memory grows with the input).
   */
  reorderMs?: number;
}

export interface ReplayProgress {
  phase: 'reading' | 'detecting';
  done: number;
  total: number;
  alerts: number;
}

export interface ReplaySummary {
  read: ReadStats;
  /** Events after category/status filters. */
  events: number;
  filteredOut: number;
  firstEventMs: number;
  lastEventMs: number;
  ticks: number;
  resumedFromMs: number;
  /** Distinct events by what geolocation made of their caller IP. */
  internalEvents: number;
  noCityEvents: number;
  notFoundEvents: number;
  invalidIpEvents: number;
  locatedEvents: number;
  observations: number;
  alreadyCounted: number;
  alerts: number;
  suppressedByCooldown: number;
  suppressedByCap: number;
  /** Rare findings an allowlist kept from alerting (`suppress`). */
  allowlisted: number;
  /**
   * Events that arrived after a run that reads them had been simulated (more than the reorder allowance behind
   * the events before them), and the most any was behind (ms).
   */
  lateEvents: number;
  lateByMs: number;
  /** The most event groups held at once (a streaming replay holds its window's, not the input's). */
  maxGroupsHeld: number;
  readMs: number;
  detectMs: number;
}
