/**
 * A deterministic benchmark tenant: a fixed population (operations, callers, their IPs and cities) and, for a
 * given size, the AzureActivity rows of one 2-hour window, generated lazily (row i is a pure function of the
 * population, the seed and i) so that millions of rows never sit in memory.
 *
 * Skew, as in real Activity Logs: a few hot operations and a long tail of rare ones (Zipf), a few automation
 * identities (service principals, managed identities in cloud regions) producing most events, thousands of
 * people working from offices, homes and a VPN egress, tens of thousands of IPs in hundreds of cities — real
 * addresses the embedded GeoLite2-City places in those cities (bench/ips.ts). A handful of credential-abuse
 * events (a known user, a rare operation, a city in a country the tenant never works from) are mixed in.
 *
 * The same rows repeat every day (shifted by whole days): the "warm" run reads the next day's window with
 * baselines that already know the tenant.
 */
import { shardOf } from '../shared/pipeline/shard.js';
import { type AzureActivityRow, groupKey } from '../test/support/fakeLogAnalytics.js';
import type { IpSample, SampledCity } from './ips.js';

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;
export const WINDOW_MS = 2 * HOUR_MS;

const UPN_CLAIM = 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn';

/** splitmix32-style mixing: a uniform 32-bit value from any integer inputs. */
export function hash32(a: number, b = 0): number {
  let h = (Math.imul(a | 0, 0x9e3779b1) ^ Math.imul(b | 0, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x21f0aaad);
  h = Math.imul(h ^ (h >>> 15), 0x735a2d97);
  return (h ^ (h >>> 15)) >>> 0;
}

/** A seeded PRNG in [0, 1). */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    return hash32(s, 0x1234567) / 4294967296;
  };
}

/** Walker's alias method: O(1) draws from a discrete distribution. */
class Alias {
  private readonly prob: Float64Array;
  private readonly alias: Uint32Array;
  constructor(weights: readonly number[]) {
    const n = weights.length;
    const total = weights.reduce((a, b) => a + b, 0);
    this.prob = new Float64Array(n);
    this.alias = new Uint32Array(n);
    const scaled = weights.map((w) => (w * n) / total);
    const small: number[] = [];
    const large: number[] = [];
    scaled.forEach((p, i) => (p < 1 ? small : large).push(i));
    while (small.length > 0 && large.length > 0) {
      const s = small.pop()!;
      const l = large.pop()!;
      this.prob[s] = scaled[s]!;
      this.alias[s] = l;
      scaled[l] = scaled[l]! + scaled[s]! - 1;
      (scaled[l] < 1 ? small : large).push(l);
    }
    for (const i of [...small, ...large]) this.prob[i] = 1;
  }
  /** `u` and `v` uniform in [0, 1). */
  draw(u: number, v: number): number {
    const i = Math.floor(u * this.prob.length);
    return v < this.prob[i]! ? i : this.alias[i]!;
  }
}

/** Cumulative weights of a small list, for draws by binary search. */
function cumulative(weights: readonly number[]): Float64Array {
  const out = new Float64Array(weights.length);
  let acc = 0;
  weights.forEach((w, i) => (out[i] = acc += w));
  for (let i = 0; i < out.length; i++) out[i]! /= acc;
  return out;
}

function pick(cdf: Float64Array, u: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cdf[mid]! > u) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

const zipf = (n: number, s: number): number[] => Array.from({ length: n }, (_, r) => 1 / Math.pow(r + 1, s));

export type CallerKind = 'user' | 'servicePrincipal' | 'managedIdentity';

export interface BenchCaller {
  caller: string;
  kind: CallerKind;
  /** Indexes into `operations`, with this caller's weights. */
  ops: number[];
  opCdf: Float64Array;
  ips: string[];
  /** Indexes of `ips` in the population's `ipList`. */
  ipIndex: Int32Array;
  ipCdf: Float64Array;
  claims: Record<string, string>;
  authorization: { evidence: { principalType: string } };
  subscription: string;
  resourceGroup: string;
}

export interface BenchAttack {
  caller: number;
  operation: number;
  ip: string;
  city: string;
}

