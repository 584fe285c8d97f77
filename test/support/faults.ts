/**
 * Fault injection for the reliability tests (test/reliability/) and the soak (bench/soak.ts).
 *
 * - {@link startFaultProxy}: an http(s) proxy on 127.0.0.1 in front of a local fake (Azurite, the Log Analytics
 *   query fake, the Logs Ingestion fake). Each request is buffered and handed to a rule that forwards it, answers
 *   it with an error (429 with Retry-After, 500, 503, …), forwards it and answers with an error anyway (the write
 *   landed, the client thinks it failed), cuts the response body (truncated JSON), resets the connection after a
 *   delay (a timeout), or holds it. The proxy can also refuse connections for a while: how an Azurite restart is
 *   simulated, because the in-memory Azurite loses its data when it really restarts.
 * - {@link reliabilityTenant}: a compact labelled data set: twelve days of history (London and Amsterdam teams,
 *   automation around the clock), then a ten-hour detection window with six credential-abuse scenarios, crossing
 *   the end of European summer time (2027-10-31 01:00 UTC).
 * - {@link startWorld}: the end-to-end harness of test/runtime/e2e.test.ts (fake managed identity, Log Analytics
 *   over https, Azurite in this process, Logs Ingestion over https) with the proxies in front, a warm baseline
 *   that any number of scenarios copy into their own tables (one table prefix per scenario), detectors run in
 *   this process or in a child process that can be killed with SIGKILL at a chosen step of a run, and the
 *   outcome of a scenario (alert ids delivered, duplicates, the state tables) to compare with a clean run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import {
  Agent as HttpAgent,
  createServer as createHttpServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  request as httpRequest,
  type Server,
  type ServerResponse,
} from 'node:http';
import { Agent as HttpsAgent, createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import { createRequire } from 'node:module';
import type { AddressInfo, Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import type { Timer } from '@azure/functions';
// A default import: plain Node (the compiled soak) cannot name this export of the CommonJS package.
import azureFunctions from '@azure/functions';

import { makeDetectHandler } from '../../functions/detectUnusualCity.js';
import { toActivityRow } from '../../shared/activity/formats.js';
import { newReadStats } from '../../shared/activity/read.js';
import type { ActivityEvent, CallerType } from '../../shared/activity/types.js';
import { alertDefaults } from '../../shared/alerts/defaults.js';
import { MemoryAlertSink } from '../../shared/alerts/sinks.js';
import { SqliteStore } from '../../shared/baseline/sqlite.js';
import { type BaselineStore, type Entity, TABLE_NAMES, type TableName } from '../../shared/baseline/store.js';
import { TableStorageStore } from '../../shared/baseline/tableStorage.js';
import { loadSettings } from '../../shared/config/settings.js';
import { AlertOutbox } from '../../shared/delivery/outbox.js';
import { mulberry32 } from '../../shared/demo/random.js';
import { embeddedDatabasePath, openGeolocator } from '../../shared/geo/geolocator.js';
import { replay } from '../../shared/pipeline/replay.js';
import { readCheckpoint } from '../../shared/pipeline/runState.js';
import { CHECKPOINT_PARTITION, CHECKPOINT_ROW } from '../../shared/pipeline/state.js';
import type { RunReport } from '../../shared/runtime/telemetry.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, type AzuriteTables, startAzurite } from './azurite.js';
import { FAKE_DCR_ID, type FakeIngestion, startFakeIngestion } from './fakeIngestion.js';
import { type FakeLogAnalytics, startFakeLogAnalytics } from './fakeLogAnalytics.js';
import { type FakeIdentity, startFakeIdentity } from './identity.js';
import { testCertificate } from './tls.js';

export const MIN = 60_000;
export const HOUR = 60 * MIN;
export const DAY = 24 * HOUR;

// ---------------------------------------------------------------------------------------------------
// The proxy

export interface ProxiedRequest {
  /** 1-based arrival order at this proxy. */
  seq: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The body as text (for matching table names, partitions, …). */
  text: string;
}

export interface UpstreamAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** What the proxy does with one request. `label` names the fault in the proxy's `injected` counts. */
export type FaultAction = { label?: string } & (
  | {
      kind: 'forward';
      /** Wait this long before forwarding (a slow service). */
      delayMs?: number;
      /** Called with the upstream answer before it is relayed. */
      onAnswer?: (answer: UpstreamAnswer) => void;
      /** Called once the answer has been written to the client. */
      afterReply?: () => void;
    }
  /** Answer without reaching the service. */
  | { kind: 'respond'; status: number; headers?: Record<string, string>; body?: string; delayMs?: number }
  /** Forward (the service acts on it), then answer with this status anyway: an ambiguous failure. */
  | { kind: 'forward-then-fail'; status: number; body?: string }
  /** Forward, then relay the answer with its body cut in half (a response truncated mid-JSON). */
  | { kind: 'truncate' }
  /** After `delayMs`, close the connection without an answer (a timeout / connection reset), forwarding first if asked. */
  | { kind: 'reset'; delayMs?: number; forward?: boolean }
  /** Never answer (the client or its process gives up); forwarded first if asked. */
  | { kind: 'hold'; forward?: boolean }
);

export type FaultRule = (request: ProxiedRequest) => FaultAction | undefined;

export interface FaultProxy {
  /** Origin of the proxy (paths are relayed unchanged to the target's origin). */
  endpoint: string;
  port: number;
  /** Decides per request; undefined (or no rule) forwards. */
  rule: FaultRule | undefined;
  /** Consulted when `rule` has nothing to say: background faults (the soak), while `rule` arms kills. */
  background: FaultRule | undefined;
  /** Sees every upstream answer (e.g. to count 412 conflicts). */
  onUpstream: ((request: ProxiedRequest, answer: UpstreamAnswer) => void) | undefined;
  /** Requests seen, and faults injected by label. */
  readonly requests: number;
  readonly injected: Map<string, number>;
  /** While true, connections are refused (the listening socket is closed) and open ones are cut. */
  refuse(on: boolean): Promise<void>;
  close(): Promise<void>;
}

