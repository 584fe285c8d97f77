import type { ActivityEvent } from '../activity/types.js';
import { HOUR_MS } from '../scoring/model.js';
import { type EventGroup, type EventSource, MAX_GROUP_LIST } from './types.js';

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** The largest span that never straddles a run's window edge or an hour: gcd(tick, lookback, 1h). */
export function slotOf(tickMs: number, lookbackMs: number): number {
  return gcd(gcd(tickMs, lookbackMs), HOUR_MS);
}

/**
 * Holds events of files in memory as aggregates per (operation, caller, IP, slot) — memory grows with
 * distinct combinations, not raw events — and serves the windows the simulated timer asks for.
 * A slot is the largest span that never straddles a window edge or an hour: gcd(tick, lookback, 1h).
 */
export class AggregatedEvents implements EventSource {
  readonly slotMs: number;
  private readonly slots = new Map<number, Map<string, EventGroup>>();
  /** Slot starts in order, built on demand by nextEventSlot (reset when a slot is added). */
  private sortedSlots: number[] | undefined;
  minMs = Number.POSITIVE_INFINITY;
  maxMs = Number.NEGATIVE_INFINITY;
  events = 0;
  groups = 0;
  /** Groups held now: `groups` less those of the slots dropped. */
  groupsHeld = 0;

  constructor(tickMs: number, lookbackMs: number) {
    this.slotMs = slotOf(tickMs, lookbackMs);
  }

  /** A store of slots of `slotMs` (a divisor of an hour): for groups a source aggregated per slot. */
  static ofSlot(slotMs: number): AggregatedEvents {
    if (!(slotMs > 0) || HOUR_MS % slotMs !== 0)
      throw new RangeError(`a slot must divide an hour, got ${slotMs} ms`);
    return new AggregatedEvents(slotMs, slotMs);
  }

  /**
   * Adds a group a source already aggregated for one slot (`slotMs`, or its hour when the source read whole
   * hours) — the backtest's download of a period from Log Analytics. The slot must be one of this store's.
   */
  addGroup(g: EventGroup): void {
    const slot = g.slotMs ?? g.hourMs;
    if (slot % this.slotMs !== 0 || (g.slotMs === undefined && this.slotMs !== HOUR_MS))
      throw new RangeError(
        `a group of slot ${new Date(slot).toISOString()} does not fit slots of ${this.slotMs / 60_000} minutes`,
      );
    const groups = this.groupsOf(slot);
    const key = `${g.operationKey}\u0000${g.caller}\u0000${g.callerIp}`;
    if (groups.has(key))
      throw new Error(`the source returned the group ${key.replaceAll('\u0000', ' | ')} of one slot twice`);
    const { slotMs: _slot, ...group } = g;
    groups.set(key, { ...group, resourceIds: [...g.resourceIds], correlationIds: [...g.correlationIds] });
    this.groups += 1;
    this.groupsHeld += 1;
    this.events += g.count;
    this.minMs = Math.min(this.minMs, g.firstMs);
    this.maxMs = Math.max(this.maxMs, g.lastMs);
  }

  /** The groups of a slot, keyed by operation, caller and IP (created empty when new). */
  private groupsOf(slot: number): Map<string, EventGroup> {
    let groups = this.slots.get(slot);
    if (!groups) {
      groups = new Map();
      this.slots.set(slot, groups);
      this.sortedSlots = undefined;
    }
    return groups;
  }