export interface BenchPopulation {
  operations: string[];
  callers: BenchCaller[];
  callerAlias: Alias;
  cities: number;
  ips: number;
  attacks: BenchAttack[];
  /** geoname id → city of the sample, for the population's IPs. */
  cityOfIp: Map<string, SampledCity>;
  /** Every IP of the population, once. */
  ipList: string[];
}

const PROVIDERS = [
  'Compute',
  'Storage',
  'Network',
  'Web',
  'KeyVault',
  'Sql',
  'Resources',
  'Authorization',
  'ContainerService',
  'Insights',
  'OperationalInsights',
  'Automation',
  'EventHub',
  'ServiceBus',
  'DocumentDB',
  'Cache',
  'Logic',
  'DataFactory',
  'ApiManagement',
  'CognitiveServices',
];
const TYPES = [
  'virtualMachines',
  'storageAccounts',
  'sites',
  'vaults',
  'servers',
  'workspaces',
  'clusters',
  'namespaces',
  'deployments',
  'networkInterfaces',
  'roleAssignments',
  'accounts',
];
const ACTIONS = ['write', 'delete', 'listKeys/action', 'restart/action', 'regenerateKey/action'];

const OFFICE_CITIES = [
  'London',
  'Amsterdam',
  'Mumbai',
  'New York',
  'Frankfurt am Main',
  'Singapore',
  'Paris',
];
const CLOUD_CITIES = ['Ashburn', 'Boardman', 'Dublin', 'San Antonio', 'Des Moines', 'Quincy', 'Boydton'];

export interface PopulationOptions {
  users?: number;
  /** Share of all events made by people (the rest: automation). */
  userShare?: number;
  servicePrincipals?: number;
  managedIdentities?: number;
  /** Most IPs one automation identity rotates through (most have 1 to 3). */
  automationIps?: number;
  operations?: number;
  homeCities?: number;
  seed?: number;
}

const guid = (n: number, salt: number): string => {
  const h = [hash32(n, salt), hash32(n, salt + 1), hash32(n, salt + 2), hash32(n, salt + 3)].map((x) =>
    x.toString(16).padStart(8, '0'),
  );
  return `${h[0]}-${h[1]!.slice(0, 4)}-4${h[1]!.slice(5, 8)}-8${h[2]!.slice(1, 4)}-${h[2]!.slice(4)}${h[3]!.slice(0, 4)}`;
};

