/**
 * The two attacks of issue 14 on the London team (test/support/londonTeam.ts), and the clean run to compare with:
 * - dev1 (a known account) uses 60 operation names of ~500 characters of `"` and `\` from Lagos, which once made
 *   the alert ledger's operations property overflow Table Storage's 32K characters and stopped every later run;
 * - dev2 uses 1,000 known operations from Mumbai in one slot, which once made a 1.1 MB alert row;
 * - `callers` hostile callers (256 characters of `"`) deploy from London, which once overflowed the city's callers;
 * - admin, the bystander, lists keys and deploys from New York: the alerts everyone else must keep getting.
 */
import type { ActivityEvent } from '../../shared/activity/types.js';
import type { Alert } from '../../shared/alerts/alert.js';
import { MemoryAlertSink } from '../../shared/alerts/sinks.js';
import type { BaselineStore } from '../../shared/baseline/store.js';
import { loadSettings } from '../../shared/config/settings.js';
import type { ReplaySummary } from '../../shared/pipeline/replay.js';
import { ev, IP } from '../support/events.js';
import { DEPLOY, LISTKEYS, londonTeam, replayInto } from '../support/londonTeam.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
export const FROM = Date.UTC(2026, 9, 5);
export const ATTACK_MS = FROM + 15 * DAY + 10 * HOUR;
export const ATTACKERS = new Set(['dev1@contoso.com', 'dev2@contoso.com']);

export interface Attack {
  /** Operation names dev1 uses from Lagos (known to the tenant: ops@ used them from London). */
  longOperations: string[];
  /** How many known operations dev2 uses from Mumbai in one slot. */
  manyOperations: number;
  /** Callers deploying from London on the attack day (raise UC_MAX_CALLERS_PER_CITY to keep them all). */
  callers: string[];
}

export const ISSUE_ATTACK: Attack = {
  longOperations: Array.from({ length: 60 }, (_, i) => `MICROSOFT.X/${i}/${'"\\'.repeat(240)}`),
  manyOperations: 1000,
  callers: Array.from({ length: 100 }, (_, i) => `${i}${'"'.repeat(250)}`),
};

const manyOps = (n: number): string[] => Array.from({ length: n }, (_, i) => `MICROSOFT.Y/OP${i}/WRITE`);

/**
 * The tenant's history (with every operation the attack uses known) and the attack; `clean` leaves the attack
 * out. Both come from one list, so that every other event is the same (same ids) in both.
 */
export function scenario(attack: Attack): { clean: ActivityEvent[]; attacked: ActivityEvent[] } {
  const known = [...attack.longOperations, ...manyOps(attack.manyOperations)];
  const history = [
    ...londonTeam(15, { from: FROM }),
    ...[1, 2].flatMap((d) =>
      known.map((op, i) => ev(FROM + d * DAY + 9 * HOUR + i, op, 'ops@contoso.com', IP.london)),
    ),
    ev(ATTACK_MS + 60_000, LISTKEYS, 'admin@contoso.com', IP.newYork),
    ev(ATTACK_MS + 60_000, DEPLOY, 'admin@contoso.com', IP.newYork),
  ];
  const hostile = [
    ...attack.longOperations.map((op, i) => ev(ATTACK_MS + i, op, 'dev1@contoso.com', IP.lagos)),
    ...manyOps(attack.manyOperations).map((op, i) => ev(ATTACK_MS + i, op, 'dev2@contoso.com', IP.mumbai)),
    ...attack.callers.map((c, i) => ev(ATTACK_MS - 9 * DAY + i, DEPLOY, c, IP.london)),
  ];
  const byTime = (list: ActivityEvent[]) => list.sort((a, b) => a.timeMs - b.timeMs);
  return { clean: byTime([...history]), attacked: byTime([...history, ...hostile]) };
}

export const SETTINGS = { UC_LEARNING_OPERATION_HOURS: '2', UC_MAX_CALLERS_PER_CITY: '100' };

/** The production replay of the scenario into `store`. */
export async function run(
  store: BaselineStore,
  events: readonly ActivityEvent[],
): Promise<{ alerts: Alert[]; summary: ReplaySummary }> {
  const sink = new MemoryAlertSink();
  const settings = loadSettings({}, SETTINGS);
  const summary = await replayInto(store, events, { settings, sink });
  return { alerts: sink.alerts, summary };
}

/** Alerts of everyone but the attackers, keyed by AlertId (what must not change). */
export const bystanders = (alerts: readonly Alert[]): Map<string, Alert> =>
  new Map(alerts.filter((a) => !ATTACKERS.has(a.Caller)).map((a) => [a.AlertId, a]));

export const rowBytes = (a: Alert): number => Buffer.byteLength(JSON.stringify(a));
