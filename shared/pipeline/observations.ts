/** The run's first stages: the window's event groups geolocated and folded into observations, hour by hour. */
import type { City, Geolocator, Network, NetworkLocator } from '../geo/types.js';
import type { CallerActivity, Observation } from '../scoring/model.js';
import type { TickStats } from './tickRun.js';
import { type EventGroup, MAX_GROUP_LIST } from './types.js';

const bounded = (into: string[], values: readonly string[]) => {
  for (const v of values) if (v !== '' && into.length < MAX_GROUP_LIST && !into.includes(v)) into.push(v);
};

/** Geolocates event groups and folds them into (operation, city, hour) observations. */
export function buildObservations(
  groups: readonly EventGroup[],
  geo: Geolocator,
  stats: TickStats,
  networks?: NetworkLocator,
): Observation[] {
  const byKey = new Map<string, Observation>();
  const networkOf = networkCache(networks);
  // (observation, caller) → its activity: a hot observation has thousands of callers (no linear search).
  const activities = new Map<string, CallerActivity>();
  for (const g of groups) {
    stats.events += g.count;
    const where = geo.locate(g.callerIp);
    if (where.kind !== 'city') {
      if (where.kind === 'internal') stats.internalEvents += g.count;
      else if (where.kind === 'no-city') stats.noCityEvents += g.count;
      else if (where.kind === 'not-found') stats.notFoundEvents += g.count;
      else stats.invalidIpEvents += g.count;
      continue;
    }
    const city: City = where.city;
    const key = `${g.operationKey}\u0000${city.key}\u0000${g.hourMs}`;
    let obs = byKey.get(key);
    if (!obs) {
      obs = {
        operationKey: g.operationKey,
        operation: g.operation,
        city,
        hourMs: g.hourMs,
        events: 0,
        callers: [],
      };
      byKey.set(key, obs);
    }
    obs.events += g.count;
    const actKey = `${key}\u0000${g.caller}`;
    let act: CallerActivity | undefined = activities.get(actKey);
    if (!act) {
      act = {
        caller: g.caller,
        callerType: g.callerType,
        ips: [],
        events: 0,
        firstMs: g.firstMs,
        lastMs: g.lastMs,
        resourceIds: [],
        correlationIds: [],
        subscriptionId: g.subscriptionId,
        resourceGroup: g.resourceGroup,
      };
      obs.callers.push(act);
      activities.set(actKey, act);
    }
    act.events += g.count;
    act.firstMs = Math.min(act.firstMs, g.firstMs);
    act.lastMs = Math.max(act.lastMs, g.lastMs);
    bounded(act.ips, [g.callerIp]);
    const net = networkOf(g.callerIp);
    if (net !== undefined) {
      act.networks ??= [];
      if (act.networks.length < MAX_NETWORKS && !act.networks.some((n) => n.asn === net.asn))
        act.networks.push(net);
    }
    bounded(act.resourceIds, g.resourceIds);
    bounded(act.correlationIds, g.correlationIds);
  }
  // Deterministic order: the same window always scores and alerts the same way.
  const list = [...byKey.values()];
  for (const o of list) o.callers.sort((a, b) => a.caller.localeCompare(b.caller));
  return list.sort(
    (a, b) =>
      a.hourMs - b.hourMs ||
      a.operationKey.localeCompare(b.operationKey) ||
      a.city.key.localeCompare(b.city.key),
  );
}

/** Distinct networks kept per caller activity (an attacker may rotate addresses across many). */
const MAX_NETWORKS = 8;

/** One lookup per distinct IP of a run (groups repeat IPs across operations and hours). */
function networkCache(networks: NetworkLocator | undefined): (ip: string) => Network | undefined {
  if (networks === undefined) return () => undefined;
  const seen = new Map<string, Network | undefined>();
  return (ip) => {
    if (seen.has(ip)) return seen.get(ip);
    const n = networks.network(ip);
    seen.set(ip, n);
    return n;
  };
}

/** The window's observations (sorted by hour) cut into hours. */
export function byHour(observations: readonly Observation[]): Observation[][] {
  const hours: Observation[][] = [];
  let i = 0;
  while (i < observations.length) {
    const hourMs = observations[i]!.hourMs;
    let j = i;
    while (j < observations.length && observations[j]!.hourMs === hourMs) j++;
    hours.push(observations.slice(i, j));
    i = j;
  }
  return hours;
}
