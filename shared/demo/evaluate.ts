import { readFile } from 'node:fs/promises';

import { z } from 'zod';

import type { Alert } from '../alerts/alert.js';

/** One labelled credential-abuse scenario: who was abused, from which IPs, when. */
export interface AttackLabel {
  id: string;
  description: string;
  caller: string;
  ips: string[];
  startMs: number;
  endMs: number;
  /** Scenario class (e.g. `foreign-password`); labels without one are class "attack". */
  class?: string;
  /**
   * When set, only an alert raised at or after the attack's start whose Operations list one of these counts
   * (an escalation inside a campaign is detected only if the alert reports the escalation).
   */
  requiredOperations?: string[];
}

/** A labelled benign-but-novel episode: false alerts it explains are counted against its class. */
export interface BenignLabel {
  id: string;
  class: string;
  description: string;
  /** Callers involved; empty = anyone. */
  callers: string[];
  /** Caller IPs involved; empty = any. */
  ips: string[];
  startMs: number;
  endMs: number;
}

export interface Labels {
  /** Time range the data covers (for false alerts per day); 0 = take it from the data. */
  startMs: number;
  endMs: number;
  attacks: AttackLabel[];
  benign?: BenignLabel[];
}

const labelsSchema = z.object({
  start: z.string().optional(),
  end: z.string().optional(),
  attacks: z.array(
    z.object({
      id: z.string(),
      description: z.string().default(''),
      caller: z.string(),
      ips: z.array(z.string()).min(1),
      start: z.string(),
      end: z.string(),
      class: z.string().min(1).optional(),
      requiredOperations: z.array(z.string()).min(1).optional(),
    }),
  ),
  benign: z
    .array(
      z.object({
        id: z.string(),
        class: z.string().min(1),
        description: z.string().default(''),
        callers: z.array(z.string()),
        ips: z.array(z.string()),
        start: z.string(),
        end: z.string(),
      }),
    )
    .optional(),
});

const time = (path: string, what: string, v: string): number => {
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new Error(`${path}: ${what} is not an ISO time: ${JSON.stringify(v)}`);
  return ms;
};