/** The tenant's people, automation and places (the same for every size). */
export function buildPopulation(sample: IpSample, o: PopulationOptions = {}): BenchPopulation {
  const rand = prng(o.seed ?? 20261130);
  const nOps = o.operations ?? 600;
  const operations: string[] = [];
  for (let i = 0; operations.length < nOps; i++) {
    const p = PROVIDERS[i % PROVIDERS.length]!;
    const t = TYPES[Math.floor(i / PROVIDERS.length) % TYPES.length]!;
    const a = ACTIONS[Math.floor(i / (PROVIDERS.length * TYPES.length)) % ACTIONS.length]!;
    const name = `Microsoft.${p}/${t}/${a}`;
    operations.push(i % 3 === 0 ? name.toUpperCase() : name);
  }
  const opAlias = new Alias(zipf(nOps, 1.1));

  const byName = (names: readonly string[]) =>
    names
      .map((n) => sample.cities.find((c) => c.name === n && c.ips.length >= 8))
      .filter((c): c is SampledCity => c !== undefined);
  const offices = byName(OFFICE_CITIES);
  const clouds = byName(CLOUD_CITIES);
  if (offices.length < 3 || clouds.length < 3) throw new Error('IP sample lacks the office or cloud cities');
  const used = new Set([...offices, ...clouds].map((c) => c.geonameId));
  const officeCountries = new Set(offices.map((c) => c.country));
  // Homes: the biggest sampled cities of the offices' countries and their neighbours' (any country, weighted
  // towards the offices' ones), hundreds of them.
  const candidates = sample.cities.filter((c) => !used.has(c.geonameId) && c.ips.length >= 4);
  const homes: SampledCity[] = [];
  const nHomes = o.homeCities ?? 300;
  for (const c of candidates) {
    if (homes.length >= nHomes) break;
    if (officeCountries.has(c.country) || rand() < 0.35) homes.push(c);
  }
  for (const c of homes) used.add(c.geonameId);
  // Attackers: cities in countries the tenant never works from.
  const tenantCountries = new Set([...offices, ...clouds, ...homes].map((c) => c.country));
  const attackCities = sample.cities.filter((c) => !tenantCountries.has(c.country) && c.ips.length >= 2);

  const cityOfIp = new Map<string, SampledCity>();
  const taken = new Set<string>();
  const takeIp = (city: SampledCity, salt: number): string => {
    for (let k = 0; k < city.ips.length; k++) {
      const ip = city.ips[(salt + k) % city.ips.length]!;
      if (!taken.has(ip)) {
        taken.add(ip);
        cityOfIp.set(ip, city);
        return ip;
      }
    }
    const ip = city.ips[salt % city.ips.length]!;
    cityOfIp.set(ip, city);
    return ip;
  };
  // Shared egress: 16 addresses per office, 8 VPN addresses in the first office's country.
  const officeIps = offices.map((c, i) => Array.from({ length: 16 }, (_, k) => takeIp(c, i * 131 + k)));
  const vpnIps = Array.from({ length: 8 }, (_, k) => takeIp(offices[0]!, 977 + k));

  const callers: BenchCaller[] = [];
  const weights: number[] = [];
  const subscriptions = Array.from({ length: 20 }, (_, i) => guid(i, 7000));
  const drawOps = (n: number): number[] => {
    const set = new Set<number>();
    for (let k = 0; set.size < n && k < 20 * n; k++) set.add(opAlias.draw(rand(), rand()));
    return [...set];
  };
  const finish = (
    caller: string,
    kind: CallerKind,
    ops: number[],
    ips: string[],
    ipWeights: number[],
    claims: Record<string, string>,
    principalType: string,
  ): BenchCaller => ({
    caller,
    kind,
    ops,
    opCdf: cumulative(zipf(ops.length, 1.3)),
    ips,
    ipIndex: new Int32Array(ips.length),
    ipCdf: cumulative(ipWeights),
    claims,
    authorization: { evidence: { principalType } },
    subscription: subscriptions[Math.floor(rand() * subscriptions.length)]!,
    resourceGroup: `rg-${Math.floor(rand() * 200)}`,
  });

  const nUsers = o.users ?? 10_000;
  const userWeights = zipf(nUsers, 1.0);
  const userShare = o.userShare ?? 0.06;
  const userTotal = userWeights.reduce((a, b) => a + b, 0);
  for (let u = 0; u < nUsers; u++) {
    const upn = `user${String(u).padStart(5, '0')}@contoso.com`;
    const office = Math.floor(rand() * offices.length);
    const home = homes[Math.floor(rand() * homes.length)]!;
    const ips: string[] = [];
    const ipWeights: number[] = [];
    const pool = officeIps[office]!;
    ips.push(pool[Math.floor(rand() * pool.length)]!);
    ipWeights.push(rand() < 0.6 ? 8 : 1);
    ips.push(takeIp(home, u * 17));
    ipWeights.push(rand() < 0.6 ? 1 : 8);
    if (rand() < 0.15) {
      ips.push(vpnIps[u % vpnIps.length]!);
      ipWeights.push(1);
    }
    // A phone on a mobile network, now and then from another city.
    ips.push(takeIp(homes[Math.floor(rand() * homes.length)]!, u * 31 + 5));
    ipWeights.push(0.15);
    callers.push(
      finish(
        upn,
        'user',
        drawOps(2 + Math.floor(rand() * 7)),
        ips,
        ipWeights,
        { [UPN_CLAIM]: upn, idtyp: 'user' },
        'User',
      ),
    );
    weights.push((userShare * userWeights[u]!) / userTotal);
  }
  const nSp = o.servicePrincipals ?? 800;
  const nMi = o.managedIdentities ?? 200;
  const autoWeights = zipf(nSp + nMi, 1.0);
  const autoTotal = autoWeights.reduce((a, b) => a + b, 0);
  for (let a = 0; a < nSp + nMi; a++) {
    const mi = a % 5 === 4 && a / 5 < nMi;
    const id = guid(a, mi ? 9000 : 8000);
    const region = clouds[Math.floor(rand() * clouds.length)]!;
    const nIps = 1 + Math.floor(Math.pow(rand(), 4) * (o.automationIps ?? 16));
    const ips = Array.from({ length: nIps }, (_, k) => takeIp(region, a * 13 + k));
    const claims: Record<string, string> = { appid: guid(a, 8500), idtyp: 'app' };
    if (mi) claims.xms_mirid = `/subscriptions/${subscriptions[0]}/providers/identity/${a}`;
    callers.push(
      finish(
        id,
        mi ? 'managedIdentity' : 'servicePrincipal',
        drawOps(1 + Math.floor(rand() * 5)),
        ips,
        ips.map(() => 1),
        claims,
        'ServicePrincipal',
      ),
    );
    weights.push(((1 - userShare) * autoWeights[a]!) / autoTotal);
  }

  const attacks: BenchAttack[] = [];
  for (let k = 0; k < 12 && attackCities.length > 0; k++) {
    const victim = Math.floor(rand() * Math.min(nUsers, 500));
    const city = attackCities[Math.floor(rand() * Math.min(attackCities.length, 200))]!;
    const ip = takeIp(city, k * 7);
    for (let j = 0; j < 2; j++) {
      attacks.push({
        caller: victim,
        operation: 100 + Math.floor(rand() * (nOps - 100)),
        ip,
        city: `${city.name}, ${city.country}`,
      });
    }
  }
  const cities = new Set([...cityOfIp.values()].map((c) => c.geonameId)).size;
  const ipList = [...cityOfIp.keys()];
  const ipIndex = new Map(ipList.map((ip, i) => [ip, i]));
  for (const c of callers) c.ips.forEach((ip, k) => (c.ipIndex[k] = ipIndex.get(ip)!));
  return {
    operations,
    callers,
    callerAlias: new Alias(weights),
    cities,
    ips: cityOfIp.size,
    attacks,
    cityOfIp,
    ipList,
  };
}