export interface FaultProxyOptions {
  /** Origin of the service behind the proxy (http or https, on 127.0.0.1); a path in it is ignored. */
  target: string;
  /** Serve https with this certificate (and trust `ca` upstream). */
  tls?: { cert: string; key: string; ca: string };
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'host']);

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const secureUpstream = target.protocol === 'https:';
  const agent = secureUpstream
    ? new HttpsAgent({ keepAlive: true, ca: options.tls?.ca })
    : new HttpAgent({ keepAlive: true });
  const sockets = new Set<Socket>();
  const injected = new Map<string, number>();
  let seq = 0;
  let closed = false;

  const forward = (req: ProxiedRequest): Promise<UpstreamAnswer> =>
    new Promise((resolve, reject) => {
      const headers: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (v !== undefined && !HOP_BY_HOP.has(k.toLowerCase())) headers[k] = v;
      }
      headers['content-length'] = String(req.body.length);
      const send = secureUpstream ? httpsRequest : httpRequest;
      const upstream = send(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.path,
          headers,
          agent,
          ...(secureUpstream && options.tls ? { ca: options.tls.ca } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        },
      );
      upstream.on('error', reject);
      upstream.end(req.body);
    });

  const reply = (res: ServerResponse, answer: UpstreamAnswer): void => {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(answer.headers)) {
      if (v !== undefined && !HOP_BY_HOP.has(k.toLowerCase())) headers[k] = v;
    }
    headers['content-length'] = String(answer.body.length);
    if (res.destroyed) return;
    res.writeHead(answer.status, headers);
    res.end(answer.body);
  };

  const count = (label: string | undefined): void => {
    if (label !== undefined) injected.set(label, (injected.get(label) ?? 0) + 1);
  };
  const sleep = (ms: number | undefined) =>
    ms === undefined || ms <= 0 ? Promise.resolve() : new Promise<void>((r) => setTimeout(r, ms));

  const handle = async (incoming: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> => {
    const request: ProxiedRequest = {
      seq: ++seq,
      method: incoming.method ?? 'GET',
      // Paths are relayed as they are: the proxy stands for the target's origin.
      path: incoming.url ?? '/',
      headers: incoming.headers,
      body,
      text: body.toString('utf8'),
    };
    const action: FaultAction = proxy.rule?.(request) ?? proxy.background?.(request) ?? { kind: 'forward' };
    count(action.label);
    switch (action.kind) {
      case 'forward': {
        await sleep(action.delayMs);
        const answer = await forward(request);
        proxy.onUpstream?.(request, answer);
        action.onAnswer?.(answer);
        reply(res, answer);
        action.afterReply?.();
        return;
      }
      case 'respond':
        await sleep(action.delayMs);
        reply(res, {
          status: action.status,
          headers: { 'content-type': 'application/json', ...action.headers },
          body: Buffer.from(action.body ?? ''),
        });
        return;
      case 'forward-then-fail': {
        const answer = await forward(request);
        proxy.onUpstream?.(request, answer);
        reply(res, {
          status: action.status,
          headers: { 'content-type': 'application/json' },
          body: Buffer.from(action.body ?? ''),
        });
        return;
      }
      case 'truncate': {
        const answer = await forward(request);
        proxy.onUpstream?.(request, answer);
        reply(res, { ...answer, body: answer.body.subarray(0, Math.floor(answer.body.length / 2)) });
        return;
      }
      case 'reset':
        if (action.forward === true) proxy.onUpstream?.(request, await forward(request));
        await sleep(action.delayMs);
        res.socket?.destroy();
        return;
      case 'hold':
        if (action.forward === true) proxy.onUpstream?.(request, await forward(request));
        return;
    }
  };

  const onRequest = (incoming: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    incoming.on('data', (c: Buffer) => chunks.push(c));
    incoming.on('end', () => {
      handle(incoming, res, Buffer.concat(chunks)).catch(() => {
        // The service went away mid-request (or the client did): the client sees a reset.
        res.socket?.destroy();
      });
    });
  };
  const server: Server = options.tls
    ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, onRequest)
    : createHttpServer(onRequest);
  server.keepAliveTimeout = 5_000;
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  };
  server.on(options.tls ? 'secureConnection' : 'connection', track);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let refusing = false;

  const proxy: FaultProxy = {
    endpoint: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    rule: undefined,
    background: undefined,
    onUpstream: undefined,
    get requests() {
      return seq;
    },
    injected,
    async refuse(on) {
      if (on === refusing || closed) return;
      refusing = on;
      if (on) {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const s of sockets) s.destroy();
        await stopped;
        count('refused');
      } else {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, '127.0.0.1', () => {
            server.off('error', reject);
            resolve();
          });
        });
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const s of sockets) s.destroy();
      agent.destroy();
      if (!refusing) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}

// ---------------------------------------------------------------------------------------------------
// The data set

/** mulberry32 (the demo's generator): small, fast, deterministic. */
export const seeded = mulberry32;

/** Real IPs the embedded 2019 GeoLite2-City places in these cities (the demo tenant's, checked there). */
export const CITY_IPS = {
  london: ['5.10.99.10', '31.221.99.10', '51.145.99.10', '82.13.99.10'],
  amsterdam: ['5.101.99.10', '24.132.99.10', '31.160.7.10', '37.58.99.10'],
  frankfurt: ['46.101.99.10'],
  dublin: ['31.169.99.10', '37.0.7.10'],
  lagos: ['41.58.99.10'],
  moscow: ['5.228.7.10'],
  saoPaulo: ['45.234.99.10'],
  bucharest: ['5.12.7.10'],
  newYork: ['24.90.99.10'],
  mumbai: ['27.4.7.10'],
} as const;

