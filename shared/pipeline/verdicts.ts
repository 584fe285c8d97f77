/**
 * The analysts' verdicts: Sentinel's classification of the incidents our analytics rule created, read back each
 * run (shared/source/verdicts.ts) or from an exported file (`--verdicts FILE`, JSON Lines), and applied once:
 *
 * - BenignPositive / FalsePositive: the alert's (caller, city) is allowed (kind caller+city, and caller+network
 *   under UC_VERDICT_ALLOW_NETWORK) for UC_VERDICT_ALLOW_DAYS, audited with the incident number and the analyst;
 * - TruePositive: the (caller, city) quarantine is confirmed — it no longer ages out — and the episode's ledger
 *   row remembers the confirmed alert, so later activity from there alerts again (shared/alerts/episodes.ts);
 * - Undetermined: nothing.
 *
 * An alert is found by its AlertId in the alert index (table 'state', partition 'alert-index'), which each run
 * writes for the alerts it raises (runTick). Applied verdicts are remembered (partition 'verdicts') by incident
 * and alert, with their classification: the same verdict is applied once, a reclassification again.
 */
import type { BaselineStore, Entity } from '../baseline/store.js';
import { displaySafe } from '../display.js';
import { CONFIRMED_UNTIL_MS, DAY_MS } from '../scoring/model.js';
import { liftQuarantine, updateCallerHistories } from './callers.js';

export const CLASSIFICATIONS = ['Undetermined', 'TruePositive', 'BenignPositive', 'FalsePositive'] as const;
export type Classification = (typeof CLASSIFICATIONS)[number];
/** Sentinel's ClassificationReason values (modelAsString: others may come; they are kept as text). */
export const CLASSIFICATION_REASONS = [
  'SuspiciousActivity',
  'SuspiciousButExpected',
  'IncorrectAlertLogic',
  'InaccurateData',
] as const;

/** One analyst's verdict on one alert of one incident. */
export interface Verdict {
  incidentNumber: number;
  /** The incident's resource name (a GUID in Sentinel); '' when unknown (a hand-written file). */
  incidentName: string;
  classification: Classification;
  /** ClassificationReason, '' when none. */
  reason: string;
  /** ClassificationComment, '' when none. */
  comment: string;
  /** The incident's owner (assigned analyst), '' when none. */
  owner: string;
  /** Who last modified the incident (closed it), '' when unknown. */
  modifiedBy: string;
  closedTimeMs: number;
  /** Our AlertId (the alert's custom details), lower case. */
  alertId: string;
}

/** A record that is not a verdict: its position (0-based row or 1-based line) and why. */
export interface SkippedVerdict {
  position: number;
  reason: string;
}

export const ALERT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Longest text kept of an owner, a modifier, a reason or an incident name. */
const MAX_NAME = 256;
/** Longest part of the analyst's comment copied into the audit trail. */
export const MAX_COMMENT = 500;

/** A record's field by name, PascalCase (the query's columns) or camelCase (the file format). */
function field(rec: Readonly<Record<string, unknown>>, name: string): unknown {
  const camel = name[0]!.toLowerCase() + name.slice(1);
  return rec[name] ?? rec[camel];
}

const text = (v: unknown): string | undefined =>
  v === undefined || v === null ? '' : typeof v === 'string' ? v : undefined;

function timeOf(v: unknown): number {
  if (typeof v === 'string' && v.trim() !== '') return Date.parse(v);
  if (v instanceof Date) return v.getTime();
  return NaN;
}

/** Text fields of a verdict record and their short names (a file may use either). */
const TEXT_FIELDS = [
  ['IncidentName', 'incidentName'],
  ['ClassificationReason', 'reason'],
  ['ClassificationComment', 'comment'],
  ['Owner', 'owner'],
  ['ModifiedBy', 'modifiedBy'],
] as const;

/**
 * A verdict from a record of the verdict query (its columns) or of a verdict file, or why it is not one.
 * Accepted: IncidentNumber a positive integer (or its digits), AlertId GUID-shaped, Classification one of
 * CLASSIFICATIONS, ClosedTime an ISO date-time; text fields strings (or absent).
 */
