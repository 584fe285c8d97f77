import { UNSAFE_DISPLAY } from '../display.js';
import { type BacktestResults, describePeriod, type ThresholdResult, type VariantResult } from './types.js';

/**
 * Control and format characters (Cc, Cf: C0, DEL, C1, bidirectional controls, zero-width characters) of
 * data-derived text replaced before it reaches a terminal: a caller name with an ANSI escape sequence must not
 * rewrite the analyst's screen, nor a right-to-left override show it reversed.
 */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE_DISPLAY, '\uFFFD');
}

const clip = (text: string, max: number): string =>
  text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;

/** Number formats shared by the stdout table and the HTML report (so both show the same figures). */
export const fmt = {
  threshold: (t: number): string => String(t),
  perDay: (x: number): string => x.toFixed(2),
  score: (x: number): string => x.toFixed(1),
  detected: (r: ThresholdResult): string =>
    r.evaluation !== undefined ? `${r.evaluation.detected}/${r.evaluation.attacks}` : '-',
  falsePerDay: (r: ThresholdResult): string =>
    r.evaluation !== undefined ? r.evaluation.falseAlertsPerDay.toFixed(2) : '-',
  ttd: (r: ThresholdResult): string =>
    r.evaluation?.medianTimeToDetectMin !== undefined ? `${r.evaluation.medianTimeToDetectMin} min` : '-',
};

/** A plain-text table: right-aligned numbers, left-aligned text, two spaces between columns. */
export function textTable(
  header: readonly string[],
  rows: readonly string[][],
  left: readonly number[] = [],
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (left.includes(i) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

export const SUMMARY_HEADER = [
  'threshold',
  'alerts',
  'per day',
  'callers',
  'operations',
  'places',
  'detected',
  'false/day',
  'median TTD',
] as const;

export function summaryRow(r: ThresholdResult): string[] {
  return [
    `${r.current ? '*' : ''}${fmt.threshold(r.threshold)}`,
    String(r.alerts),
    fmt.perDay(r.alertsPerDay),
    String(r.callers),
    String(r.operations),
    String(r.cities),
    fmt.detected(r),
    fmt.falsePerDay(r),
    fmt.ttd(r),
  ];
}

function pairsText(r: ThresholdResult): string {
  if (r.topPairs.length === 0) return '  (none)\n';
  const labels = r.topPairs.some((p) => p.falseAlerts !== undefined);
  const header = ['alerts', ...(labels ? ['false'] : []), 'max', 'operation', 'place', 'silence with'];
  const rows = r.topPairs.map((p) => [
    String(p.alerts),
    ...(labels ? [String(p.falseAlerts ?? 0)] : []),
    fmt.score(p.maxScore),
    clip(terminalSafe(p.operation), 56),
    clip(terminalSafe(p.country !== '' ? `${p.city}, ${p.country}` : p.city), 28),
    clip(terminalSafe(silenceText(p)), 60),
  ]);
  const textCols = labels ? [3, 4, 5] : [2, 3, 4];
  const table = textTable(header, rows, textCols)
    .split('\n')
    .map((l) => (l === '' ? l : `  ${l}`))
    .join('\n');
  // Allow rules: the whole command line of each, once (the table has room for the rule only).
  const rowsOf = new Map<string, number[]>();
  r.topPairs.forEach((p, i) => {
    if (p.silence?.rule !== undefined)
      rowsOf.set(p.silence.assignment, [...(rowsOf.get(p.silence.assignment) ?? []), i + 1]);
  });
  const commands = [...rowsOf].map(([command, rows]) => `  ${rows.join(', ')}. ${terminalSafe(command)}\n`);
  return commands.length === 0 ? table : `${table}  Allow rules, by row:\n${commands.join('')}`;
}

/** The "silence with" cell: NAME=VALUE of a setting, or `allow <kind> <value>` of an allow rule. */
function silenceText(p: ThresholdResult['topPairs'][number]): string {
  if (p.silence === undefined) return '(no single setting)';
  const r = p.silence.rule;
  return r !== undefined ? `allow ${r.kind} ${r.value}` : p.silence.assignment;
}

function variantRows(v: VariantResult): string[][] {
  return v.results.map((r) => [terminalSafe(v.name), v.method, ...summaryRow(r)]);
}

/** The readable summary `unusual-city backtest` prints on stdout. */
export function formatBacktest(b: BacktestResults): string {
  const base = b.variants[0]!;
  const out: string[] = [];
  const day = (iso: string) => iso.slice(0, 10);
  out.push(
    `Backtest of ${base.replay.events.toLocaleString('en-US')} events, ${day(b.period.start)} .. ${day(b.period.end)} ` +
      `(${b.period.days.toFixed(1)} days), ${base.replay.runs.toLocaleString('en-US')} simulated runs, ` +
      `${b.replays} replay(s); ${base.replay.scores.toLocaleString('en-US')} per-caller scores, ` +
      `${base.replay.findingsKept.toLocaleString('en-US')} at or above ${b.thresholds[0]}.`,
  );
  const la = b.logAnalytics;
  if (la !== undefined)
    out.push(
      `Read from ${terminalSafe(describePeriod(la))}: ${la.queries.toLocaleString('en-US')} queries, ` +
        `${la.groups.toLocaleString('en-US')} groups of ${la.slotMinutes}-minute slots, ${la.seconds.toFixed(1)} s.`,
    );
  const setText = Object.entries(b.set)
    .map(([k, v]) => terminalSafe(`${k}=${v}`))
    .join(' ');
  out.push(`Current settings${setText !== '' ? ` (--set ${setText})` : ''}; * = UC_ALERT_THRESHOLD.`, '');
  out.push(textTable(SUMMARY_HEADER, base.results.map(summaryRow)));
  const cur = base.results.find((r) => r.current) ?? base.results[0]!;
  if (cur.allowlisted > 0)
    out.push(
      `Allowlists (UC_ALLOW_*) kept ${cur.allowlisted} rare finding(s) from alerting at ${cur.threshold}.`,
      '',
    );
  out.push(
    `Noisy (operation, place) pairs at UC_ALERT_THRESHOLD=${cur.threshold}` +
      `${cur.evaluation !== undefined ? ' (false alerts only)' : ''}, with the narrowest change that would silence each:`,
  );
  out.push(pairsText(cur));
  if (b.variants.length > 1) {
    out.push(
      `Variants (--vary; "decision" re-used the recorded findings, "replay" replayed the ${la !== undefined ? 'period' : 'files'}):`,
    );
    out.push(textTable(['variant', 'method', ...SUMMARY_HEADER], b.variants.flatMap(variantRows), [0, 1]));
  }
  return out.join('\n') + '\n';
}