export const OPS = {
  deploy: 'MICROSOFT.RESOURCES/DEPLOYMENTS/WRITE',
  siteWrite: 'MICROSOFT.WEB/SITES/WRITE',
  vmStart: 'MICROSOFT.COMPUTE/VIRTUALMACHINES/START/ACTION',
  vmWrite: 'MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE',
  vmssWrite: 'MICROSOFT.COMPUTE/VIRTUALMACHINESCALESETS/WRITE',
  snapshot: 'MICROSOFT.COMPUTE/SNAPSHOTS/WRITE',
  listKeys: 'MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION',
  containerWrite: 'MICROSOFT.STORAGE/STORAGEACCOUNTS/BLOBSERVICES/CONTAINERS/WRITE',
  roleAssign: 'MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE',
  kvPolicy: 'MICROSOFT.KEYVAULT/VAULTS/ACCESSPOLICIES/WRITE',
  nsgRule: 'MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/SECURITYRULES/WRITE',
  policyAudit: 'MICROSOFT.AUTHORIZATION/POLICIES/AUDITIFNOTEXISTS/ACTION',
  /**
   * An operation name with every character Table Storage forbids in keys (and the ones the key encoding escapes)
   * and non-ASCII text: stored end to end through Azurite like any other.
   */
  hostile: "MICROSOFT.CUSTOMPROVIDERS/RESOURCEPROVIDERS/ÜBER#?/%'!\\ÄKTION/ACTION",
} as const;

export interface AttackLabel {
  id: string;
  caller: string;
  ips: string[];
  startMs: number;
  endMs: number;
}

export interface ReliabilityData {
  events: ActivityEvent[];
  /** The baseline is built from the events before this instant; the detection window starts here. */
  windowStartMs: number;
  /** The last scheduled slot of the detection window. */
  windowEndMs: number;
  /** Timer slots of the detection window: windowStart + 15 min … windowEnd. */
  slots: number[];
  attacks: AttackLabel[];
  /** End of European summer time during the window (01:00 UTC: clocks in London go from 02:00 BST to 01:00 GMT). */
  dstEndMs: number;
}

const SUBSCRIPTION = '6f1c2a9e-3b7d-4e21-9c58-0d4f7a1b2c3d';
/** A Monday; twelve days of history follow. */
export const HISTORY_START = Date.UTC(2027, 9, 18);

/**
 * Twelve days of history and a ten-hour detection window (Saturday 18:00 to Sunday 04:00 UTC, across the end
 * of European summer time) with six labelled attacks. Deterministic. In the future of the wall clock on purpose:
 * the outbox's 30-day housekeeping runs on the wall clock and must not purge markers of simulated days.
 */
export function reliabilityTenant(): ReliabilityData {
  const rand = seeded(20271031);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const events: ActivityEvent[] = [];
  let n = 0;
  const uuid = (): string => {
    n += 1;
    return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
  };
  const emit = (timeMs: number, operation: string, caller: string, callerType: CallerType, ip: string) => {
    const id = uuid();
    events.push({
      timeMs: Math.round(timeMs),
      operation,
      operationKey: operation.toLowerCase(),
      caller,
      callerType,
      callerIp: ip,
      category: 'Administrative',
      status: 'Succeeded',
      correlationId: id,
      eventDataId: id,
      subscriptionId: SUBSCRIPTION,
      resourceGroup: 'rg-prod',
      resourceId: `/subscriptions/${SUBSCRIPTION}/resourcegroups/rg-prod/providers/${operation.toLowerCase()}`,
    });
  };
  const windowStartMs = HISTORY_START + 12 * DAY + 18 * HOUR; // Saturday 2027-10-30 18:00 UTC
  const windowEndMs = windowStartMs + 10 * HOUR;

  const london = ['ada', 'ben', 'cleo', 'dev', 'eve', 'finn'].map((n) => `${n}@contoso.com`);
  const amsterdam = ['joost', 'lotte', 'sem'].map((n) => `${n}@contoso.com`);
  const userOps = [OPS.deploy, OPS.siteWrite, OPS.vmStart, OPS.listKeys, OPS.roleAssign, OPS.kvPolicy];
  const days = Math.ceil((windowEndMs - HISTORY_START) / DAY);
  for (let d = 0; d < days; d++) {
    const weekday = d % 7; // 0 = Monday
    for (const [team, offset, ips] of [
      [london, 0, CITY_IPS.london],
      [amsterdam, -1, CITY_IPS.amsterdam],
    ] as const) {
      for (const user of team) {
        if (weekday >= 5 && user !== 'finn@contoso.com') continue; // finn is on call at weekends
        const bursts = weekday >= 5 ? 1 : 2 + Math.floor(rand() * 3);
        for (let b = 0; b < bursts; b++) {
          const hour = weekday >= 5 ? 9 + Math.floor(rand() * 12) : 8 + Math.floor(rand() * 10);
          const t = HISTORY_START + d * DAY + (hour + offset) * HOUR + rand() * 45 * MIN;
          const ip = rand() < 0.8 ? pick(ips) : pick(CITY_IPS.frankfurt);
          for (let k = 0; k < 1 + Math.floor(rand() * 3); k++)
            emit(t + k * 3 * MIN, pick(userOps), user, 'user', ip);
        }
      }
    }
    for (let h = 0; h < 24; h++) {
      const hour = HISTORY_START + d * DAY + h * HOUR;
      // CI/CD and the autoscaler from West Europe, around the clock: every run has data.
      emit(
        hour + 5 * MIN + rand() * 10 * MIN,
        OPS.deploy,
        'c1c1c1c1-0000-4000-8000-00000000c1c1',
        'servicePrincipal',
        pick(CITY_IPS.amsterdam),
      );
      emit(
        hour + 20 * MIN,
        OPS.listKeys,
        'c1c1c1c1-0000-4000-8000-00000000c1c1',
        'servicePrincipal',
        pick(CITY_IPS.amsterdam),
      );
      for (const m of [10, 40])
        emit(
          hour + m * MIN + rand() * 5 * MIN,
          OPS.vmssWrite,
          'a5a5a5a5-0000-4000-8000-00000000a5a5',
          'managedIdentity',
          CITY_IPS.amsterdam[0],
        );
      if (h >= 1 && h <= 3)
        emit(
          hour + rand() * 50 * MIN,
          OPS.snapshot,
          'b0b0b0b0-0000-4000-8000-00000000b0b0',
          'managedIdentity',
          pick(CITY_IPS.dublin),
        );
      // Azure-internal (no IP) and a private build agent: counted as internal, never alerted on.
      if (h % 6 === 0) emit(hour + 3 * MIN, OPS.policyAudit, '', 'unknown', '');
      if (h === 12)
        emit(
          hour + 9 * MIN,
          OPS.deploy,
          'd0d0d0d0-0000-4000-8000-00000000d0d0',
          'servicePrincipal',
          '10.20.4.17',
        );
    }
  }

  const attacks: AttackLabel[] = [];
  const attack = (id: string, caller: string, type: CallerType, ip: string, steps: [number, string][]) => {
    for (const [t, op] of steps) emit(t, op, caller, type, ip);
    const times = steps.map(([t]) => t);
    attacks.push({ id, caller, ips: [ip], startMs: Math.min(...times), endMs: Math.max(...times) + MIN });
  };
  const at = (hoursAfterStart: number, minute: number) =>
    windowStartMs + hoursAfterStart * HOUR + minute * MIN;
  attack('R1', 'ada@contoso.com', 'user', CITY_IPS.lagos[0], [
    [at(0, 20), OPS.listKeys],
    [at(0, 24), OPS.roleAssign],
    [at(0, 41), OPS.nsgRule],
  ]);
  attack('R2', 'c1c1c1c1-0000-4000-8000-00000000c1c1', 'servicePrincipal', CITY_IPS.moscow[0], [
    [at(2, 40), OPS.listKeys],
    [at(2, 44), OPS.containerWrite],
  ]);
  attack('R3', 'ben@contoso.com', 'user', CITY_IPS.saoPaulo[0], [
    [at(1, 15), OPS.deploy],
    [at(3, 15), OPS.vmWrite],
    [at(5, 15), OPS.deploy],
    [at(7, 15), OPS.vmStart],
  ]);
  // Across the end of summer time (01:00 UTC).
  attack('R4', 'cleo@contoso.com', 'user', CITY_IPS.bucharest[0], [
    [at(6, 50), OPS.roleAssign],
    [at(7, 5), OPS.kvPolicy],
    [at(7, 9), OPS.hostile],
  ]);
  attack('R5', 'dev@contoso.com', 'user', CITY_IPS.newYork[0], [
    [at(8, 30), OPS.roleAssign],
    [at(8, 33), OPS.listKeys],
  ]);
  attack('R6', 'lotte@contoso.com', 'user', CITY_IPS.mumbai[0], [[at(9, 10), OPS.kvPolicy]]);

  const inRange = events.filter((e) => e.timeMs < windowEndMs);
  inRange.sort((a, b) => a.timeMs - b.timeMs || a.eventDataId.localeCompare(b.eventDataId));
  const slots: number[] = [];
  for (let t = windowStartMs + 15 * MIN; t <= windowEndMs; t += 15 * MIN) slots.push(t);
  return { events: inRange, windowStartMs, windowEndMs, slots, attacks, dstEndMs: Date.UTC(2027, 9, 31, 1) };
}