export function verdictFromRecord(rec: Readonly<Record<string, unknown>>): Verdict | string {
  const n = field(rec, 'IncidentNumber');
  const incidentNumber = typeof n === 'string' && /^\d{1,15}$/.test(n) ? Number(n) : n;
  if (typeof incidentNumber !== 'number' || !Number.isSafeInteger(incidentNumber) || incidentNumber <= 0)
    return `IncidentNumber ${JSON.stringify(n)} is not a positive integer`;
  const alertId = field(rec, 'AlertId');
  if (typeof alertId !== 'string' || !ALERT_ID.test(alertId))
    return `AlertId ${JSON.stringify(alertId)} is not GUID-shaped`;
  const c = field(rec, 'Classification');
  if (typeof c !== 'string' || !(CLASSIFICATIONS as readonly string[]).includes(c))
    return `Classification ${JSON.stringify(c)} is not one of ${CLASSIFICATIONS.join(', ')}`;
  const closed = field(rec, 'ClosedTime');
  const closedTimeMs = timeOf(closed);
  if (!Number.isFinite(closedTimeMs)) return `ClosedTime ${JSON.stringify(closed)} is not a date-time`;
  const texts: Record<string, string> = {};
  for (const [name, alias] of TEXT_FIELDS) {
    const t = text(field(rec, name) ?? rec[alias]);
    if (t === undefined) return `${name} is not text`;
    texts[name] = t;
  }
  return {
    incidentNumber,
    incidentName: displaySafe(texts.IncidentName!, MAX_NAME),
    classification: c as Classification,
    reason: displaySafe(texts.ClassificationReason!, MAX_NAME),
    comment: texts.ClassificationComment!,
    owner: displaySafe(texts.Owner!, MAX_NAME),
    modifiedBy: displaySafe(texts.ModifiedBy!, MAX_NAME),
    closedTimeMs,
    alertId: alertId.toLowerCase(),
  };
}

/** A verdict as a line of a verdict file (the format `--verdicts FILE` reads; docs/operations.md). */
export function verdictToRecord(v: Verdict): Record<string, string | number> {
  return {
    incidentNumber: v.incidentNumber,
    incidentName: v.incidentName,
    classification: v.classification,
    classificationReason: v.reason,
    classificationComment: v.comment,
    owner: v.owner,
    modifiedBy: v.modifiedBy,
    closedTime: new Date(v.closedTimeMs).toISOString(),
    alertId: v.alertId,
  };
}

/** The verdicts of a JSON Lines text; a bad line is skipped with its (1-based) line number. Blank lines are ignored. */
export function parseVerdictLines(content: string): { verdicts: Verdict[]; skipped: SkippedVerdict[] } {
  const verdicts: Verdict[] = [];
  const skipped: SkippedVerdict[] = [];
  content.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '') return;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      skipped.push({ position: i + 1, reason: 'not JSON' });
      return;
    }
    if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) {
      skipped.push({ position: i + 1, reason: 'not a JSON object' });
      return;
    }
    const v = verdictFromRecord(rec as Record<string, unknown>);
    if (typeof v === 'string') skipped.push({ position: i + 1, reason: v });
    else verdicts.push(v);
  });
  return { verdicts, skipped };
}

// ---- The alert index: AlertId → the (caller, city, network) of the alert ----

export const ALERT_INDEX_PARTITION = 'alert-index';

export interface IndexedAlert {
  caller: string;
  cityKey: string;
  /** `AS<number>` of the caller's network for the alert, '' when unknown. */
  network: string;
  /** That network's organisation (ASN data), absent when unknown or for alerts indexed before it was kept. */
  org?: string;
  /** Event hour of the alert's top finding. */
  hourMs: number;
  score: number;
}

export const alertIndexEntity = (a: IndexedAlert): Entity => ({ ...a });

function indexedFromEntity(e: Entity): IndexedAlert | undefined {
  const { caller, cityKey, network, org, hourMs, score } = e;
  if (typeof caller !== 'string' || typeof cityKey !== 'string' || caller === '' || cityKey === '')
    return undefined;
  return {
    caller,
    cityKey,
    network: typeof network === 'string' ? network : '',
    ...(typeof org === 'string' && org !== '' ? { org: org.slice(0, 128) } : {}),
    hourMs: typeof hourMs === 'number' ? hourMs : 0,
    score: typeof score === 'number' ? score : 0,
  };
}

// ---- Applying verdicts ----

export const VERDICTS_PARTITION = 'verdicts';
/** A confirmed quarantine: it does not age out (only an allow rule lifts it). */
export { CONFIRMED_UNTIL_MS };

