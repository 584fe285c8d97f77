import type { Alert } from '../alerts/alert.js';
import type { BenignLabel, Evaluation, Labels } from './evaluate.js';

/** Class of an attack label without one, and of a false alert no benign episode explains. */
export const UNCLASSIFIED_ATTACK = 'attack';
export const OTHER = 'other';

export interface ClassRow {
  class: string;
  kind: 'attack' | 'benign';
  /** Attacks of the class, and how many of them were detected (attack rows). */
  attacks: number;
  detected: number;
  /** Times to detect of the detected attacks, ms, ascending. */
  timesToDetectMs: number[];
  /** False alerts attributed to the class (benign rows, and `other`). */
  falseAlerts: number;
}

export interface ClassReport {
  rows: ClassRow[];
  days: number;
  attacks: number;
  detected: number;
  timesToDetectMs: number[];
  falseAlerts: number;
}

const overlaps = (a: Alert, startMs: number, endMs: number) =>
  Date.parse(a.LastEventTime) >= startMs && Date.parse(a.FirstEventTime) <= endMs;

/** Whether a benign episode explains an alert: one of its callers (or anyone), one of its IPs (or any), during it. */
export function matchesBenign(a: Alert, b: BenignLabel): boolean {
  if (b.callers.length > 0 && !b.callers.includes(a.Caller)) return false;
  if (b.ips.length > 0 && !a.SrcIpAddrs.some((ip) => b.ips.includes(ip))) return false;
  return overlaps(a, b.startMs, b.endMs);
}

/** The class a false alert is charged to: the most specific benign episode it matches (IPs, then callers), or `other`. */
export function attributeFalseAlert(a: Alert, benign: readonly BenignLabel[]): string {
  const specificity = (b: BenignLabel) => (b.ips.length > 0 ? 0 : 2) + (b.callers.length > 0 ? 0 : 1);
  const ranked = [...benign].sort((x, y) => specificity(x) - specificity(y));
  return ranked.find((b) => matchesBenign(a, b))?.class ?? OTHER;
}

const row = (cls: string, kind: ClassRow['kind']): ClassRow => ({
  class: cls,
  kind,
  attacks: 0,
  detected: 0,
  timesToDetectMs: [],
  falseAlerts: 0,
});

/** Per-class view of an evaluation: attacks detected and time to detect per attack class, false alerts per benign class. */
export function classReport(e: Evaluation, labels: Labels): ClassReport {
  const rows = new Map<string, ClassRow>();
  const get = (cls: string, kind: ClassRow['kind']) =>
    rows.get(cls) ?? rows.set(cls, row(cls, kind)).get(cls)!;
  for (const r of e.attacks) {
    const x = get(r.attack.class ?? UNCLASSIFIED_ATTACK, 'attack');
    x.attacks++;
    if (r.detected) x.detected++;
    if (r.timeToDetectMs !== undefined) x.timesToDetectMs.push(r.timeToDetectMs);
  }
  for (const b of labels.benign ?? []) get(b.class, 'benign');
  get(OTHER, 'benign');
  for (const a of e.falseAlerts) get(attributeFalseAlert(a, labels.benign ?? []), 'benign').falseAlerts++;
  return summarise([...rows.values()], e.days);
}

function summarise(rows: ClassRow[], days: number): ClassReport {
  for (const r of rows) r.timesToDetectMs.sort((a, b) => a - b);
  return {
    rows,
    days,
    attacks: rows.reduce((n, r) => n + r.attacks, 0),
    detected: rows.reduce((n, r) => n + r.detected, 0),
    timesToDetectMs: rows.flatMap((r) => r.timesToDetectMs).sort((a, b) => a - b),
    falseAlerts: rows.reduce((n, r) => n + r.falseAlerts, 0),
  };
}

/** Several tenants' reports as one: counts and times pooled, days added. */
export function mergeReports(reports: readonly ClassReport[]): ClassReport {
  const rows = new Map<string, ClassRow>();
  for (const r of reports.flatMap((x) => x.rows)) {
    const m = rows.get(r.class) ?? rows.set(r.class, row(r.class, r.kind)).get(r.class)!;
    m.attacks += r.attacks;
    m.detected += r.detected;
    m.timesToDetectMs.push(...r.timesToDetectMs);
    m.falseAlerts += r.falseAlerts;
  }
  return summarise(
    [...rows.values()],
    reports.reduce((n, r) => n + r.days, 0),
  );
}

/** The median of an ascending list (the lower middle for an even count: a time that was actually measured). */
export const median = (xs: readonly number[]): number | undefined => xs[Math.floor((xs.length - 1) / 2)];

export function formatDuration(ms: number | undefined): string {
  if (ms === undefined) return '-';
  const min = ms / 60_000;
  return min < 120 ? `${Math.round(min)} min` : `${(min / 60).toFixed(1)} h`;
}

/** The per-class table: one line per attack class, one per benign class (and `other`), and the totals. */
export function formatClassTable(r: ClassReport, title: string): string {
  const cols = (c: string, d: string, m: string, x: string, f: string) =>
    `  ${c.padEnd(26)}${d.padEnd(10)}${m.padEnd(12)}${x.padEnd(10)}${f}`.trimEnd();
  const lines = [title, cols('class', 'detected', 'TTD median', 'TTD max', 'false alerts')];
  for (const x of r.rows.filter((y) => y.kind === 'attack'))
    lines.push(
      cols(
        x.class,
        `${x.detected}/${x.attacks}`,
        formatDuration(median(x.timesToDetectMs)),
        formatDuration(x.timesToDetectMs.at(-1)),
        '',
      ),
    );
  for (const x of r.rows.filter((y) => y.kind === 'benign'))
    lines.push(cols(x.class, '', '', '', String(x.falseAlerts)));
  const perDay = (r.falseAlerts / Math.max(1, r.days)).toFixed(2);
  lines.push(
    cols(
      'total',
      `${r.detected}/${r.attacks}`,
      formatDuration(median(r.timesToDetectMs)),
      formatDuration(r.timesToDetectMs.at(-1)),
      `${r.falseAlerts} in ${r.days.toFixed(0)} days = ${perDay}/day`,
    ),
  );
  return lines.join('\n') + '\n';
}

/** Labels worth a per-class table: some attack has a class, or there are benign episodes. */
export const hasClasses = (l: Labels): boolean =>
  l.attacks.some((a) => a.class !== undefined) || (l.benign?.length ?? 0) > 0;