// ---------------------------------------------------------------------------------------------------
// State snapshots and comparison

export type StateDump = Record<string, Record<string, Entity>>;

/** Every row of the detector's state except the outbox (versions and queue times differ by run). */
export async function dumpState(store: BaselineStore): Promise<StateDump> {
  const out: StateDump = {};
  for (const table of TABLE_NAMES) {
    if (table === 'outbox') continue;
    for (const partition of (await store.listPartitions(table)).sort()) {
      const rows = await store.readPartition(table, partition);
      const sorted = [...rows.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      out[`${table}/${partition}`] = Object.fromEntries(
        sorted.map(([k, e]) => {
          if (table === 'state' && partition === CHECKPOINT_PARTITION && k === CHECKPOINT_ROW) {
            // updatedAt is derived from lastTickMs; keep only the tick.
            return [k, { lastTickMs: e.lastTickMs ?? 0 }];
          }
          return [k, e];
        }),
      );
    }
  }
  return out;
}

/** Differences between two state dumps, as readable lines (at most `limit`). */
export function diffState(expected: StateDump, actual: StateDump, limit = 20): string[] {
  const out: string[] = [];
  const keys = [...new Set([...Object.keys(expected), ...Object.keys(actual)])].sort();
  for (const p of keys) {
    const a = expected[p];
    const b = actual[p];
    if (a === undefined || b === undefined) {
      out.push(`${p}: ${a === undefined ? 'unexpected partition' : 'missing partition'}`);
      continue;
    }
    for (const row of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      const ra = a[row];
      const rb = b[row];
      if (ra === undefined || rb === undefined) {
        out.push(`${p}/${row}: ${ra === undefined ? 'unexpected row' : 'missing row'}`);
        continue;
      }
      for (const prop of [...new Set([...Object.keys(ra), ...Object.keys(rb)])].sort()) {
        if (ra[prop] !== rb[prop]) {
          out.push(`${p}/${row}.${prop}: ${JSON.stringify(ra[prop])} -> ${JSON.stringify(rb[prop])}`);
        }
      }
    }
    if (out.length >= limit) break;
  }
  return out.slice(0, limit);
}

export interface Outcome {
  /** Distinct AlertIds the ingestion service accepted, sorted. */
  alertIds: string[];
  /** Distinct incidents alerted on: `caller @ city, country`, sorted. */
  episodes: string[];
  /** TimeGenerated (the run's slot) of each distinct alert, sorted. */
  alertTimes: string[];
  /** Rows accepted in total (alertIds.length + duplicates). */
  deliveredRows: number;
  duplicates: number;
  pending: number;
  checkpoint: number;
  state: StateDump;
}

export interface Comparison {
  missing: string[];
  extra: string[];
  stateDiffs: string[];
}

export function compareOutcomes(reference: Outcome, actual: Outcome): Comparison {
  const ref = new Set(reference.alertIds);
  const got = new Set(actual.alertIds);
  return {
    missing: reference.alertIds.filter((id) => !got.has(id)),
    extra: actual.alertIds.filter((id) => !ref.has(id)),
    stateDiffs: diffState(reference.state, actual.state),
  };
}

// ---------------------------------------------------------------------------------------------------
// The world

export interface InvocationLog {
  atMs: number;
  report?: RunReport;
  error?: string;
}

export interface InProcessDetector {
  /** One timer invocation with the clock at `atMs`; never throws (a failed run is recorded). */
  invoke(atMs: number, isPastDue?: boolean): Promise<InvocationLog>;
  /** Every log line of every invocation ("level: text"). */
  logs: string[];
}

export type KillStep =
  | 'after-fetch'
  | 'mid-baseline-write'
  | 'after-alerts-recorded'
  | 'mid-upload'
  | 'before-checkpoint'
  | 'random-time';

export const KILL_STEPS: readonly KillStep[] = [
  'after-fetch',
  'mid-baseline-write',
  'after-alerts-recorded',
  'mid-upload',
  'before-checkpoint',
  'random-time',
];

export interface KillPlan {
  step: KillStep;
  /** Kill at the n-th request of that step since the child started (1-based); ms after start for random-time. */
  occurrence: number;
  /** For the write steps: whether the request in flight still reaches the service. */
  landed: boolean;
}

export interface KillRound {
  children: number;
  invocations: number;
  kills: { step: KillStep; invocation: number; landed: boolean }[];
  failedRuns: string[];
}

export interface World {
  data: ReliabilityData;
  identity: FakeIdentity;
  azurite: AzuriteTables;
  logs: FakeLogAnalytics;
  ingestion: FakeIngestion;
  tableProxy: FaultProxy;
  logsProxy: FaultProxy;
  ingestionProxy: FaultProxy;
  ca: string;
  /** App settings of a detector using the tables `prefix` (all traffic through the proxies). */
  env(prefix: string, extra?: Record<string, string>): Record<string, string>;
  /** Direct (unproxied) access to the tables of `prefix`. */
  store(prefix: string): Promise<TableStorageStore>;
  /** Copies the warm baseline (history up to the window start) into the tables of `prefix`. */
  seed(prefix: string): Promise<void>;
  /** Clears what the fakes and proxies remember of earlier scenarios (received alerts, rules, failures, rows). */
  beginScenario(): void;
  detector(prefix: string, extraEnv?: Record<string, string>): InProcessDetector;
  /**
   * Runs every slot of the window once, in order, in this process (the clean run, or a faulty one), then more runs
   * in the last slot until the checkpoint is there and nothing is pending. `before` runs before each invocation
   * (index = slots.length before the drain).
   */
  runWindow(
    prefix: string,
    hooks?: {
      before?(slotMs: number, index: number): void | Promise<void>;
      extraEnv?: Record<string, string>;
    },
  ): Promise<InvocationLog[]>;
  /** Same for a detector of the caller's making (e.g. two instances side by side). */
  drain(prefix: string, invoke: (atMs: number) => Promise<InvocationLog>): Promise<InvocationLog[]>;
  /** Runs the window in child processes, killing them as `plans` say, until every slot ran and nothing is pending. */
  runWindowWithKills(
    prefix: string,
    /** A plan per child in turn, or a function of the index of the slot the child starts with. */
    plans: KillPlan[] | ((startIndex: number) => KillPlan | undefined),
    options?: {
      tz?: string;
      rand?: () => number;
      /** Called as a child starts invocation `index` (of slots; slots.length for the runs after the window). */
      onStart?: (index: number) => void;
      /** A child whose plan has not fired by its n-th invocation is killed as that one starts (a random-time kill). */
      fallbackAfter?: number;
      /** Chance that a killed run's slot is run again at once (past due) rather than the next slot (default 0). */
      restartSameSlot?: number;
    },
  ): Promise<KillRound>;
  /** What the scenario produced: alerts delivered since beginScenario(), pending, checkpoint, state. */
  outcome(prefix: string): Promise<Outcome>;
  /** The clean run over the window (computed once). */
  reference(): Promise<Outcome>;
  close(): Promise<void>;
}

/** The project root: the nearest directory above this module with a package.json (from test/ or dist/test/). */
function projectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) || path.basename(dir) === 'dist') {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('no package.json above test/support/faults');
    dir = parent;
  }
  return dir;
}
const ROOT = projectRoot();
const requireFromRoot = createRequire(path.join(ROOT, 'package.json'));

