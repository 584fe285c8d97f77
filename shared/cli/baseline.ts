/**
 * `unusual-city baseline`: inspect and correct what the detector has learned — show an operation's baseline,
 * forget an (operation, city), and keep the allow table (shared/ops/allowlist.ts). Works on local state
 * (`--state DIR`) or on Table Storage (Azure settings from the environment or --set).
 */
import { parseArgs } from 'node:util';

import type { BaselineStore } from '../baseline/store.js';
import { formatDuration, parseDuration } from '../config/duration.js';
import { loadSettings, type Settings } from '../config/settings.js';
import { displaySafe } from '../display.js';
import {
  addAllowRule,
  type AllowRule,
  allowRulesFromSettings,
  AllowValueError,
  type Change,
  describeRule,
  parseAllowValue,
  parseCityKey,
  readAllowTable,
  removeAllowRule,
} from '../ops/allowlist.js';
import { checkWhoAndWhy, readAudit } from '../ops/audit.js';
import {
  checkpointOf,
  CityNameError,
  forgetCity,
  ForgetError,
  type ForgetResult,
  formatOperation,
  formatOperations,
  knownCities,
  listOperations,
  resolveCityName,
  showOperation,
} from '../ops/baseline.js';
import { openStateStore } from '../ops/clients.js';
import { type CliIo, parseSets, processIo, UsageError } from './args.js';

export const BASELINE_USAGE = `  unusual-city baseline show [<operation>] [--json]
      An operation's known cities: hours (decayed to the state's checkpoint, and raw), days, first and last
      seen, established, callers. Without <operation>: the operations learned, most active first.
  unusual-city baseline forget <operation|*> <city> --by WHO --reason TEXT [--caller C]... [--tenant]
      Removes the (operation, city) so the city is new again (e.g. after a confirmed compromise); <city> is a
      geoname id, a city key (g:<id>, c:<CC>, e:<label>) or a name; --caller also forgets it from that caller's
      history, --tenant from the tenant's city counts.
  unusual-city baseline allow <kind> <value>... --by WHO --reason TEXT [--for 30d | --expires DATE]
  unusual-city baseline disallow <kind> <value>... --by WHO --reason TEXT
      Adds / removes an allow rule; honoured from the next run. Kinds, narrowest first:
        caller+city <caller> <city>        one caller from one city (a commuter, a trip)
        caller+network <caller> AS<n>      one caller through one network (their VPN, their carrier)
        city+network <city id> AS<n>       one network in one city (a carrier's hub city), for callers who
                                           have worked from that country and are not in quarantine there;
                                           the city as a geoname id or key (g:<id>), not a name
        operation+city <operation> <city>  one operation from one city, whoever calls it
        caller <upn|id>, operation <name>, city <city>, range <cidr>
      <city> is a geoname id (2988507), a city key (g:<id>, c:<CC>, e:<label>) or a name the tenant's
      baseline knows (Paris; Paris, FR when several cities share it). --for (e.g. 12h, 30d) or --expires
      (2027-01-31, 00:00 UTC; or an ISO time with Z or an offset) ends the rule: later hours alert again.
  unusual-city baseline allows [--json]       allow rules from settings and from the allow table (expired
      rules marked)
  unusual-city baseline audit [--json] [--limit N]   who changed what, when and why
      All take [--state DIR] (local state) or Azure settings (UC_TABLE_ENDPOINT / UC_STORAGE_CONNECTION_STRING)
      and [--set NAME=VALUE]...
`;

/** What the command talks to (tests pass their own). */
export type BaselineIo = CliIo;

const options = {
  json: { type: 'boolean' },
  by: { type: 'string' },
  reason: { type: 'string' },
  for: { type: 'string' },
  expires: { type: 'string' },
  caller: { type: 'string', multiple: true },
  tenant: { type: 'boolean' },
  limit: { type: 'string' },
  set: { type: 'string', multiple: true },
  state: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const iso = (ms: number | undefined): string => (ms ? new Date(ms).toISOString() : '');

/** Where a kind's city is among its values. */
const CITY_AT: Readonly<Record<string, number>> = { city: 0, 'caller+city': 1, 'operation+city': 1 };

/** An allow rule as the command line gives it; a city given by name is looked up in the store later. */
interface RequestedRule {
  kind: AllowRule['kind'];
  /** The values, the city (if any) last and whole (`New York` may come as two words). */
  values: string[];
  /** The city's name, when it is not a geoname id or a key. */
  cityName?: string;
}

/** Checks the kind and values before any store is opened (a city name stands in as a valid key). */
function requestRule(sub: string, kindText: string, given: readonly string[]): RequestedRule {
  const at = CITY_AT[kindText];
  let values = [...given];
  let cityName: string | undefined;
  if (at !== undefined && given.length > at) {
    const city = given.slice(at).join(' ');
    values = [...given.slice(0, at), city];
    if (parseCityKey(city) === undefined) cityName = city;
  }
  try {
    const checked = parseAllowValue(
      kindText,
      cityName === undefined ? values : [...values.slice(0, -1), 'g:0'],
    );
    return { kind: checked.kind, values, ...(cityName !== undefined ? { cityName } : {}) };
  } catch (error) {
    if (error instanceof AllowValueError) throw new UsageError(`baseline ${sub}: ${error.message}`);
    throw error;
  }
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:\d{2}))?$/;