/** Reads a labels file: `{"start","end","attacks":[{"id","description","caller","ips":[…],"start","end"}]}`. */
export async function readLabels(path: string): Promise<Labels> {
  const parsed = labelsSchema.safeParse(JSON.parse(await readFile(path, 'utf8')));
  if (!parsed.success) {
    throw new Error(
      `${path} is not a labels file: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  const d = parsed.data;
  return {
    startMs: d.start !== undefined ? time(path, 'start', d.start) : 0,
    endMs: d.end !== undefined ? time(path, 'end', d.end) : 0,
    attacks: d.attacks.map((a) => ({
      id: a.id,
      description: a.description,
      caller: a.caller,
      ips: a.ips,
      startMs: time(path, `attack ${a.id} start`, a.start),
      endMs: time(path, `attack ${a.id} end`, a.end),
      ...(a.class !== undefined ? { class: a.class } : {}),
      ...(a.requiredOperations !== undefined ? { requiredOperations: a.requiredOperations } : {}),
    })),
    ...(d.benign !== undefined
      ? {
          benign: d.benign.map((b) => ({
            id: b.id,
            class: b.class,
            description: b.description,
            callers: b.callers,
            ips: b.ips,
            startMs: time(path, `benign ${b.id} start`, b.start),
            endMs: time(path, `benign ${b.id} end`, b.end),
          })),
        }
      : {}),
  };
}

export function labelsToJson(l: Labels): unknown {
  return {
    start: new Date(l.startMs).toISOString(),
    end: new Date(l.endMs).toISOString(),
    attacks: l.attacks.map((a) => ({
      id: a.id,
      description: a.description,
      caller: a.caller,
      ips: a.ips,
      start: new Date(a.startMs).toISOString(),
      end: new Date(a.endMs).toISOString(),
      ...(a.class !== undefined ? { class: a.class } : {}),
      ...(a.requiredOperations !== undefined ? { requiredOperations: a.requiredOperations } : {}),
    })),
    ...(l.benign !== undefined
      ? {
          benign: l.benign.map((b) => ({
            id: b.id,
            class: b.class,
            description: b.description,
            callers: b.callers,
            ips: b.ips,
            start: new Date(b.startMs).toISOString(),
            end: new Date(b.endMs).toISOString(),
          })),
        }
      : {}),
  };
}

export async function readAlertsFile(path: string): Promise<Alert[]> {
  const text = await readFile(path, 'utf8');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Alert);
}

export interface AttackResult {
  attack: AttackLabel;
  detected: boolean;
  alertIds: string[];
  firstAlertMs?: number;
  /** From the attack's first event to the run that raised its first alert. */
  timeToDetectMs?: number;
}

export interface Evaluation {
  attacks: AttackResult[];
  detected: number;
  falseAlerts: Alert[];
  days: number;
  falseAlertsPerDay: number;
  medianTimeToDetectMs?: number;
  maxTimeToDetectMs?: number;
  totalAlerts: number;
}

/** An alert belongs to an attack when it is the abused caller, from one of the attack's IPs, during it. */
export function matchesAttack(a: Alert, at: AttackLabel): boolean {
  if (a.Caller !== at.caller) return false;
  if (!a.SrcIpAddrs.some((ip) => at.ips.includes(ip))) return false;
  const first = Date.parse(a.FirstEventTime);
  const last = Date.parse(a.LastEventTime);
  if (last < at.startMs || first > at.endMs) return false;
  if (at.requiredOperations === undefined) return true;
  const required = new Set(at.requiredOperations.map((o) => o.toLowerCase()));
  return (
    Date.parse(a.TimeGenerated) >= at.startMs &&
    (a.Operations ?? []).some((o) => required.has(o.toLowerCase()))
  );
}

export function evaluateAlerts(
  alerts: readonly Alert[],
  labels: Labels,
  startMs: number,
  endMs: number,
): Evaluation {
  const used = new Set<string>();
  const attacks: AttackResult[] = labels.attacks.map((attack) => {
    const mine = alerts.filter((a) => matchesAttack(a, attack));
    for (const a of mine) used.add(a.AlertId);
    const firstAlertMs =
      mine.length > 0 ? Math.min(...mine.map((a) => Date.parse(a.TimeGenerated))) : undefined;
    const r: AttackResult = { attack, detected: mine.length > 0, alertIds: mine.map((a) => a.AlertId) };
    if (firstAlertMs !== undefined) {
      r.firstAlertMs = firstAlertMs;
      r.timeToDetectMs = firstAlertMs - attack.startMs;
    }
    return r;
  });
  // An alert about an attacker is never a false alert, even when it does not count as detecting (an escalation
  // alert that does not report the escalation).
  const aboutAttacker = (a: Alert) =>
    labels.attacks.some((at) => matchesAttack(a, { ...at, requiredOperations: undefined }));
  const falseAlerts = alerts.filter((a) => !used.has(a.AlertId) && !aboutAttacker(a));
  const days = Math.max(1, (endMs - startMs) / 86_400_000);
  const ttds = attacks
    .map((a) => a.timeToDetectMs)
    .filter((t): t is number => t !== undefined)
    .sort((a, b) => a - b);
  const e: Evaluation = {
    attacks,
    detected: attacks.filter((a) => a.detected).length,
    falseAlerts,
    days,
    falseAlertsPerDay: falseAlerts.length / days,
    totalAlerts: alerts.length,
  };
  if (ttds.length > 0) {
    e.medianTimeToDetectMs = ttds[Math.floor((ttds.length - 1) / 2)]!;
    e.maxTimeToDetectMs = ttds[ttds.length - 1]!;
  }
  return e;
}

const minutes = (ms: number | undefined) => (ms === undefined ? '-' : `${Math.round(ms / 60_000)} min`);

export function formatEvaluation(e: Evaluation): string {
  const lines = ['', 'Evaluation', '=========='];
  for (const r of e.attacks) {
    lines.push(
      `${r.detected ? 'DETECTED' : 'MISSED  '}  ${r.attack.id}: ${r.attack.description}` +
        (r.detected ? ` — time to detect ${minutes(r.timeToDetectMs)}, ${r.alertIds.length} alert(s)` : ''),
    );
  }
  lines.push(
    `attacks detected:   ${e.detected}/${e.attacks.length}`,
    `false alerts:       ${e.falseAlerts.length} over ${e.days.toFixed(1)} days = ${e.falseAlertsPerDay.toFixed(2)} per day`,
    `time to detect:     median ${minutes(e.medianTimeToDetectMs)}, max ${minutes(e.maxTimeToDetectMs)}`,
    `alerts in all:      ${e.totalAlerts}`,
  );
  if (e.falseAlerts.length > 0) {
    lines.push('false alerts (not part of a labelled attack):');
    for (const a of e.falseAlerts.slice(0, 25)) {
      lines.push(
        `  ${a.TimeGenerated.slice(0, 16)}  ${a.AnomalyScore.toFixed(1).padStart(5)}  ${a.Caller}  ${a.SrcGeoCity}, ${a.SrcGeoCountry}  ${a.Operation}`,
      );
    }
  }
  return lines.join('\n') + '\n';
}