/** An allow rule to add (shared/ops/allowlist.ts addAllowRule, injected: ops stands above the pipeline). */
export type AllowFn = (
  rule: {
    kind: 'caller+city' | 'caller+network' | 'city+network';
    value: string;
    expiresMs?: number;
    org?: string;
  },
  change: { by: string; reason: string; atMs: number },
) => Promise<unknown>;

export interface VerdictPolicy {
  /** UC_VERDICT_ALLOW_NETWORK: a benign verdict also allows the caller's network of the alert. */
  allowNetwork: boolean;
  /**
   * UC_VERDICT_ALLOW_CITY_NETWORK: a benign verdict also allows the alert's (city, network) for the tenant's
   * other callers who work from that country (allow rule kind city+network). Absent: false.
   */
  allowCityNetwork?: boolean;
  /** UC_VERDICT_ALLOW_DAYS: expiry of the rules a benign verdict adds; 0 = none. */
  allowDays: number;
  allow: AllowFn;
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
}

export interface VerdictStats {
  /** Verdicts applied now (benign + confirmed). */
  applied: number;
  benign: number;
  confirmed: number;
  /** Applied by an earlier run (same incident, alert and classification). */
  alreadyApplied: number;
  /** Undetermined: nothing to do. */
  undetermined: number;
  /** Their AlertId is not in the alert index (not ours, or raised before the index existed). */
  unknownAlert: number;
}

export const newVerdictStats = (): VerdictStats => ({
  applied: 0,
  benign: 0,
  confirmed: 0,
  alreadyApplied: 0,
  undetermined: 0,
  unknownAlert: 0,
});

const appliedKey = (v: Verdict): string => `${v.incidentNumber}:${v.alertId}`;

/** The audit reason of a benign verdict: `incident <number>: <Classification>/<reason>: <comment, bounded>`. */
export function verdictReason(v: Verdict): string {
  const comment = displaySafe(v.comment.trim(), MAX_COMMENT);
  return `incident ${v.incidentNumber}: ${v.classification}/${v.reason || '-'}${comment !== '' ? `: ${comment}` : ''}`;
}

/** Who closed it: the owner, else the last modifier, else a placeholder that says so. */
export const verdictAnalyst = (v: Verdict): string =>
  v.owner.trim() || v.modifiedBy.trim() || `Sentinel incident ${v.incidentNumber}`;

/**
 * Applies each verdict not applied yet (in order of ClosedTime). Idempotent: a verdict is marked applied only
 * after its effects are written, so a crash in between applies it again (its effects are idempotent too).
 */
export async function applyVerdicts(
  store: BaselineStore,
  verdicts: readonly Verdict[],
  policy: VerdictPolicy,
): Promise<VerdictStats> {
  const stats = newVerdictStats();
  if (verdicts.length === 0) return stats;
  const ordered = [...verdicts].sort(
    (a, b) => a.closedTimeMs - b.closedTimeMs || a.incidentNumber - b.incidentNumber,
  );
  const keys = [...new Set(ordered.map(appliedKey))];
  const done = await store.readRows('state', VERDICTS_PARTITION, keys);
  const ids = [...new Set(ordered.map((v) => v.alertId))];
  const index = await store.readRows('state', ALERT_INDEX_PARTITION, ids);
  for (const v of ordered) {
    if (v.classification === 'Undetermined') {
      stats.undetermined += 1;
      continue;
    }
    const key = appliedKey(v);
    if (done.get(key)?.classification === v.classification) {
      stats.alreadyApplied += 1;
      continue;
    }
    const e = index.get(v.alertId);
    const alert = e ? indexedFromEntity(e) : undefined;
    if (alert === undefined) {
      stats.unknownAlert += 1;
      continue;
    }
    if (v.classification === 'TruePositive') await confirm(store, v, alert);
    else await allowBenign(store, v, alert, policy);
    const mark: Entity = { classification: v.classification, closedTimeMs: v.closedTimeMs };
    await store.updateRows('state', VERDICTS_PARTITION, [key], () => new Map([[key, mark]]));
    done.set(key, mark);
    stats.applied += 1;
    if (v.classification === 'TruePositive') stats.confirmed += 1;
    else stats.benign += 1;
    policy.log?.(
      'info',
      `Verdict of incident ${v.incidentNumber} (${v.classification}) applied to alert ${v.alertId}`,
    );
  }
  return stats;
}