/** The instant `--for` or `--expires` ends a rule at; undefined: no expiry. */
export function expiryOf(opts: { for?: string; expires?: string }, nowMs: number): number | undefined {
  if (opts.for !== undefined && opts.expires !== undefined)
    throw new UsageError('baseline allow: give --for or --expires, not both');
  if (opts.for !== undefined) {
    const ms = parseDuration(opts.for);
    if (ms === undefined || ms <= 0)
      throw new UsageError(
        `baseline allow: --for expects a duration such as 12h, 30d or 1d12h, got ${JSON.stringify(opts.for)}`,
      );
    return nowMs + ms;
  }
  if (opts.expires === undefined) return undefined;
  const text = opts.expires.trim();
  const ms = ISO_TIME.test(text) ? Date.parse(text) : NaN;
  // Date.parse takes 2027-02-30 as March 2: the day must survive the round trip.
  const date = text.length === 10 && Number.isFinite(ms) ? new Date(ms).toISOString().slice(0, 10) : text;
  if (!Number.isFinite(ms) || date !== text)
    throw new UsageError(
      `baseline allow: --expires expects a date (2027-01-31, 00:00 UTC) or an ISO time with Z or an offset (2027-01-31T18:00Z), got ${JSON.stringify(opts.expires)}`,
    );
  if (ms <= nowMs)
    throw new UsageError(
      `baseline allow: --expires ${text} is not in the future (now ${new Date(nowMs).toISOString()})`,
    );
  return ms;
}

/** The command line as parsed against {@link options}. */
const parseBaselineArgs = (args: string[]) =>
  parseArgs({ args, options, allowPositionals: true, strict: true });

type BaselineValues = ReturnType<typeof parseBaselineArgs>['values'];

/** One run of a subcommand: what the command line asked for and what it talks to. */
interface BaselineRun {
  sub: string;
  rest: string[];
  values: BaselineValues;
  settings: Settings;
  io: BaselineIo;
  clock: () => number;
  /** Who changes what and why, checked (--by, --reason), stamped with the clock. */
  change: () => Change;
}

/** What the command line check hands on to an allow/disallow and an audit. */
interface CheckedCommandLine {
  requested: RequestedRule | undefined;
  startedMs: number;
  expiresMs: number | undefined;
  limit: number;
}

export async function runBaselineCommand(args: string[], io: BaselineIo): Promise<number> {
  const { values, positionals } = parseBaselineArgs(args);
  const [sub, ...rest] = positionals;
  if (values.help || sub === undefined || sub === 'help') {
    io.stdout(`Usage:\n${BASELINE_USAGE}`);
    return values.help || sub === 'help' ? 0 : 64;
  }
  const settings = loadSettings(io.env, parseSets(values.set));
  const clock = io.clock ?? Date.now;
  const change = (): Change => {
    const problem = checkWhoAndWhy(values.by, values.reason);
    if (problem !== undefined) throw new UsageError(`baseline ${sub} ${problem}`);
    return { by: values.by!.trim(), reason: values.reason!.trim(), atMs: clock() };
  };
  const run: BaselineRun = { sub, rest, values, settings, io, clock, change };
  const checked = checkCommandLine(run);
  const store: BaselineStore = await openStateStore(settings, io.env, values.state, sub !== 'allow');
  try {
    return await runSubcommand(store, run, checked);
  } finally {
    await store.close();
  }
}