/** One group of the query's aggregation, keyed by numbers while it is built. */
interface AggGroup {
  hour: number;
  op: number;
  ip: number;
  caller: number;
  first: number;
  last: number;
  count: number;
  /** Resource numbers and correlation numbers (i >>> 1), first seen first. */
  resources: number[];
  correlations: number[];
  miEvents: number;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * The window [windowStartMs + k days, … + 2 h) of a tenant of `rows` rows per window, for every day k.
 * `row(i, base)` is row i of the window starting at `base` (the last rows are the attacks); `rowsIn` yields the
 * rows of any time range lazily; `aggregate` computes what activity.kql returns for a range directly from the
 * same draws, without building a row object per event.
 */
export class BenchWindow {
  constructor(
    readonly pop: BenchPopulation,
    readonly rows: number,
    /** Start of the first day's window; day k's window starts k days later. */
    readonly windowStartMs: number,
  ) {}

  /** Window starts (one per day) whose window overlaps [startMs, endMs). */
  private bases(startMs: number, endMs: number): number[] {
    const out: number[] = [];
    const firstDay = Math.floor((startMs - this.windowStartMs - WINDOW_MS) / DAY_MS) + 1;
    const lastDay = Math.floor((endMs - 1 - this.windowStartMs) / DAY_MS);
    for (let day = firstDay; day <= lastDay; day++) {
      const base = this.windowStartMs + day * DAY_MS;
      if (base < endMs && base + WINDOW_MS > startMs) out.push(base);
    }
    return out;
  }

  /** The rows with TimeGenerated in [startMs, endMs), day by day (lazily). */
  *rowsIn(startMs: number, endMs: number): Generator<AzureActivityRow> {
    for (const base of this.bases(startMs, endMs)) {
      for (let i = 0; i < this.rows; i++) {
        const d = this.draw(i, base);
        if (d.t >= startMs && d.t < endMs) yield this.make(d, i);
      }
    }
  }

  /** Row i of the window starting at `base`. TimeGenerated is epoch ms (the fake reads numbers and text). */
  row(i: number, base: number): AzureActivityRow {
    return this.make(this.draw(i, base), i);
  }

