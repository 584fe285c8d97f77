/**
 * The narrowest allow rule that silences a noisy (operation, city) pair, from the shape of the alerts at the
 * threshold: one caller → (caller, city), or (caller, network) when that caller's alerts span cities through one
 * network (a VPN or carrier that moves); several callers of the operation → (operation, city); a whole city only
 * when many callers of many operations alert from it. Allowing a whole city for one commuter would hide any
 * attacker there. Rules are built and matched by the allow table's own code (shared/ops/allowlist.ts), so what is
 * proposed is what `baseline allow` stores and the next run applies.
 */
import type { RareFinding } from '../alerts/alert.js';
import { type AllowKind, Allowlist, AllowValueError, parseAllowValue, RuleSet } from '../ops/allowlist.js';
import type { DecidedAlert, ThresholdDecision } from './decide.js';

/** A city is allowed whole only when at least this many callers and operations alert from it. */
export const CITY_WIDE_CALLERS = 3;
export const CITY_WIDE_OPERATIONS = 3;
/** The expiry the proposed command line gives a rule (the analyst reviews it then). */
export const PROPOSED_FOR = '30d';

export interface ProposedRule {
  kind: AllowKind;
  /** Canonical value, as the allow table stores it. */
  value: string;
  /** The rule matched by the allow table's code: does it keep this finding from alerting? */
  allows: (f: RareFinding) => boolean;
  /** The command line that adds it (arguments shell-quoted). */
  command: string;
  /** Why this rule, in a sentence. */
  scope: string;
}

/** The place the way people name it. */
const placeOf = (f: RareFinding): string => {
  const c = f.observation.city;
  return c.egress ?? ([c.name, c.country].filter((x) => x !== '').join(', ') || c.key);
};

/** A POSIX-shell word: plain when safe, else single-quoted (callers and operations are attacker-controlled). */
export function shellWord(text: string): string {
  return /^[A-Za-z0-9@%+=:,./_-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

/** The rule, or undefined when its values are not ones `baseline allow` accepts. */
function propose(kind: AllowKind, args: string[], scope: string, reason: string): ProposedRule | undefined {
  let value: string;
  try {
    value = parseAllowValue(kind, args).value;
  } catch (error) {
    if (error instanceof AllowValueError) return undefined;
    throw error;
  }
  const allowlist = new Allowlist(new RuleSet([{ kind, value, source: 'backtest' }]));
  // The command names a city by its geoname id (what alerts carry in SrcGeoCityId), other places by key.
  const shown = value.split(' ').map((v) => (/^g:\d+$/.test(v) ? v.slice(2) : v));
  const command = [
    'unusual-city baseline allow',
    kind,
    ...shown.map(shellWord),
    `--for ${PROPOSED_FOR} --by "$USER" --reason`,
    shellWord(reason),
  ].join(' ');
  return { kind, value, allows: (f) => allowlist.suppress(f) !== undefined, command, scope };
}

const lower = (s: string): string => s.toLowerCase();

/** The one network (ASN) every alert of the caller came through, when they span several cities; else undefined. */
function oneNetworkAcrossCities(mine: readonly DecidedAlert[]): number | undefined {
  const cities = new Set(mine.map((a) => a.top.observation.city.key));
  const asns = new Set<number>();
  for (const a of mine) {
    const nets = a.top.activity.networks ?? [];
    if (nets.length === 0) return undefined;
    for (const n of nets) asns.add(n.asn);
  }
  return cities.size >= 2 && asns.size === 1 ? [...asns][0] : undefined;
}

/**
 * The allow rules at the grain of a caller or an operation that could silence the pair, narrowest first for the
 * shape of its alerts; `cityWide` says the city's alerts come from many callers of many operations (only then is
 * allowing the whole city proposed, by the caller of this function).
 */
export function allowRulesFor(
  pair: readonly DecidedAlert[],
  decision: ThresholdDecision,
  /** The rare findings at or above the threshold from the pair's city (an episode folds several into one alert). */
  cityFindings: readonly RareFinding[],
): { rules: ProposedRule[]; cityWide: boolean } {
  const top = pair[0]!.top;
  // `pair`: the alerts to silence (with labels, the false ones: an attacker in the pair is no reason to widen).
  const cityKey = top.observation.city.key;
  const place = placeOf(top);
  const op = top.observation.operation;
  const callers = [...new Set(pair.map((a) => lower(a.top.activity.caller)))];
  const cityCallers = new Set(cityFindings.map((f) => lower(f.activity.caller)));
  const cityOps = new Set(cityFindings.map((f) => f.observation.operationKey));
  const cityWide = cityCallers.size >= CITY_WIDE_CALLERS && cityOps.size >= CITY_WIDE_OPERATIONS;
  const rules: (ProposedRule | undefined)[] = [];
  const n = (k: number, what: string) => `${k} ${what}${k === 1 ? '' : 's'}`;

  if (callers.length === 1 && callers[0] !== '') {
    const caller = callers[0]!;
    const mine = decision.alerts.filter((a) => lower(a.top.activity.caller) === caller);
    const asn = oneNetworkAcrossCities(mine);
    if (asn !== undefined) {
      const org = mine.flatMap((a) => a.top.activity.networks ?? []).find((x) => x.org !== '')?.org;
      const cities = new Set(mine.map((a) => a.top.observation.city.key)).size;
      rules.push(
        propose(
          'caller+network',
          [caller, `AS${asn}`],
          `${caller}'s ${n(mine.length, 'alert')} came from ${cities} cities, all through AS${asn}${org ? ` (${org})` : ''}: one rule for that caller on that network (a VPN or carrier that moves); any other caller, or this one on another network, still alerts.`,
          `backtest: ${caller} roams through AS${asn}`,
        ),
      );
    }
    rules.push(
      propose(
        'caller+city',
        [caller, cityKey],
        `${caller} alone raised the ${n(pair.length, 'alert')} of ${op} from ${place}: allowing that caller there keeps every other caller (an attacker too) from ${place} alerting.`,
        `backtest: ${caller} from ${place}`,
      ),
    );
  }
  if (callers.length > 1)
    rules.push(
      propose(
        'operation+city',
        [top.observation.operationKey, cityKey],
        `${n(callers.length, 'caller')} raised ${op} from ${place}: allowing that operation there keeps every other operation from ${place} alerting.`,
        `backtest: ${op} from ${place}`,
      ),
    );
  return { rules: rules.filter((r): r is ProposedRule => r !== undefined), cityWide };
}