/** Checks the command line before touching any store: the subcommand, its arity, the rule, expiry and limit. */
function checkCommandLine({ sub, rest, values, clock, change }: BaselineRun): CheckedCommandLine {
  const arity = (min: number, max: number, form: string) => {
    if (rest.length < min || rest.length > max)
      throw new UsageError(`usage: unusual-city baseline ${sub} ${form}`);
  };
  const known = ['show', 'forget', 'allow', 'disallow', 'allows', 'audit'];
  if (!known.includes(sub))
    throw new UsageError(`unknown baseline command ${JSON.stringify(sub)} (${known.join(', ')})`);
  if (sub === 'show') arity(0, 1, '[<operation>] [--json]');
  if (sub === 'forget') {
    arity(2, 2, '<operation|*> <city> --by WHO --reason TEXT');
    change();
  }
  let requested: RequestedRule | undefined;
  const startedMs = clock();
  let expiresMs: number | undefined;
  if (sub !== 'allow' && (values.for !== undefined || values.expires !== undefined))
    throw new UsageError(`--for and --expires are options of baseline allow, not of baseline ${sub}`);
  if (sub === 'allow' || sub === 'disallow') {
    if (rest.length < 2)
      throw new UsageError(`usage: unusual-city baseline ${sub} <kind> <value>... --by WHO --reason TEXT`);
    requested = requestRule(sub, rest[0]!, rest.slice(1));
    expiresMs = expiryOf(values, startedMs);
    change();
  }
  if (sub === 'allows' || sub === 'audit') arity(0, 0, '[--json]');
  const limit = values.limit === undefined ? 50 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit expects a positive whole number');
  return { requested, startedMs, expiresMs, limit };
}

/** Runs the checked subcommand against the open store; its exit code. */
async function runSubcommand(store: BaselineStore, run: BaselineRun, checked: CheckedCommandLine) {
  switch (run.sub) {
    case 'show':
      return await showBaseline(store, run);
    case 'forget':
      return await forgetBaselineCity(store, run);
    case 'allow':
    case 'disallow':
      return await changeAllowRule(store, run, checked);
    case 'allows':
      return await listAllowRules(store, run);
    case 'audit':
      return await showAudit(store, run, checked.limit);
  }
  return 64;
}

/** `baseline show`: the operations learned, or one operation's cities. */
async function showBaseline(store: BaselineStore, { rest, values, settings, io, clock }: BaselineRun) {
  // Hours decay to the state's own time (its checkpoint), not to today: a replayed state stays readable.
  const asOf = (await checkpointOf(store)) ?? clock();
  if (rest.length === 0) {
    const ops = await listOperations(store);
    io.stdout(values.json === true ? `${JSON.stringify(ops, null, 2)}\n` : formatOperations(ops));
    return 0;
  }
  const view = await showOperation(store, settings, rest[0]!, asOf);
  if (!view) {
    io.stderr(`no baseline for operation ${JSON.stringify(rest[0])}\n`);
    return 1;
  }
  io.stdout(values.json === true ? `${JSON.stringify(view, null, 2)}\n` : formatOperation(view));
  return 0;
}