  /** The draws behind row i: caller, operation, IP, time and resource. */
  draw(i: number, base: number): { caller: number; op: number; ip: string; t: number; resource: number } {
    const pop = this.pop;
    const attackIndex = i - (this.rows - pop.attacks.length);
    if (attackIndex >= 0 && this.rows >= 1000) {
      const a = pop.attacks[attackIndex]!;
      return {
        caller: a.caller,
        op: a.operation,
        ip: a.ip,
        t: base + HOUR_MS + attackIndex * 60_000,
        resource: 0,
      };
    }
    const h1 = hash32(i, 0x5bd1e995);
    const h2 = hash32(i, 0x27d4eb2f);
    const h3 = hash32(i, 0x165667b1);
    const callerIndex = pop.callerAlias.draw(h1 / 4294967296, h2 / 4294967296);
    const c = pop.callers[callerIndex]!;
    return {
      caller: callerIndex,
      op: c.ops[pick(c.opCdf, hash32(h1, 3) / 4294967296)]!,
      ip: c.ips[pick(c.ipCdf, hash32(h2, 5) / 4294967296)]!,
      t: base + Math.floor((h3 / 4294967296) * WINDOW_MS),
      resource: h3 & 3,
    };
  }

  private resourceId(c: BenchCaller, op: number, resource: number): string {
    const name = this.pop.operations[op]!;
    const provider = name.slice(0, name.indexOf('/', name.indexOf('/') + 1));
    return `/subscriptions/${c.subscription}/resourcegroups/${c.resourceGroup}/providers/${provider}/r${resource}`;
  }

  private make(d: ReturnType<BenchWindow['draw']>, i: number): AzureActivityRow {
    const c = this.pop.callers[d.caller]!;
    return {
      TimeGenerated: d.t,
      CallerIpAddress: d.ip,
      OperationNameValue: this.pop.operations[d.op]!,
      CategoryValue: 'Administrative',
      ActivityStatusValue: (i & 1) === 0 ? 'Start' : 'Success',
      Caller: c.caller,
      Claims_d: c.claims,
      Authorization_d: c.authorization,
      CorrelationId: guid(i >>> 1, 0x77),
      SubscriptionId: c.subscription,
      ResourceGroup: c.resourceGroup,
      _ResourceId: this.resourceId(c, d.op, d.resource),
    };
  }

  /**
   * What activity.kql returns for [startMs, endMs) with the given limits, exactly as the fake's KQL evaluation
   * (test/support/fakeLogAnalytics.ts evaluateActivityQuery) computes it over `rowsIn` — without a row object
   * per event. No category or status filter (every generated row passes the ones the benchmark could set).
   */
  aggregate(startMs: number, endMs: number, maxRows: number, maxBytes: number): unknown[][] {
    return this.answer(this.ordered(startMs, endMs), maxRows, maxBytes);
  }

