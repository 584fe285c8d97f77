import { toActivityRow } from '../../shared/activity/formats.js';
import { canonicalStatus, normaliseActivityRow } from '../../shared/activity/normalise.js';
import type { ActivityEvent } from '../../shared/activity/types.js';
import { generateTenant } from '../../shared/demo/tenant.js';
import { type EventGroup, MAX_GROUP_LIST } from '../../shared/pipeline/types.js';
import { AggregatedEvents } from '../../shared/pipeline/window.js';
import type { AzureActivityRow } from '../support/fakeLogAnalytics.js';

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;

/** AzureActivity rows of the generated demo tenant (the realistic input of every Log Analytics test). */
export function tenantRows(days: number): AzureActivityRow[] {
  return generateTenant(days).events.map(toActivityRow);
}

export interface Reference {
  groups: EventGroup[];
  /** Every distinct resource / correlation id of each group (the groups' own lists are bounded). */
  full: Map<string, { resourceIds: Set<string>; correlationIds: Set<string> }>;
}

export const keyOf = (g: Pick<EventGroup, 'operationKey' | 'caller' | 'callerIp' | 'hourMs'>): string =>
  `${g.operationKey}|${g.caller}|${g.callerIp}|${g.hourMs}`;

/**
 * What the Azure source must return, computed the way the file pipeline (`replay`) does: rows normalised by
 * the file reader, aggregated by AggregatedEvents. Windows must be whole minutes (its slot here).
 */
export async function reference(
  rows: readonly AzureActivityRow[],
  startMs: number,
  endMs: number,
  filter: { categories?: string[]; statuses?: string[] } = {},
): Promise<Reference> {
  const cats = new Set((filter.categories ?? []).map((c) => c.toLowerCase()));
  const stats = new Set((filter.statuses ?? []).map((s) => canonicalStatus(s).toLowerCase()));
  const agg = new AggregatedEvents(60_000, 60_000);
  const full: Reference['full'] = new Map();
  for (const row of rows) {
    const r = normaliseActivityRow(row);
    if (!r.ok) throw new Error(`test row does not normalise: ${r.reason}`);
    const ev: ActivityEvent = r.event;
    if (ev.timeMs < startMs || ev.timeMs >= endMs || ev.callerIp === '') continue;
    if (cats.size > 0 && !cats.has(ev.category.toLowerCase())) continue;
    if (stats.size > 0 && !stats.has(ev.status.toLowerCase())) continue;
    agg.add(ev);
    const key = keyOf({ ...ev, hourMs: Math.floor(ev.timeMs / HOUR) * HOUR });
    let f = full.get(key);
    if (!f) {
      f = { resourceIds: new Set(), correlationIds: new Set() };
      full.set(key, f);
    }
    if (ev.resourceId) f.resourceIds.add(ev.resourceId);
    if (ev.correlationId) f.correlationIds.add(ev.correlationId);
  }
  return { groups: await agg.read(startMs, endMs), full };
}

/** The scalar part of a group, for exact comparison. */
const scalars = (g: EventGroup) => ({
  operation: g.operation,
  operationKey: g.operationKey,
  caller: g.caller,
  callerType: g.callerType,
  callerIp: g.callerIp,
  hourMs: g.hourMs,
  count: g.count,
  firstMs: g.firstMs,
  lastMs: g.lastMs,
  subscriptionId: g.subscriptionId,
  resourceGroup: g.resourceGroup,
});

/**
 * Differences between groups read and the reference: [] when equal. Lists are sets bounded to 20: equal to the
 * full set when it has at most 20 members, else 20 distinct members of it.
 */
export function differences(actual: readonly EventGroup[], ref: Reference): string[] {
  const out: string[] = [];
  const want = new Map(ref.groups.map((g) => [keyOf(g), g]));
  const got = new Map(actual.map((g) => [keyOf(g), g]));
  if (got.size !== actual.length) out.push(`duplicate groups: ${actual.length - got.size}`);
  for (const k of want.keys()) if (!got.has(k)) out.push(`missing group ${k}`);
  for (const [k, g] of got) {
    const w = want.get(k);
    if (!w) {
      out.push(`unexpected group ${k}`);
      continue;
    }
    const a = JSON.stringify(scalars(g));
    const b = JSON.stringify(scalars(w));
    if (a !== b) out.push(`group ${k}: got ${a}, want ${b}`);
    const f = ref.full.get(k)!;
    for (const [name, list, all] of [
      ['resourceIds', g.resourceIds, f.resourceIds],
      ['correlationIds', g.correlationIds, f.correlationIds],
    ] as const) {
      const distinct = new Set(list);
      const ok =
        distinct.size === list.length &&
        list.every((x) => all.has(x)) &&
        list.length === Math.min(all.size, MAX_GROUP_LIST);
      if (!ok)
        out.push(
          `group ${k}: ${name} ${JSON.stringify(list)} is not ${Math.min(all.size, 20)} of ${all.size}`,
        );
    }
  }
  return out;
}