/** `baseline forget`: removes an (operation, city), and from callers' histories and the tenant's counts. */
async function forgetBaselineCity(store: BaselineStore, { rest, values, io, change }: BaselineRun) {
  try {
    const r = await forgetCity(
      store,
      { operation: rest[0]!, city: rest[1]!, callers: values.caller ?? [], tenant: values.tenant === true },
      change(),
    );
    if (values.json === true) io.stdout(`${JSON.stringify(r, null, 2)}\n`);
    else reportForgotten(r, rest[0]!, values.tenant === true, io);
    return 0;
  } catch (error) {
    if (error instanceof ForgetError) {
      io.stderr(`baseline forget: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

/** What `baseline forget` removed, one line each. */
function reportForgotten(r: ForgetResult, operation: string, tenant: boolean, io: BaselineIo): void {
  for (const x of r.removed)
    io.stdout(
      `forgot ${r.cityKey} (${x.name}) for ${x.operationKey}: ${x.rawHours} hour(s) on ${x.days} day(s), last seen ${x.lastSeen}\n`,
    );
  for (const c of r.callers)
    io.stdout(
      `${c.removed ? 'forgot' : 'not in the history of'} ${r.cityKey} ${c.removed ? 'for caller' : 'caller'} ${c.caller}\n`,
    );
  if (tenant)
    io.stdout(
      `${r.tenant ? 'forgot' : 'not in'} ${r.cityKey} ${r.tenant ? 'from' : ''} the tenant's city counts\n`,
    );
  if (r.removed.length === 0 && operation === '*') io.stdout(`no operation had ${r.cityKey}\n`);
}

/** `baseline allow` / `disallow`: adds or removes a rule in the allow table. */
async function changeAllowRule(store: BaselineStore, run: BaselineRun, checked: CheckedCommandLine) {
  const { sub, values, io, change } = run;
  const { startedMs, expiresMs } = checked;
  const resolved = await resolveRule(store, checked.requested!);
  if (typeof resolved === 'string') {
    io.stderr(`baseline ${sub}: ${resolved}\n`);
    return 1;
  }
  const { rule, place } = resolved;
  if (sub === 'disallow') {
    const removed = await removeAllowRule(store, rule, change());
    if (!removed) {
      io.stderr(`no allow rule ${rule.kind} ${rule.value} in the allow table\n`);
      return 1;
    }
    io.stdout(`removed: ${describeRule(removed)}\n`);
    return 0;
  }
  const created = await addAllowRule(
    store,
    { ...rule, ...(expiresMs !== undefined ? { expiresMs } : {}) },
    change(),
  );
  const until =
    expiresMs !== undefined
      ? ` until ${iso(expiresMs)}${values.for !== undefined ? ` (${formatDuration(expiresMs - startedMs)})` : ''}`
      : '';
  io.stdout(
    `${created ? 'allowed' : 'already allowed (who, why and expiry updated)'}: ${rule.kind} ${displaySafe(rule.value)}` +
      `${place !== undefined ? ` (${displaySafe(place)})` : ''}${until}; honoured from the next run\n`,
  );
  return 0;
}

/** `baseline allows`: the allow rules from settings and from the allow table. */
async function listAllowRules(store: BaselineStore, { values, settings, io, clock }: BaselineRun) {
  const expired = (r: AllowRule) => r.expiresMs !== undefined && r.expiresMs <= clock();
  const fromSettings = await allowRulesFromSettings(settings);
  const table = await readAllowTable(store);
  if (values.json === true) {
    const json = {
      settings: fromSettings.map((r) => ({
        kind: r.kind,
        value: r.value,
        source: r.source,
        label: r.label ?? null,
      })),
      table: table.map((r) => ({
        kind: r.kind,
        value: r.value,
        by: r.by,
        reason: r.reason,
        added: iso(r.addedMs),
        expires: r.expiresMs !== undefined ? iso(r.expiresMs) : null,
        expired: expired(r),
      })),
    };
    io.stdout(`${JSON.stringify(json, null, 2)}\n`);
    return 0;
  }
  // Service tags hold thousands of prefixes: one line per tag.
  const lines = new Map<string, number>();
  for (const r of fromSettings) {
    const line = r.source === 'UC_ALLOW_SERVICE_TAGS' ? `${r.label ?? ''} (${r.source})` : describeRule(r);
    lines.set(line, (lines.get(line) ?? 0) + 1);
  }
  io.stdout(`from settings (${fromSettings.length}):\n`);
  for (const [line, n] of lines) io.stdout(`  ${line}${n > 1 ? `: ${n} prefixes` : ''}\n`);
  io.stdout(`allow table (${table.length}):\n`);
  for (const r of table) io.stdout(`  ${expired(r) ? '[expired] ' : ''}${displaySafe(describeRule(r))}\n`);
  return 0;
}

/** `baseline audit`: the last `limit` changes, who made them and why. */
async function showAudit(store: BaselineStore, { values, io }: BaselineRun, limit: number) {
  const records = (await readAudit(store)).slice(-limit);
  if (values.json === true) {
    io.stdout(
      `${JSON.stringify(
        records.map((r) => ({ ...r, at: iso(r.atMs) })),
        null,
        2,
      )}\n`,
    );
    return 0;
  }
  for (const r of records)
    io.stdout(
      `${iso(r.atMs)}  ${r.action.padEnd(16)} ${displaySafe(r.subject)}  by ${displaySafe(r.by)}: ${JSON.stringify(r.reason)}\n`,
    );
  if (records.length === 0) io.stdout('no changes recorded\n');
  return 0;
}

/**
 * The rule with its city resolved (a name looked up among the tenant's cities) and the place it names, for the
 * confirmation; a string says why a city name does not resolve.
 */
async function resolveRule(
  store: BaselineStore,
  r: RequestedRule,
): Promise<{ rule: { kind: AllowRule['kind']; value: string }; place?: string } | string> {
  if (CITY_AT[r.kind] === undefined) return { rule: parseAllowValue(r.kind, r.values) };
  const cities = await knownCities(store);
  let values = r.values;
  if (r.cityName !== undefined) {
    try {
      values = [...r.values.slice(0, -1), resolveCityName(cities, r.cityName)];
    } catch (error) {
      if (error instanceof CityNameError) return error.message;
      throw error;
    }
  }
  const rule = parseAllowValue(r.kind, values);
  const key = rule.value.slice(rule.value.lastIndexOf(' ') + 1);
  const known = cities.find((c) => c.key === key);
  const place = known && [known.name, known.country].filter((x) => x !== '').join(', ');
  return { rule, ...(place ? { place } : {}) };
}

/** The command as main.ts registers it. */
export const run = (args: string[]): Promise<number> => runBaselineCommand(args, processIo());
