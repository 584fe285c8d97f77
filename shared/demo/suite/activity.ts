import { once } from 'node:events';
import { createWriteStream } from 'node:fs';

import { toActivityRow } from '../../activity/formats.js';
import { CLAIM } from '../../activity/normalise.js';
import type { ActivityEvent, CallerType } from '../../activity/types.js';

export const SUITE_SUBSCRIPTION = '2b7e4c1a-6d3f-4a8e-9b21-c5d0e7f4a3b9';
export const MIN = 60_000;
export const HOUR = 3_600_000;
export const DAY = 86_400_000;

/** Who did what from where: one management operation of the suite's tenant. */
export interface Operation {
  timeMs: number;
  operation: string;
  caller: string;
  callerType: CallerType;
  ip: string;
  resourceGroup?: string;
  /** A replayed session token: the token's claims keep the victim's `ipaddr`, not the caller's address. */
  tokenIp?: string;
}

/**
 * The tenant's Activity Log as it is generated: each operation becomes a Started and a Succeeded (or Failed)
 * row sharing a correlation id, with ids drawn from the seeded generator so the same seed gives the same log.
 */
export class ActivityLog {
  readonly events: ActivityEvent[] = [];
  /** Claims `ipaddr` that differs from CallerIpAddress, by EventDataId (session-token replay). */
  readonly tokenIps = new Map<string, string>();

  constructor(private readonly rand: () => number) {}

  add(o: Operation): void {
    const rg = o.resourceGroup ?? 'rg-app';
    const correlationId = this.uuid();
    const provider = o.operation.toLowerCase().split('/');
    const base = {
      operation: o.operation,
      operationKey: o.operation.toLowerCase(),
      caller: o.caller,
      callerType: o.callerType,
      callerIp: o.ip,
      category: 'Administrative',
      correlationId,
      subscriptionId: SUITE_SUBSCRIPTION,
      resourceGroup: rg,
      resourceId: `/subscriptions/${SUITE_SUBSCRIPTION}/resourcegroups/${rg}/providers/${provider[0]}/${provider[1]}/${rg.slice(3)}-1`,
    };
    const started = { ...base, timeMs: Math.round(o.timeMs), status: 'Started', eventDataId: this.uuid() };
    const done = {
      ...base,
      timeMs: Math.round(o.timeMs + 2_000 + this.rand() * 40_000),
      status: this.rand() < 0.03 ? 'Failed' : 'Succeeded',
      eventDataId: this.uuid(),
    };
    this.events.push(started, done);
    if (o.tokenIp !== undefined) {
      this.tokenIps.set(started.eventDataId, o.tokenIp);
      this.tokenIps.set(done.eventDataId, o.tokenIp);
    }
  }

  sorted(): ActivityEvent[] {
    return this.events.sort((a, b) => a.timeMs - b.timeMs || a.eventDataId.localeCompare(b.eventDataId));
  }

  private uuid(): string {
    const h = Array.from({ length: 32 }, () => Math.floor(this.rand() * 16).toString(16)).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
  }
}

/** AzureActivity JSON Lines, as a Log Analytics export gives them; replayed tokens keep the victim's `ipaddr`. */
export async function writeActivityJsonl(
  events: readonly ActivityEvent[],
  tokenIps: ReadonlyMap<string, string>,
  path: string,
): Promise<void> {
  const out = createWriteStream(path);
  let chunk = '';
  for (const ev of events) {
    const row = toActivityRow(ev);
    const tokenIp = tokenIps.get(ev.eventDataId);
    if (tokenIp !== undefined) row.Claims_d = { ...(row.Claims_d as object), [CLAIM.ipAddress]: tokenIp };
    chunk += JSON.stringify(row) + '\n';
    if (chunk.length > 256 * 1024) {
      if (!out.write(chunk)) await once(out, 'drain');
      chunk = '';
    }
  }
  out.end(chunk);
  await once(out, 'finish');
}
