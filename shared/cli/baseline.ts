/**
 * `unusual-city baseline`: inspect and correct what the detector has learned — show an operation's baseline,
 * forget an (operation, city), and keep the allow table (shared/ops/allowlist.ts). Works on local state
 * (`--state DIR`) or on Table Storage (Azure settings from the environment or --set).
 */
import { parseArgs } from 'node:util';

import type { BaselineStore } from '../baseline/store.js';
import { loadSettings } from '../config/settings.js';
import { displaySafe } from '../display.js';
import {
  addAllowRule,
  type AllowRule,
  allowRulesFromSettings,
  AllowValueError,
  describeRule,
  parseAllowValue,
  readAllowTable,
  removeAllowRule,
} from '../ops/allowlist.js';
import { checkWhoAndWhy, readAudit } from '../ops/audit.js';
import {
  checkpointOf,
  forgetCity,
  ForgetError,
  formatOperation,
  formatOperations,
  listOperations,
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
  unusual-city baseline allow <kind> <value>... --by WHO --reason TEXT
  unusual-city baseline disallow <kind> <value>... --by WHO --reason TEXT
      Adds / removes an allow rule (kinds: range <cidr>, city <geoname id|key>, caller <upn|id>,
      operation <name>, operation+city <operation> <city>); honoured from the next run.
  unusual-city baseline allows [--json]       allow rules from settings and from the allow table
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
  caller: { type: 'string', multiple: true },
  tenant: { type: 'boolean' },
  limit: { type: 'string' },
  set: { type: 'string', multiple: true },
  state: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const iso = (ms: number | undefined): string => (ms ? new Date(ms).toISOString() : '');

export async function runBaselineCommand(args: string[], io: BaselineIo): Promise<number> {
  const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
  const [sub, ...rest] = positionals;
  if (values.help || sub === undefined || sub === 'help') {
    io.stdout(`Usage:\n${BASELINE_USAGE}`);
    return values.help || sub === 'help' ? 0 : 64;
  }
  const settings = loadSettings(io.env, parseSets(values.set));
  const clock = io.clock ?? Date.now;
  const change = () => {
    const problem = checkWhoAndWhy(values.by, values.reason);
    if (problem !== undefined) throw new UsageError(`baseline ${sub} ${problem}`);
    return { by: values.by!.trim(), reason: values.reason!.trim(), atMs: clock() };
  };
  const arity = (min: number, max: number, form: string) => {
    if (rest.length < min || rest.length > max)
      throw new UsageError(`usage: unusual-city baseline ${sub} ${form}`);
  };
  const known = ['show', 'forget', 'allow', 'disallow', 'allows', 'audit'];
  if (!known.includes(sub))
    throw new UsageError(`unknown baseline command ${JSON.stringify(sub)} (${known.join(', ')})`);
  // Check the command line before touching any store.
  if (sub === 'show') arity(0, 1, '[<operation>] [--json]');
  if (sub === 'forget') {
    arity(2, 2, '<operation|*> <city> --by WHO --reason TEXT');
    change();
  }
  let rule: { kind: AllowRule['kind']; value: string } | undefined;
  if (sub === 'allow' || sub === 'disallow') {
    if (rest.length < 2)
      throw new UsageError(`usage: unusual-city baseline ${sub} <kind> <value>... --by WHO --reason TEXT`);
    try {
      rule = parseAllowValue(rest[0]!, rest.slice(1));
    } catch (error) {
      if (error instanceof AllowValueError) throw new UsageError(`baseline ${sub}: ${error.message}`);
      throw error;
    }
    change();
  }
  if (sub === 'allows' || sub === 'audit') arity(0, 0, '[--json]');
  const limit = values.limit === undefined ? 50 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit expects a positive whole number');

  const store: BaselineStore = await openStateStore(settings, io.env, values.state, sub !== 'allow');
  try {
    switch (sub) {
      case 'show': {
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
      case 'forget': {
        try {
          const r = await forgetCity(
            store,
            {
              operation: rest[0]!,
              city: rest[1]!,
              callers: values.caller ?? [],
              tenant: values.tenant === true,
            },
            change(),
          );
          if (values.json === true) io.stdout(`${JSON.stringify(r, null, 2)}\n`);
          else {
            for (const x of r.removed)
              io.stdout(
                `forgot ${r.cityKey} (${x.name}) for ${x.operationKey}: ${x.rawHours} hour(s) on ${x.days} day(s), last seen ${x.lastSeen}\n`,
              );
            for (const c of r.callers)
              io.stdout(
                `${c.removed ? 'forgot' : 'not in the history of'} ${r.cityKey} ${c.removed ? 'for caller' : 'caller'} ${c.caller}\n`,
              );
            if (values.tenant === true)
              io.stdout(
                `${r.tenant ? 'forgot' : 'not in'} ${r.cityKey} ${r.tenant ? 'from' : ''} the tenant's city counts\n`,
              );
            if (r.removed.length === 0 && rest[0] === '*') io.stdout(`no operation had ${r.cityKey}\n`);
          }
          return 0;
        } catch (error) {
          if (error instanceof ForgetError) {
            io.stderr(`baseline forget: ${error.message}\n`);
            return 1;
          }
          throw error;
        }
      }
      case 'allow': {
        const created = await addAllowRule(store, rule!, change());
        io.stdout(
          `${created ? 'allowed' : 'already allowed (who and why updated)'}: ${rule!.kind} ${rule!.value}; honoured from the next run\n`,
        );
        return 0;
      }
      case 'disallow': {
        const removed = await removeAllowRule(store, rule!, change());
        if (!removed) {
          io.stderr(`no allow rule ${rule!.kind} ${rule!.value} in the allow table\n`);
          return 1;
        }
        io.stdout(`removed: ${describeRule(removed)}\n`);
        return 0;
      }
      case 'allows': {
        const fromSettings = await allowRulesFromSettings(settings);
        const table = await readAllowTable(store);
        if (values.json === true) {
          io.stdout(
            `${JSON.stringify(
              {
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
                })),
              },
              null,
              2,
            )}\n`,
          );
          return 0;
        }
        // Service tags hold thousands of prefixes: one line per tag.
        const lines = new Map<string, number>();
        for (const r of fromSettings) {
          const line =
            r.source === 'UC_ALLOW_SERVICE_TAGS' ? `${r.label ?? ''} (${r.source})` : describeRule(r);
          lines.set(line, (lines.get(line) ?? 0) + 1);
        }
        io.stdout(`from settings (${fromSettings.length}):\n`);
        for (const [line, n] of lines) io.stdout(`  ${line}${n > 1 ? `: ${n} prefixes` : ''}\n`);
        io.stdout(`allow table (${table.length}):\n`);
        for (const r of table) io.stdout(`  ${describeRule(r)}\n`);
        return 0;
      }
      case 'audit': {
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
    }
    return 64;
  } finally {
    await store.close();
  }
}

/** The command as main.ts registers it. */
export const run = (args: string[]): Promise<number> => runBaselineCommand(args, processIo());