/**
 * The child process: the compiled timer handler (dist/, built by test/support/build.ts or `npm run soak`), run
 * for a list of invocations with a simulated clock. One JSON line per invocation start and end on stdout.
 */
const CHILD_SCRIPT = `
import { readFileSync } from 'node:fs';
const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const functions = await import(config.azureFunctions);
const InvocationContext = functions.InvocationContext ?? functions.default.InvocationContext;
const { makeDetectHandler } = await import(config.handler);
let now = 0;
const handler = makeDetectHandler({ env: config.env, tlsCa: config.ca, clock: () => now });
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
for (const inv of config.invocations) {
  now = inv.atMs;
  out({ type: 'start', index: inv.index });
  const context = new InvocationContext({
    invocationId: 'child-' + inv.index,
    functionName: 'detectUnusualCity',
    logHandler: (level, ...args) => { if (level === 'error') process.stderr.write(args.join(' ') + '\\n'); },
  });
  const timer = { isPastDue: inv.isPastDue, schedule: { adjustForDST: false }, scheduleStatus: { last: '', next: '', lastUpdated: '' } };
  try {
    const r = await handler(timer, context);
    out({ type: 'done', index: inv.index, ticks: r.ticks.length, alerts: r.alerts, delivered: r.delivered, pending: r.pendingOutbox, stopped: r.stoppedBecause ?? '' });
  } catch (e) {
    out({ type: 'error', index: inv.index, message: String(e && e.message || e) });
  }
}
process.exit(0);
`;