  add(ev: ActivityEvent): void {
    const slot = Math.floor(ev.timeMs / this.slotMs) * this.slotMs;
    const groups = this.groupsOf(slot);
    const key = `${ev.operationKey}\u0000${ev.caller}\u0000${ev.callerIp}`;
    let g = groups.get(key);
    if (!g) {
      g = {
        operation: ev.operation,
        operationKey: ev.operationKey,
        caller: ev.caller,
        callerType: ev.callerType,
        callerIp: ev.callerIp,
        hourMs: Math.floor(ev.timeMs / HOUR_MS) * HOUR_MS,
        count: 0,
        firstMs: ev.timeMs,
        lastMs: ev.timeMs,
        resourceIds: [],
        correlationIds: [],
        subscriptionId: ev.subscriptionId,
        resourceGroup: ev.resourceGroup,
      };
      groups.set(key, g);
      this.groups += 1;
      this.groupsHeld += 1;
    }
    g.count += 1;
    if (ev.timeMs < g.firstMs) {
      g.firstMs = ev.timeMs;
      // Keep the earliest spelling and context: files are in ingestion order, not time order.
      g.operation = ev.operation;
      g.subscriptionId = ev.subscriptionId;
      g.resourceGroup = ev.resourceGroup;
    }
    g.lastMs = Math.max(g.lastMs, ev.timeMs);
    if (g.callerType === 'unknown' && ev.callerType !== 'unknown') g.callerType = ev.callerType;
    if (
      ev.resourceId !== '' &&
      g.resourceIds.length < MAX_GROUP_LIST &&
      !g.resourceIds.includes(ev.resourceId)
    ) {
      g.resourceIds.push(ev.resourceId);
    }
    if (
      ev.correlationId !== '' &&
      g.correlationIds.length < MAX_GROUP_LIST &&
      !g.correlationIds.includes(ev.correlationId)
    ) {
      g.correlationIds.push(ev.correlationId);
    }
    this.minMs = Math.min(this.minMs, ev.timeMs);
    this.maxMs = Math.max(this.maxMs, ev.timeMs);
    this.events += 1;
  }

  /**
   * Forgets the slots that start before `ms` (a streaming replay's runs are past them), passing each of their
   * groups to `visit` first. The totals (events, groups, first and last time) keep counting them.
   */
  dropBefore(ms: number, visit: (g: EventGroup) => void): void {
    for (const [slot, groups] of this.slots) {
      if (slot >= ms) continue;
      for (const g of groups.values()) visit(g);
      this.groupsHeld -= groups.size;
      this.slots.delete(slot);
      this.sortedSlots = undefined;
    }
  }

  /** Every group of every slot (for whole-data statistics). */
  *allGroups(): Iterable<EventGroup> {
    for (const groups of this.slots.values()) yield* groups.values();
  }

  /** True when some slot in [startMs, endMs) has events (cheap check to skip empty runs). */
  hasEvents(startMs: number, endMs: number): boolean {
    for (let t = Math.floor(startMs / this.slotMs) * this.slotMs; t < endMs; t += this.slotMs) {
      if (t >= startMs && this.slots.has(t)) return true;
    }
    return false;
  }

  /** Start of the first slot at or after `ms` that has events; undefined when there is none. */
  nextEventSlot(ms: number): number | undefined {
    const sorted = (this.sortedSlots ??= [...this.slots.keys()].sort((a, b) => a - b));
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid]! < ms) lo = mid + 1;
      else hi = mid;
    }
    return sorted[lo];
  }

  /**
   * The window's groups, one per (operation, caller, IP, hour). A group of one slot is the stored object itself
   * (runs never change the groups they read); groups of several slots are merged into a copy.
   */
  read(startMs: number, endMs: number): Promise<EventGroup[]> {
    const merged = new Map<string, EventGroup>();
    const copies = new Set<EventGroup>();
    for (let t = Math.floor(startMs / this.slotMs) * this.slotMs; t < endMs; t += this.slotMs) {
      if (t < startMs) continue;
      const groups = this.slots.get(t);
      if (!groups) continue;
      for (const g of groups.values()) {
        const key = `${g.operationKey}\u0000${g.caller}\u0000${g.callerIp}\u0000${g.hourMs}`;
        let m = merged.get(key);
        if (!m) {
          merged.set(key, g);
          continue;
        }
        if (!copies.has(m)) {
          m = { ...m, resourceIds: [...m.resourceIds], correlationIds: [...m.correlationIds] };
          copies.add(m);
          merged.set(key, m);
        }
        m.count += g.count;
        if (g.firstMs < m.firstMs) {
          m.firstMs = g.firstMs;
          m.operation = g.operation;
          m.subscriptionId = g.subscriptionId;
          m.resourceGroup = g.resourceGroup;
        }
        m.lastMs = Math.max(m.lastMs, g.lastMs);
        if (m.callerType === 'unknown') m.callerType = g.callerType;
        for (const r of g.resourceIds) {
          if (m.resourceIds.length < MAX_GROUP_LIST && !m.resourceIds.includes(r)) m.resourceIds.push(r);
        }
        for (const c of g.correlationIds) {
          if (m.correlationIds.length < MAX_GROUP_LIST && !m.correlationIds.includes(c))
            m.correlationIds.push(c);
        }
      }
    }
    return Promise.resolve([...merged.values()]);
  }
}