  /**
   * Every group of [startMs, endMs) (of one shard's operations), as response rows without their sizes, in the
   * query's order (Hour, Slot, GroupKey); `answer` applies a cursor and the limits to them.
   */
  ordered(startMs: number, endMs: number, shard = { count: 1, index: 0 }): unknown[][] {
    const pop = this.pop;
    const nOps = pop.operations.length;
    const nCallers = pop.callers.length;
    const attackIp = new Map(pop.attacks.map((a) => [a.ip, pop.ipList.indexOf(a.ip)]));
    // Two levels keep every key a small integer (V8 hashes those fastest): (hour, operation, caller), then IP.
    const groups = new Map<number, Map<number, AggGroup>>();
    const firstAttack = this.rows >= 1000 ? this.rows - pop.attacks.length : this.rows;
    const firstHour = Math.floor(startMs / HOUR_MS);
    const opKeys = this.pop.operations.map((o) => o.toLowerCase());
    const mine = opKeys.map((k) => shard.count <= 1 || shardOf(k, shard.count) === shard.index);
    for (const base of this.bases(startMs, endMs)) {
      for (let i = 0; i < this.rows; i++) {
        let callerIndex: number;
        let op: number;
        let ip: number;
        let t: number;
        let resource: number;
        if (i >= firstAttack) {
          const d = this.draw(i, base);
          callerIndex = d.caller;
          op = d.op;
          ip = attackIp.get(d.ip)!;
          t = d.t;
          resource = d.resource;
        } else {
          // The draws of draw(), inlined: this loop runs millions of times.
          const h1 = hash32(i, 0x5bd1e995);
          const h2 = hash32(i, 0x27d4eb2f);
          const h3 = hash32(i, 0x165667b1);
          callerIndex = pop.callerAlias.draw(h1 / 4294967296, h2 / 4294967296);
          const c = pop.callers[callerIndex]!;
          op = c.ops[pick(c.opCdf, hash32(h1, 3) / 4294967296)]!;
          ip = c.ipIndex[pick(c.ipCdf, hash32(h2, 5) / 4294967296)]!;
          t = base + Math.floor((h3 / 4294967296) * WINDOW_MS);
          resource = h3 & 3;
        }
        if (!(t >= startMs && t < endMs) || !mine[op]) continue;
        const hour = Math.floor(t / HOUR_MS);
        // Hours counted from the range's start: unique across the days' windows (small integers as keys).
        const key = ((hour - firstHour) * nOps + op) * nCallers + callerIndex;
        let byIp = groups.get(key);
        if (!byIp) {
          byIp = new Map();
          groups.set(key, byIp);
        }
        let g = byIp.get(ip);
        if (!g) {
          g = {
            hour: hour * HOUR_MS,
            op,
            ip,
            caller: callerIndex,
            first: t,
            last: t,
            count: 0,
            resources: [],
            correlations: [],
            miEvents: 0,
          };
          byIp.set(ip, g);
        }
        g.count += 1;
        if (t < g.first) g.first = t;
        if (t > g.last) g.last = t;
        if (g.resources.length < 4 && !g.resources.includes(resource)) g.resources.push(resource);
        const corr = i >>> 1;
        if (g.correlations.length < 20 && !g.correlations.includes(corr)) g.correlations.push(corr);
        if (pop.callers[callerIndex]!.claims.xms_mirid !== undefined) g.miEvents += 1;
      }
    }
    const keyed = [...groups.values()]
      .flatMap((m) => [...m.values()])
      .map((g) => ({
        g,
        key: groupKey(opKeys[g.op]!, this.pop.ipList[g.ip]!, this.pop.callers[g.caller]!.caller),
      }))
      .sort((a, b) => a.g.hour - b.g.hour || a.key - b.key);
    return keyed.map(({ g, key }) => {
      const c = this.pop.callers[g.caller]!;
      return [
        iso(g.hour),
        iso(g.hour), // Slot: the detector asks for whole-hour slots
        opKeys[g.op],
        this.pop.operations[g.op],
        this.pop.ipList[g.ip],
        c.caller,
        iso(g.first),
        iso(g.last),
        g.count,
        JSON.stringify(g.resources.map((r) => this.resourceId(c, g.op, r))),
        JSON.stringify(g.correlations.map((n) => guid(n, 0x77))),
        c.subscription,
        c.resourceGroup,
        c.claims.idtyp ?? '',
        c.claims[UPN_CLAIM] ?? '',
        c.claims.appid ?? '',
        g.miEvents,
        c.authorization.evidence.principalType,
        key,
      ];
    });
  }

  /**
   * What the query returns from `ordered` rows: those at or after the cursor (Slot is column 1, GroupKey the
   * last), with RowBytes and RunningBytes, while the running size is under maxBytes, at most maxRows + 1.
   */
  answer(
    ordered: unknown[][],
    maxRows: number,
    maxBytes: number,
    resume?: { slotMs: number; key: number },
  ): unknown[][] {
    const out: unknown[][] = [];
    let running = 0;
    for (const row of ordered) {
      if (resume) {
        const slot = Date.parse(row[1] as string);
        const key = row[row.length - 1] as number;
        if (slot < resume.slotMs || (slot === resume.slotMs && key < resume.key)) continue;
      }
      const size = Buffer.byteLength(JSON.stringify(row));
      running += size;
      if (running - size >= maxBytes || out.length >= maxRows + 1) break;
      out.push([...row, size, running]);
    }
    return out;
  }
}