function timer(isPastDue: boolean): Timer {
  return {
    isPastDue,
    schedule: { adjustForDST: false },
    scheduleStatus: { last: '', next: '', lastUpdated: '' },
  };
}

/** Table-service error body, as the service sends it. */
export function tableError(code: string): string {
  return JSON.stringify({ 'odata.error': { code, message: { lang: 'en-US', value: `Injected ${code}` } } });
}

/** The physical table a Table Storage request touches (from its path or batch body), e.g. `ucrefBaselines`. */
export function tableOf(request: ProxiedRequest, prefix: string): TableName | undefined {
  const m = new RegExp(`${prefix}(Baselines|Tenant|Alerts|State|Outbox)\\b`).exec(
    request.path.includes('$batch') ? request.text : request.path,
  );
  return m ? (m[1]!.toLowerCase() as TableName) : undefined;
}

const isBatch = (r: ProxiedRequest): boolean => r.method === 'POST' && r.path.includes('$batch');

/** True when a batch writes to this (encoded) partition: updates name it in the URL, inserts in the JSON body. */
export function writesPartition(request: ProxiedRequest, partitionKey: string): boolean {
  return (
    request.text.includes(`PartitionKey='${partitionKey}'`) ||
    request.text.includes(`"PartitionKey":"${partitionKey}"`)
  );
}

