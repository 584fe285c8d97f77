/**
 * Allowlists: rare findings that must never alert, from three places —
 *
 * - settings: UC_ALLOW_RANGES (Label=cidr …), UC_ALLOW_CITIES (geoname ids), UC_ALLOW_CALLERS,
 *   UC_ALLOW_OPERATIONS;
 * - Azure service tags: UC_ALLOW_SERVICE_TAGS names tags of the UC_SERVICE_TAGS_FILE (ServiceTags_Public JSON);
 * - the allow table: table 'state', partition 'allow', changed with `unusual-city baseline allow|disallow` and
 *   recorded with who, why and when (every change is also appended to the audit partition).
 *
 * The result is `Pipeline.suppress`: it returns which allowlist matched (logged and counted as
 * TickStats.allowlisted) or undefined. An allowlisted observation is still counted in the baselines — an
 * allowlist decides what alerts, never what is learned. Settings and service tags are read once per process
 * ({@link AllowlistProvider}); the allow table once per run ({@link AllowlistProvider.forRun}).
 */
import { readFile } from 'node:fs/promises';

import type { RareFinding } from '../alerts/alert.js';
import type { BaselineStore, Entity } from '../baseline/store.js';
import { type Settings, SettingsError } from '../config/settings.js';
import { parseEgressRanges } from '../geo/egress.js';
import { type Cidr, CidrSet, internalRangeContaining, parseCidr } from '../geo/ip.js';
import type { Network } from '../geo/types.js';
import { liftQuarantine } from '../pipeline/callers.js';
import { appendAudit } from './audit.js';
import { parseServiceTags } from './serviceTags.js';

export const ALLOW_KINDS = [
  'range',
  'city',
  'caller',
  'operation',
  'operation+city',
  'caller+city',
  'caller+network',
  'city+network',
] as const;
export type AllowKind = (typeof ALLOW_KINDS)[number];
export const ALLOW_PARTITION = 'allow';

/** One allow rule. */
export interface AllowRule {
  kind: AllowKind;
  /**
   * Canonical value: a CIDR block (`20.50.0.0/16`), a city key (`g:<geonameId>`, `c:<country>`, `e:<egress
   * label>`), a caller or an operation (lower-case), `<operation> <city key>`, `<caller> <city key>` or
   * `<caller> AS<number>` or `<city key> AS<number>`.
   */
  value: string;
  /** Where the rule comes from, e.g. `UC_ALLOW_CALLERS`, `UC_ALLOW_SERVICE_TAGS` or `allow table`. */
  source: string;
  /** Shown instead of the value: a UC_ALLOW_RANGES label, a service tag name. */
  label?: string;
  by?: string;
  reason?: string;
  addedMs?: number;
  /** The rule allows findings of hours before this instant only; absent: no expiry. */
  expiresMs?: number;
  /**
   * city+network only: the network's organisation (from the ASN data, e.g. `Bharti Airtel Limited`); the rule
   * then also allows the organisation's other AS numbers in that city (a carrier announces several).
   */
  org?: string;
}

/** A value that is not valid for its kind; the message says what is expected. */
export class AllowValueError extends Error {
  override name = 'AllowValueError';
}