async function allowBenign(
  store: BaselineStore,
  v: Verdict,
  a: IndexedAlert,
  policy: VerdictPolicy,
): Promise<void> {
  const change = { by: verdictAnalyst(v), reason: verdictReason(v), atMs: v.closedTimeMs };
  const expires = policy.allowDays > 0 ? { expiresMs: v.closedTimeMs + policy.allowDays * DAY_MS } : {};
  const caller = a.caller.toLowerCase();
  await policy.allow({ kind: 'caller+city', value: `${caller} ${a.cityKey}`, ...expires }, change);
  if (policy.allowNetwork && /^AS\d{1,10}$/.test(a.network))
    await policy.allow({ kind: 'caller+network', value: `${caller} ${a.network}`, ...expires }, change);
  if (policy.allowCityNetwork === true && /^AS\d{1,10}$/.test(a.network))
    await policy.allow(
      {
        kind: 'city+network',
        value: `${a.cityKey} ${a.network}`,
        ...expires,
        ...(a.org ? { org: a.org } : {}),
      },
      change,
    );
  // The quarantine ends with the exact caller as stored (the rule's value is lower-cased, stored callers are not).
  await liftQuarantine(store, { caller: a.caller, cityKey: a.cityKey });
  // A benign verdict after a true one (reclassified): later activity no longer re-alerts.
  await setConfirmed(store, a, undefined);
}

async function confirm(store: BaselineStore, v: Verdict, a: IndexedAlert): Promise<void> {
  await updateCallerHistories(
    store,
    new Map([
      [
        a.caller,
        [
          {
            cityKey: a.cityKey,
            hourMs: a.hourMs,
            quarantineUntilMs: CONFIRMED_UNTIL_MS,
            markOnly: true,
          },
        ],
      ],
    ]),
    new Map(),
  );
  await setConfirmed(store, a, v.alertId);
}

/** Marks (or unmarks) the (caller, city) episode in the alert ledger as confirmed by a TruePositive verdict. */
async function setConfirmed(
  store: BaselineStore,
  a: IndexedAlert,
  alertId: string | undefined,
): Promise<void> {
  await store.updateRows('alerts', a.caller, [a.cityKey], (cur) => {
    const row = cur.get(a.cityKey);
    if (alertId === undefined) {
      if (row === undefined || row.confirmedAlertId === undefined) return new Map();
      const { confirmedAlertId: _gone, ...rest } = row;
      return new Map([[a.cityKey, rest]]);
    }
    if (row?.confirmedAlertId === alertId) return new Map();
    const base: Entity = row ?? {
      caller: a.caller,
      cityKey: a.cityKey,
      alertId,
      alertedAtMs: a.hourMs,
      score: a.score,
      lastActivityMs: a.hourMs,
      operations: '[]',
    };
    return new Map([[a.cityKey, { ...base, confirmedAlertId: alertId }]]);
  });
}

/**
 * Verdicts fed to simulated runs (replay, the suite): each is applied, through the same code as the timer's, by
 * the first run at or after its ClosedTime. More can be added as the runs go (the suite's simulated analyst).
 */
export class VerdictFeed {
  private pending: Verdict[] = [];
  readonly stats = newVerdictStats();

  constructor(
    private readonly store: BaselineStore,
    private readonly policy: VerdictPolicy,
    verdicts: readonly Verdict[] = [],
  ) {
    this.add(verdicts);
  }

  add(verdicts: readonly Verdict[]): void {
    if (verdicts.length === 0) return;
    this.pending = [...this.pending, ...verdicts].sort((a, b) => a.closedTimeMs - b.closedTimeMs);
  }

  get size(): number {
    return this.pending.length;
  }

  /** Applies the verdicts closed at or before `tickMs`; true when any changed the allow table. */
  async due(tickMs: number): Promise<boolean> {
    let n = 0;
    while (n < this.pending.length && this.pending[n]!.closedTimeMs <= tickMs) n++;
    if (n === 0) return false;
    const now = this.pending.slice(0, n);
    this.pending = this.pending.slice(n);
    const s = await applyVerdicts(this.store, now, this.policy);
    for (const k of Object.keys(s) as (keyof VerdictStats)[]) this.stats[k] += s[k];
    return s.benign > 0;
  }
}