export async function startWorld(options: { seedHistory?: boolean } = {}): Promise<World> {
  const data = reliabilityTenant();
  const { cert, key } = await testCertificate();
  const identity = await startFakeIdentity();
  const restoreEnv = identity.install();
  const azurite = await startAzurite();
  const allRows = data.events.map(toActivityRow);
  const logs = await startFakeLogAnalytics({ rows: [...allRows], retryAfterSeconds: 1 });
  const ingestion = await startFakeIngestion({ retryAfterSeconds: 1 });
  const tls = { cert, key, ca: cert };
  const tableProxy = await startFaultProxy({ target: azurite.endpoint });
  const logsProxy = await startFaultProxy({ target: logs.endpoint, tls });
  const ingestionProxy = await startFaultProxy({ target: ingestion.endpoint, tls });
  const stores = new Map<string, TableStorageStore>();

  // The warm baseline: the history replayed once into SQLite (hourly runs keep it quick), copied per scenario.
  const warm = SqliteStore.open(':memory:');
  if (options.seedHistory !== false) {
    const hourly = loadSettings({ UC_TICK_INTERVAL: '1h', UC_LOOKBACK: '2h' });
    const history = data.events.filter((e) => e.timeMs < data.windowStartMs);
    await replay({
      events: (async function* () {
        for (const e of history) yield e;
        await Promise.resolve();
      })(),
      readStats: newReadStats(),
      store: warm,
      geo: await openGeolocator({ databasePath: embeddedDatabasePath()!, noCityMode: 'skip' }),
      sink: new MemoryAlertSink(),
      settings: hourly,
      defaults: alertDefaults(hourly),
      toMs: data.windowStartMs,
    });
  }

  const env = (prefix: string, extra: Record<string, string> = {}): Record<string, string> => ({
    IDENTITY_ENDPOINT: identity.endpoint,
    IDENTITY_HEADER: identity.header,
    UC_WORKSPACE_ID: '0b0e2f5c-5c1e-4a57-9d4e-2f5b4c9e1a11',
    UC_LOGS_ENDPOINT: `${logsProxy.endpoint}/v1`,
    UC_STORAGE_CONNECTION_STRING: `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};TableEndpoint=${tableProxy.endpoint}/${AZURITE_ACCOUNT}`,
    UC_INGESTION_ENDPOINT: ingestionProxy.endpoint,
    UC_DCR_IMMUTABLE_ID: FAKE_DCR_ID,
    UC_RUN_BUDGET: '5m',
    UC_TABLE_PREFIX: prefix,
    ...extra,
  });

  const store = async (prefix: string): Promise<TableStorageStore> => {
    let s = stores.get(prefix);
    if (s === undefined) {
      s = await TableStorageStore.open({
        endpoint: azurite.endpoint,
        credential: azurite.credential,
        tablePrefix: prefix,
        allowInsecureConnection: true,
      });
      stores.set(prefix, s);
    }
    return s;
  };

  const seed = async (prefix: string): Promise<void> => {
    const target = await store(prefix);
    for (const table of TABLE_NAMES) {
      for (const partition of await warm.listPartitions(table)) {
        const rows = await warm.readPartition(table, partition);
        await target.updatePartition(table, partition, () => new Map(rows));
      }
    }
  };

  const beginScenario = (): void => {
    ingestion.received.length = 0;
    ingestion.rejected.length = 0;
    ingestion.requests.length = 0;
    ingestion.setDown(false);
    ingestion.setDelay(0);
    logs.reset();
    logs.rows = [...allRows];
    for (const p of [tableProxy, logsProxy, ingestionProxy]) {
      p.rule = undefined;
      p.background = undefined;
      p.onUpstream = undefined;
    }
  };

  const detector = (prefix: string, extraEnv: Record<string, string> = {}): InProcessDetector => {
    const now = { ms: 0 };
    const lines: string[] = [];
    const handler = makeDetectHandler({ env: env(prefix, extraEnv), tlsCa: cert, clock: () => now.ms });
    return {
      logs: lines,
      async invoke(atMs, isPastDue = false) {
        now.ms = atMs;
        const context = new azureFunctions.InvocationContext({
          invocationId: `inv-${prefix}-${atMs}`,
          functionName: 'detectUnusualCity',
          logHandler: (level, ...args) => lines.push(`${level}: ${args.map(String).join(' ')}`),
        });
        try {
          return { atMs, report: await handler(timer(isPastDue), context) };
        } catch (error) {
          return { atMs, error: error instanceof Error ? error.message : String(error) };
        }
      },
    };
  };

  /** Until the checkpoint is on the last slot and nothing is pending: more runs in the last slot (at most 5). */
  const drain = async (
    prefix: string,
    invoke: (atMs: number) => Promise<InvocationLog>,
  ): Promise<InvocationLog[]> => {
    const last = data.slots.at(-1)!;
    const s = await store(prefix);
    const out: InvocationLog[] = [];
    for (let i = 0; i < 5; i++) {
      if ((await readCheckpoint(s)) >= last && (await new AlertOutbox(s).countPending()) === 0) return out;
      out.push(await invoke(last + 5 * MIN));
    }
    throw new Error(`the run did not drain: ${out.map((r) => r.error ?? 'ok').join(' | ')}`);
  };

  const runWindow: World['runWindow'] = async (prefix, hooks = {}) => {
    const d = detector(prefix, hooks.extraEnv);
    const out: InvocationLog[] = [];
    for (const [i, slot] of data.slots.entries()) {
      await hooks.before?.(slot, i);
      out.push(await d.invoke(slot + 20_000));
    }
    await hooks.before?.(data.slots.at(-1)! + 5 * MIN, data.slots.length);
    out.push(...(await drain(prefix, (at) => d.invoke(at))));
    return out;
  };

  const outcome = async (prefix: string): Promise<Outcome> => {
    const s = await store(prefix);
    const ids = ingestion.received.map((r) => String(r.AlertId));
    const distinct = [...new Set(ids)].sort();
    const episodes = ingestion.received.map(
      (r) => `${String(r.Caller)} @ ${String(r.SrcGeoCity)}, ${String(r.SrcGeoCountry)}`,
    );
    const times = new Map(ingestion.received.map((r) => [String(r.AlertId), String(r.TimeGenerated)]));
    return {
      alertIds: distinct,
      episodes: [...new Set(episodes)].sort(),
      alertTimes: [...times.values()].sort(),
      deliveredRows: ids.length,
      duplicates: ids.length - distinct.length,
      pending: await new AlertOutbox(s).countPending(),
      checkpoint: await readCheckpoint(s),
      state: await dumpState(s),
    };
  };

  let referenceOutcome: Promise<Outcome> | undefined;
  const reference = (): Promise<Outcome> => {
    referenceOutcome ??= (async () => {
      beginScenario();
      await seed('ucref');
      const runs = await runWindow('ucref');
      const failed = runs.filter((r) => r.error !== undefined || r.report?.stoppedBecause !== undefined);
      if (failed.length > 0)
        throw new Error(`the clean run failed: ${failed[0]!.error ?? failed[0]!.report?.stoppedBecause}`);
      const o = await outcome('ucref');
      beginScenario();
      return o;
    })();
    return referenceOutcome;
  };

  // ---- child processes, killed at chosen steps

  // The compiled query template: `npm run build` copies it, the test suite's global setup (tsc only) does not.
  const kql = path.join(ROOT, 'dist', 'shared', 'source', 'activity.kql');
  if (!existsSync(kql)) copyFileSync(path.join(ROOT, 'shared', 'source', 'activity.kql'), kql);
  const scriptDir = mkdtempSync(path.join(os.tmpdir(), 'uc-faults-'));
  const scriptPath = path.join(scriptDir, 'detector-child.mjs');
  writeFileSync(scriptPath, CHILD_SCRIPT);
  const handlerUrl = pathToFileURL(path.join(ROOT, 'dist', 'functions', 'detectUnusualCity.js')).href;
  const azureFunctionsUrl = pathToFileURL(requireFromRoot.resolve('@azure/functions')).href;
  const children = new Set<ChildProcess>();

  const runWindowWithKills: World['runWindowWithKills'] = async (prefix, plans, opts = {}) => {
    const rand = opts.rand ?? seeded(7);
    const invocations = [
      ...data.slots.map((slot, index) => ({ index, atMs: slot + 20_000, isPastDue: false })),
    ];
    const last = data.slots.at(-1)!;
    const drainIndex = invocations.length;
    const round: KillRound = { children: 0, invocations: 0, kills: [], failedRuns: [] };
    const queue = typeof plans === 'function' ? [] : [...plans];
    const nextPlan = typeof plans === 'function' ? plans : () => queue.shift();
    let next = 0;
    let drains = 0;
    let restart: { index: number; atMs: number; isPastDue: boolean } | undefined;
    for (let guard = 0; guard < 500; guard++) {
      const list = invocations.slice(next);
      if (restart !== undefined && list[0]?.index === restart.index) list[0] = restart;
      restart = undefined;
      // After the last slot: one more run in the same slot, until the checkpoint is at the end and nothing waits.
      if (list.length === 0) list.push({ index: drainIndex, atMs: last + 5 * MIN, isPastDue: false });
      const plan = nextPlan(next);
      const configPath = path.join(scriptDir, `config-${prefix}-${guard}.json`);
      writeFileSync(
        configPath,
        JSON.stringify({
          env: env(prefix),
          ca: cert,
          handler: handlerUrl,
          azureFunctions: azureFunctionsUrl,
          invocations: list,
        }),
      );
      const childEnv: NodeJS.ProcessEnv = {};
      for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('UC_')) childEnv[k] = v;
      childEnv.IDENTITY_ENDPOINT = identity.endpoint;
      childEnv.IDENTITY_HEADER = identity.header;
      if (opts.tz !== undefined) childEnv.TZ = opts.tz;
      const child = spawn(process.execPath, [scriptPath, configPath], {
        cwd: ROOT,
        env: childEnv,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.add(child);
      round.children += 1;
      let started = next - 1;
      let runsOfChild = 0;
      let stderr = '';
      let killed: KillPlan | undefined;
      const kill = (p: KillPlan): void => {
        if (killed !== undefined) return;
        killed = p;
        child.kill('SIGKILL');
      };
      let partial = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        const parts = (partial + chunk).split('\n');
        partial = parts.pop()!;
        for (const line of parts) {
          const msg = JSON.parse(line) as { type: string; index: number; message?: string };
          if (msg.type === 'start') {
            started = msg.index;
            round.invocations += 1;
            opts.onStart?.(msg.index);
            if (
              plan !== undefined &&
              opts.fallbackAfter !== undefined &&
              ++runsOfChild > opts.fallbackAfter
            ) {
              kill({ step: 'random-time', occurrence: 0, landed: false });
            }
          } else if (msg.type === 'error') round.failedRuns.push(msg.message ?? '');
        }
      });
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-20_000)));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.on('close', (code, signal) => {
          children.delete(child);
          resolve({ code, signal });
        }),
      );
      let timer: NodeJS.Timeout | undefined;
      if (plan !== undefined) armKill(plan, prefix, kill, (t) => (timer = t), rand);
      const { code, signal } = await exited;
      if (timer !== undefined) clearTimeout(timer);
      disarm();
      if (killed !== undefined && signal === 'SIGKILL') {
        round.kills.push({ step: killed.step, invocation: started, landed: killed.landed });
        // The timer fires again at the next slot; a run killed in the drain is simply run again. With
        // `restartSameSlot`, the restarted host runs the missed occurrence at once instead (isPastDue).
        if (started >= drainIndex) next = drainIndex;
        else if (started >= 0 && rand() < (opts.restartSameSlot ?? 0)) {
          next = started;
          restart = { index: started, atMs: data.slots[started]! + 20_000 + 30_000, isPastDue: true };
        } else next = started + 1;
        continue;
      }
      if (code !== 0) throw new Error(`detector child exited ${code ?? signal}:\n${stderr}`);
      next = invocations.length;
      const s = await store(prefix);
      const checkpoint = await readCheckpoint(s);
      const pending = await new AlertOutbox(s).countPending();
      if (checkpoint >= last && pending === 0) return round;
      if (++drains > 5) {
        throw new Error(
          `five extra runs left the checkpoint at ${new Date(checkpoint).toISOString()} and ${pending} alert(s) ` +
            `pending; failed runs: ${round.failedRuns.join(' | ')}`,
        );
      }
    }
    throw new Error('too many child processes');
  };

  /** Sets the proxies' rules so that the plan's step kills the child (SIGKILL) at its n-th occurrence. */
  const armKill = (
    plan: KillPlan,
    prefix: string,
    kill: (p: KillPlan) => void,
    setTimer: (t: NodeJS.Timeout) => void,
    rand: () => number,
  ): void => {
    let seen = 0;
    const hit = (): boolean => ++seen === plan.occurrence;
    const label = `kill:${plan.step}`;
    switch (plan.step) {
      case 'random-time':
        setTimer(setTimeout(() => kill(plan), plan.occurrence));
        return;
      case 'after-fetch':
        logsProxy.rule = () =>
          hit()
            ? {
                kind: 'forward',
                label,
                afterReply: () => setTimer(setTimeout(() => kill(plan), Math.floor(rand() * 30))),
              }
            : undefined;
        return;
      case 'mid-upload':
        ingestionProxy.rule = () => {
          if (!hit()) return undefined;
          if (plan.landed) return { kind: 'forward', label, onAnswer: () => kill(plan) };
          kill(plan);
          return { kind: 'hold', label };
        };
        return;
      case 'mid-baseline-write':
      case 'after-alerts-recorded':
      case 'before-checkpoint':
        tableProxy.rule = (r) => {
          if (!isBatch(r)) return undefined;
          const table = tableOf(r, prefix);
          const matches =
            plan.step === 'mid-baseline-write'
              ? table === 'baselines' || table === 'tenant'
              : plan.step === 'after-alerts-recorded'
                ? table === 'outbox' && r.text.includes('"PartitionKey":"pending"')
                : table === 'state' && writesPartition(r, 'checkpoint');
          if (!matches || !hit()) return undefined;
          if (plan.step === 'after-alerts-recorded')
            return { kind: 'forward', label, afterReply: () => kill(plan) };
          kill(plan);
          return { kind: 'hold', label, forward: plan.landed };
        };
        return;
    }
  };
  const disarm = (): void => {
    tableProxy.rule = undefined;
    logsProxy.rule = undefined;
    ingestionProxy.rule = undefined;
  };

  return {
    data,
    identity,
    azurite,
    logs,
    ingestion,
    tableProxy,
    logsProxy,
    ingestionProxy,
    ca: cert,
    env,
    store,
    seed,
    beginScenario,
    detector,
    runWindow,
    drain,
    runWindowWithKills,
    outcome,
    reference,
    async close() {
      for (const c of children) c.kill('SIGKILL');
      restoreEnv();
      await warm.close();
      await Promise.all([tableProxy.close(), logsProxy.close(), ingestionProxy.close()]);
      await Promise.all([logs.close(), ingestion.close(), identity.close()]);
      await azurite.stop();
      rmSync(scriptDir, { recursive: true, force: true });
    },
  };
}

/**
 * A random kill plan for `step`: the n-th such request after the child starts, n small enough that the plan
 * usually fires before the window ends (a plan that does not fire is reported by the round: no kill). `scale`
 * shrinks the range (the soak kills sooner and more often).
 */
export function randomKillPlan(step: KillStep, rand: () => number, scale = 1): KillPlan {
  const range: Record<KillStep, number> = {
    'after-fetch': 8,
    'mid-baseline-write': 20,
    'after-alerts-recorded': 2,
    'mid-upload': 2,
    'before-checkpoint': 8,
    'random-time': 0,
  };
  const occurrence =
    step === 'random-time'
      ? Math.round((300 + Math.floor(rand() * 2_500)) * scale)
      : 1 + Math.floor(rand() * Math.max(1, Math.round(range[step] * scale)));
  return { step, occurrence, landed: rand() < 0.5 };
}