const OPERATION = /^[A-Za-z0-9._/-]{1,256}$/;
const CITY_KEY = /^(g:\d{1,10}|c:[A-Za-z]{2}|e:[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$/;

/** A city as operators type it: a geoname id (`2643743`) or a city key (`g:2643743`, `c:GB`, `e:CorpVPN`). */
export function parseCityKey(text: string): string | undefined {
  const t = text.trim();
  if (/^\d{1,10}$/.test(t)) return `g:${t}`;
  if (!CITY_KEY.test(t)) return undefined;
  const [prefix, rest] = [t.slice(0, 2).toLowerCase(), t.slice(2)];
  return prefix === 'c:' ? `c:${rest.toUpperCase()}` : `${prefix}${rest}`;
}

/** Validates and canonicalises the value(s) of an allow rule as given on the command line. */
export function parseAllowValue(kind: string, args: readonly string[]): { kind: AllowKind; value: string } {
  if (!(ALLOW_KINDS as readonly string[]).includes(kind)) {
    throw new AllowValueError(`unknown kind ${JSON.stringify(kind)}: one of ${ALLOW_KINDS.join(', ')}`);
  }
  const k = kind as AllowKind;
  const pairs: Partial<Record<AllowKind, string>> = {
    'operation+city': '<operation> <city>',
    'caller+city': '<caller> <city>',
    'caller+network': '<caller> <AS number, e.g. AS8075>',
    'city+network': '<city> <AS number, e.g. AS45609>',
  };
  const pair = pairs[k];
  if (args.length !== (pair !== undefined ? 2 : 1)) {
    throw new AllowValueError(
      pair !== undefined ? `${k} takes two values: ${pair}` : `${k} takes one value, got ${args.length}`,
    );
  }
  const a = args[0]!.trim();
  const operation = (text: string): string => {
    if (!OPERATION.test(text))
      throw new AllowValueError(
        `${JSON.stringify(text)} is not an operation name such as Microsoft.Storage/storageAccounts/listKeys/action`,
      );
    return text.toLowerCase();
  };
  const caller = (text: string): string => {
    if (!/^\S{1,256}$/u.test(text))
      throw new AllowValueError('a caller is a UPN or object id without spaces');
    return text.toLowerCase();
  };
  const city = (text: string): string => {
    const key = parseCityKey(text);
    if (key === undefined)
      throw new AllowValueError(
        `${JSON.stringify(text)} is not a city: a MaxMind geoname id such as 2643743, or a city key g:<id>, c:<country>, e:<egress label>`,
      );
    return key;
  };
  switch (k) {
    case 'range': {
      let cidr: Cidr;
      try {
        cidr = parseCidr(a);
      } catch (error) {
        throw new AllowValueError(`${JSON.stringify(a)} is not a CIDR block: ${(error as Error).message}`);
      }
      const internal = internalRangeContaining(cidr);
      if (internal !== undefined)
        throw new AllowValueError(
          `${cidr.text} is inside a ${internal} range: such addresses are never located, so it would have no effect`,
        );
      return { kind: k, value: cidr.text };
    }
    case 'city':
      return { kind: k, value: city(a) };
    case 'caller':
      return { kind: k, value: caller(a) };
    case 'caller+city':
      return { kind: k, value: `${caller(a)} ${city(args[1]!)}` };
    case 'caller+network':
      return { kind: k, value: `${caller(a)} ${network(args[1]!)}` };
    case 'city+network':
      return { kind: k, value: `${city(a)} ${network(args[1]!)}` };
    case 'operation':
      return { kind: k, value: operation(a) };
    case 'operation+city':
      return { kind: k, value: `${operation(a)} ${city(args[1]!)}` };
  }
}

/** `AS8075`, `as8075` or `8075` → `AS8075`. */
function network(text: string): string {
  const m = /^(?:AS)?(\d{1,10})$/i.exec(text.trim());
  const asn = m ? Number(m[1]) : NaN;
  if (!Number.isInteger(asn) || asn <= 0 || asn > 4_294_967_295)
    throw new AllowValueError(`${JSON.stringify(text)} is not an autonomous system number such as AS8075`);
  return `AS${asn}`;
}

const rowKey = (kind: AllowKind, value: string): string => `${kind}:${value}`;

function ruleFromEntity(e: Entity): AllowRule | undefined {
  const kind = e.kind;
  const value = e.value;
  if (typeof kind !== 'string' || typeof value !== 'string') return undefined;
  if (!(ALLOW_KINDS as readonly string[]).includes(kind)) return undefined;
  return {
    kind: kind as AllowKind,
    value,
    source: 'allow table',
    by: typeof e.by === 'string' ? e.by : '',
    reason: typeof e.reason === 'string' ? e.reason : '',
    addedMs: typeof e.addedMs === 'number' ? e.addedMs : 0,
    ...(typeof e.expiresMs === 'number' && e.expiresMs > 0 ? { expiresMs: e.expiresMs } : {}),
    ...(kind === 'city+network' && typeof e.org === 'string' && e.org !== ''
      ? { org: boundedOrg(e.org) }
      : {}),
  };
}

/** An organisation name as a rule keeps it: trimmed, at most 128 characters. */
const boundedOrg = (org: string): string => org.trim().slice(0, 128);

/** How organisations are compared: case and surrounding space do not matter. */
const orgKey = (cityKey: string, org: string): string => `${cityKey}\u0000${boundedOrg(org).toLowerCase()}`;

/** The allow table's rules, in row order. */
export async function readAllowTable(store: BaselineStore): Promise<AllowRule[]> {
  const rows = await store.readPartition('state', ALLOW_PARTITION);
  const out: AllowRule[] = [];
  for (const [, e] of [...rows.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const r = ruleFromEntity(e);
    if (r) out.push(r);
  }
  return out;
}

export interface Change {
  by: string;
  reason: string;
  atMs: number;
}

/** Adds (or re-records, with the new who and why) a rule; audited. Returns false when it already existed. */
export async function addAllowRule(
  store: BaselineStore,
  rule: { kind: AllowKind; value: string; expiresMs?: number; org?: string },
  change: Change,
): Promise<boolean> {
  const org = rule.kind === 'city+network' && rule.org ? boundedOrg(rule.org) : '';
  const key = rowKey(rule.kind, rule.value);
  let existed = false;
  await store.updateRows('state', ALLOW_PARTITION, [key], (cur) => {
    existed = cur.has(key);
    return new Map([
      [
        key,
        {
          kind: rule.kind,
          value: rule.value,
          by: change.by,
          reason: change.reason,
          addedMs: change.atMs,
          ...(rule.expiresMs !== undefined ? { expiresMs: rule.expiresMs } : {}),
          ...(org !== '' ? { org } : {}),
        },
      ],
    ]);
  });
  // Confirmed benign: the quarantine of the places the rule covers ends now (their hours count from here on).
  const scope = quarantineScope(rule);
  const quarantineLifted = scope !== undefined ? await liftQuarantine(store, scope) : 0;
  await appendAudit(store, {
    action: 'allow',
    by: change.by,
    reason: change.reason,
    atMs: change.atMs,
    subject: `${rule.kind} ${rule.value}`,
    detail: JSON.stringify({
      replaced: existed,
      quarantineLifted,
      ...(rule.expiresMs !== undefined ? { expires: new Date(rule.expiresMs).toISOString() } : {}),
      ...(org !== '' ? { org } : {}),
    }),
  });
  return !existed;
}

/** The (caller, city) quarantines a rule confirms as benign; undefined: none. */
function quarantineScope(rule: {
  kind: AllowKind;
  value: string;
}): { caller?: string; cityKey?: string } | undefined {
  switch (rule.kind) {
    case 'city':
      return { cityKey: rule.value };
    case 'caller':
      return { caller: rule.value };
    case 'caller+city': {
      const space = rule.value.lastIndexOf(' ');
      return { caller: rule.value.slice(0, space), cityKey: rule.value.slice(space + 1) };
    }
    default:
      return undefined;
  }
}

/** Removes a rule from the allow table; audited when it existed. Returns the removed rule. */
export async function removeAllowRule(
  store: BaselineStore,
  rule: { kind: AllowKind; value: string },
  change: Change,
): Promise<AllowRule | undefined> {
  const key = rowKey(rule.kind, rule.value);
  let removed: AllowRule | undefined;
  await store.updateRows('state', ALLOW_PARTITION, [key], (cur) => {
    const e = cur.get(key);
    removed = e ? ruleFromEntity(e) : undefined;
    return e ? new Map([[key, null]]) : new Map<string, Entity | null>();
  });
  if (removed) {
    await appendAudit(store, {
      action: 'disallow',
      by: change.by,
      reason: change.reason,
      atMs: change.atMs,
      subject: `${rule.kind} ${rule.value}`,
      detail: JSON.stringify({ addedBy: removed.by, addedReason: removed.reason, addedMs: removed.addedMs }),
    });
  }
  return removed;
}

/** The rules the settings define, service tags included (the tags file is read here, once). */
export async function allowRulesFromSettings(
  s: Settings,
  readText: (path: string) => Promise<string> = (p) => readFile(p, 'utf8'),
): Promise<AllowRule[]> {
  const rules: AllowRule[] = [];
  for (const [label, cidrs] of parseEgressRanges(s.UC_ALLOW_RANGES).groups) {
    for (const value of cidrs) rules.push({ kind: 'range', value, label, source: 'UC_ALLOW_RANGES' });
  }
  for (const id of s.UC_ALLOW_CITIES)
    rules.push({ kind: 'city', value: `g:${id}`, source: 'UC_ALLOW_CITIES' });
  for (const c of s.UC_ALLOW_CALLERS)
    rules.push({ kind: 'caller', value: c.toLowerCase(), source: 'UC_ALLOW_CALLERS' });
  for (const o of s.UC_ALLOW_OPERATIONS)
    rules.push({ kind: 'operation', value: o.toLowerCase(), source: 'UC_ALLOW_OPERATIONS' });

  if (s.UC_ALLOW_SERVICE_TAGS.length === 0) return rules;
  const path = s.UC_SERVICE_TAGS_FILE;
  if (path === '') {
    throw new SettingsError([
      {
        name: 'UC_SERVICE_TAGS_FILE',
        value: '',
        allowed: `the path of an Azure Service Tags JSON file, needed by UC_ALLOW_SERVICE_TAGS=${s.UC_ALLOW_SERVICE_TAGS.join(',')}`,
      },
    ]);
  }
  let text: string;
  try {
    text = await readText(path);
  } catch (error) {
    throw new SettingsError([
      {
        name: 'UC_SERVICE_TAGS_FILE',
        value: path,
        allowed: `a readable Azure Service Tags JSON file (${(error as Error).message})`,
      },
    ]);
  }
  let file;
  try {
    file = parseServiceTags(text, path);
  } catch (error) {
    throw new SettingsError([
      { name: 'UC_SERVICE_TAGS_FILE', value: path, allowed: (error as Error).message },
    ]);
  }
  const missing: string[] = [];
  for (const name of s.UC_ALLOW_SERVICE_TAGS) {
    const tag = file.tags.get(name.toLowerCase());
    if (!tag) {
      missing.push(name);
      continue;
    }
    for (const cidr of tag.prefixes)
      rules.push({
        kind: 'range',
        value: cidr.text,
        label: `service tag ${tag.name}`,
        source: 'UC_ALLOW_SERVICE_TAGS',
      });
  }
  if (missing.length > 0) {
    const known = [...file.tags.values()].map((t) => t.name);
    const hints = missing
      .flatMap((m) => known.filter((k) => k.toLowerCase().startsWith(m.split('.')[0]!.toLowerCase())))
      .slice(0, 5);
    throw new SettingsError([
      {
        name: 'UC_ALLOW_SERVICE_TAGS',
        value: s.UC_ALLOW_SERVICE_TAGS.join(','),
        allowed:
          `tag names present in ${path} (${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not` +
          `${hints.length > 0 ? `; e.g. ${hints.join(', ')}` : ''})`,
      },
    ]);
  }
  return rules;
}

/** How a rule reads in a log line and in `baseline allows`. */
export function describeRule(r: AllowRule): string {
  const what =
    r.label !== undefined ? r.label : `${r.kind} ${r.value}${r.org !== undefined ? ` (${r.org})` : ''}`;
  if (r.source !== 'allow table') return `${what} (${r.source})`;
  const when = r.addedMs ? new Date(r.addedMs).toISOString().slice(0, 10) : '?';
  const until =
    r.expiresMs !== undefined ? `, until ${new Date(r.expiresMs).toISOString().slice(0, 16)}Z` : '';
  return `${what} (allow table: ${r.by ?? '?'}, ${when}${until}: ${JSON.stringify(r.reason ?? '')})`;
}

/** One compiled rule: why it allows (for logs and counts), and until when. */
interface Allowed {
  reason: string;
  /** Findings of hours at or after this instant are not allowed (Infinity: no expiry). */
  untilMs: number;
}

/** Every kind but ranges is matched by its value (ranges go to one CIDR index). */
type KeyedKind = Exclude<AllowKind, 'range'>;
const KEYED_KINDS = ALLOW_KINDS.filter((k): k is KeyedKind => k !== 'range');

/** Rules compiled for matching: one map per kind, keyed by the rule's value, and one CIDR index. */
export class RuleSet {
  readonly ranges: CidrSet;
  readonly byKind = new Map<KeyedKind, Map<string, Allowed>>(KEYED_KINDS.map((k) => [k, new Map()]));
  /** city+network rules that name their network's organisation, keyed by city and organisation (orgKey). */
  readonly byCityOrg = new Map<string, Allowed>();
  readonly size: number;

  constructor(rules: readonly AllowRule[]) {
    const blocks = new Map<string, [Cidr, string]>();
    for (const r of rules) {
      const reason = describeRule(r);
      if (r.kind === 'range') {
        // The first rule for a block wins (settings before the table; one tag before another).
        const cidr = parseCidr(r.value);
        if (!blocks.has(cidr.text)) blocks.set(cidr.text, [cidr, reason]);
        continue;
      }
      const map = this.byKind.get(r.kind)!;
      if (!map.has(r.value)) map.set(r.value, { reason, untilMs: r.expiresMs ?? Infinity });
      if (r.kind === 'city+network' && r.org !== undefined) {
        const key = orgKey(r.value.slice(0, r.value.lastIndexOf(' ')), r.org);
        if (!this.byCityOrg.has(key)) this.byCityOrg.set(key, { reason, untilMs: r.expiresMs ?? Infinity });
      }
    }
    this.ranges = new CidrSet(blocks.values());
    let size = this.ranges.size;
    for (const m of this.byKind.values()) size += m.size;
    this.size = size;
  }

  /** Why a rule of this kind allows `value` for a finding of the hour `hourMs`, or undefined. */
  allows(kind: KeyedKind, value: string, hourMs: number): string | undefined {
    const a = this.byKind.get(kind)!.get(value);
    return a !== undefined && hourMs < a.untilMs ? a.reason : undefined;
  }

  /** Why a city+network rule allows the network (by its AS number, or by its organisation) in the city. */
  allowsNetworkIn(cityKey: string, n: Network, hourMs: number): string | undefined {
    const byAsn = this.allows('city+network', `${cityKey} AS${n.asn}`, hourMs);
    if (byAsn !== undefined || n.org.trim() === '') return byAsn;
    const a = this.byCityOrg.get(orgKey(cityKey, n.org));
    return a !== undefined && hourMs < a.untilMs ? a.reason : undefined;
  }
}

/** The `suppress` hook of one run, with what it suppressed (by reason). */
export class Allowlist {
  /** Suppressed findings by reason, since this allowlist was made (one run). */
  readonly counts = new Map<string, number>();
  private readonly parts: RuleSet[];

  constructor(...parts: RuleSet[]) {
    this.parts = parts.filter((p) => p.size > 0);
  }

  /** Number of rules (CIDR blocks count one each). */
  get size(): number {
    return this.parts.reduce((n, p) => n + p.size, 0);
  }

  /** Why the finding must not alert, or undefined. Bound: pass it around as `Pipeline.suppress`. */
  readonly suppress = (f: RareFinding): string | undefined => {
    const reason = this.match(f);
    if (reason !== undefined) this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
    return reason;
  };

  private match(f: RareFinding): string | undefined {
    if (this.parts.length === 0) return undefined;
    const op = f.observation.operationKey.toLowerCase();
    const city = f.observation.city.key;
    const caller = f.activity.caller.toLowerCase();
    const h = f.observation.hourMs;
    for (const p of this.parts) {
      const r =
        p.allows('operation+city', `${op} ${city}`, h) ??
        p.allows('operation', op, h) ??
        (caller !== ''
          ? (p.allows('caller+city', `${caller} ${city}`, h) ??
            p.allows('caller', caller, h) ??
            this.networkAllows(p, caller, f.activity.networks, h) ??
            cityNetworkAllows(p, f))
          : undefined) ??
        p.allows('city', city, h);
      if (r !== undefined) return r;
    }
    // A range allows a finding only when every address the caller used for it lies in an allowed range.
    const ips = f.activity.ips;
    if (ips.length === 0) return undefined;
    let first: string | undefined;
    for (const ip of ips) {
      let r: string | undefined;
      for (const p of this.parts) if ((r = p.ranges.match(ip)) !== undefined) break;
      if (r === undefined) return undefined;
      first ??= r;
    }
    return first;
  }

  /** A (caller, network) rule allows a finding only when every network the caller used for it is allowed. */
  private networkAllows(
    p: RuleSet,
    caller: string,
    networks: readonly Network[] | undefined,
    hourMs: number,
  ): string | undefined {
    if (networks === undefined || networks.length === 0) return undefined;
    let first: string | undefined;
    for (const n of networks) {
      const r = p.allows('caller+network', `${caller} AS${n.asn}`, hourMs);
      if (r === undefined) return undefined;
      first ??= r;
    }
    return first;
  }

  /** `3× caller ci@contoso.com (UC_ALLOW_CALLERS); 1× …`, most frequent first; '' when nothing matched. */
  describeCounts(): string {
    return [...this.counts.entries()]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .map(([reason, n]) => `${n}× ${reason}`)
      .join('; ');
  }

  /** Total findings suppressed. */
  get suppressed(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }
}

/**
 * A (city, network) rule — a carrier's hub city or a shared ISP an analyst confirmed benign for one caller —
 * allows a finding only for a caller who has worked from a city of that country (on UC_ESTABLISH_DAYS days,
 * outside quarantine), whom no analyst confirmed as compromised in that city (a TruePositive verdict), and when
 * every network the caller used for it is allowed in the city (by AS number, or by the organisation the rule
 * names: a carrier announces several AS numbers). A stranger's credential used there still alerts.
 */
function cityNetworkAllows(p: RuleSet, f: RareFinding): string | undefined {
  const networks = f.activity.networks;
  const { city } = f.observation;
  if (networks === undefined || networks.length === 0 || f.rarity.confirmedForCaller === true)
    return undefined;
  if (city.country === '' || !(f.rarity.callerCountries ?? []).includes(city.country)) return undefined;
  let first: string | undefined;
  for (const n of networks) {
    const r = p.allowsNetworkIn(city.key, n, f.observation.hourMs);
    if (r === undefined) return undefined;
    first ??= r;
  }
  return first;
}

/**
 * Builds each run's allowlist: the settings and service tags compiled once (thousands of prefixes), the allow
 * table read and compiled per run (a handful of rows), so `baseline allow` takes effect on the next run.
 */
export class AllowlistProvider {
  private constructor(
    private readonly fixed: RuleSet,
    /** The rules from settings and service tags (for `baseline allows`). */
    readonly settingsRules: readonly AllowRule[],
  ) {}

  static async fromSettings(
    s: Settings,
    readText?: (path: string) => Promise<string>,
  ): Promise<AllowlistProvider> {
    const rules = await allowRulesFromSettings(s, readText);
    return new AllowlistProvider(new RuleSet(rules), rules);
  }

  /** Number of rules from the settings (CIDR blocks count one each). */
  get settingsSize(): number {
    return this.fixed.size;
  }

  /** The allowlist of one run: the settings' rules plus the allow table as it is now (when a store is given). */
  async forRun(store?: BaselineStore): Promise<Allowlist> {
    const table = store ? await readAllowTable(store) : [];
    return new Allowlist(this.fixed, new RuleSet(table));
  }
}
