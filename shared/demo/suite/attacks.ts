import type { CallerType } from '../../activity/types.js';
import type { AttackLabel } from '../evaluate.js';
import { OPS } from '../tenant.js';
import { type ActivityLog, DAY, HOUR, MIN } from './activity.js';
import {
  DOMESTIC,
  HOSTILE,
  HOSTILE_V6,
  type Office,
  OFFICE_CITY_ATTACKER,
  OFFICES,
  type Place,
  VPS_IN_AUTOMATION_CITY,
} from './places.js';
import type { Dice, Person, World } from './world.js';

/** The attack classes every seed holds (the low-and-slow campaign is labelled as two attacks). */
export const ATTACK_CLASSES = [
  'foreign-password',
  'sp-secret',
  'office-city',
  'same-country',
  'ipv6',
  'token-replay',
  'vps-automation-city',
  'low-and-slow-recon',
  'low-and-slow-escalation',
  'wave',
] as const;

interface Step {
  atMs: number;
  operation: string;
}

/** Emits an attacker's operations and returns the label: from the first event to a minute after the last. */
export class Attacker {
  readonly labels: AttackLabel[] = [];
  /** The city each attack's addresses are meant to geolocate to, by label id. */
  readonly places = new Map<string, Place>();
  constructor(
    private readonly log: ActivityLog,
    private readonly dice: Dice,
  ) {}

  run(
    id: string,
    cls: string,
    description: string,
    who: { caller: string; callerType: CallerType; tokenIp?: string },
    place: Place,
    steps: Step[],
    requiredOperations?: string[],
  ): void {
    const ips = [...place.ips];
    steps.forEach((s, i) =>
      this.log.add({
        timeMs: s.atMs,
        operation: s.operation,
        caller: who.caller,
        callerType: who.callerType,
        ip: ips[i % ips.length]!,
        resourceGroup: 'rg-data',
        ...(who.tokenIp ? { tokenIp: who.tokenIp } : {}),
      }),
    );
    const times = steps.map((s) => s.atMs);
    this.places.set(id, place);
    this.labels.push({
      id,
      class: cls,
      description: `${description} (${place.city}, ${place.country})`,
      caller: who.caller,
      ips,
      startMs: Math.min(...times),
      endMs: Math.max(...times) + MIN,
      ...(requiredOperations ? { requiredOperations } : {}),
    });
  }

  /** Operations a few minutes apart, starting at a random minute of the given local hour. */
  burst(dayStartMs: number, localHour: number, place: Place, operations: string[]): Step[] {
    let t = dayStartMs + (localHour - place.utcOffset) * HOUR + this.dice.int(0, 40) * MIN;
    return operations.map((operation) => ({ atMs: (t += this.dice.int(2, 9) * MIN), operation }));
  }
}

const user = (p: Person) => ({ caller: p.upn, callerType: 'user' as const });

/** A campaign: credential reads every 3–5 hours for two days, then escalation from the same city. */
function lowAndSlow(at: Attacker, dice: Dice, victim: Person, place: Place, dayStartMs: number): void {
  const recon: Step[] = [];
  let t = dayStartMs + dice.int(0, 23) * HOUR + dice.int(0, 59) * MIN;
  const until = t + 2 * DAY;
  for (; t < until; t += dice.int(180, 300) * MIN) recon.push({ atMs: t, operation: OPS.listKeys });
  at.run(
    'A8-recon',
    'low-and-slow-recon',
    `${victim.upn}'s credential reads storage keys every 3–5 hours for two days`,
    user(victim),
    place,
    recon,
  );
  const escalation = [OPS.roleAssign, OPS.kvPolicy, OPS.listKeys].map((operation, i) => ({
    atMs: t + i * 7 * MIN,
    operation,
  }));
  at.run(
    'A8-escalation',
    'low-and-slow-escalation',
    `then a role assignment and a Key Vault access policy from the same city`,
    user(victim),
    place,
    escalation,
    [OPS.roleAssign, OPS.kvPolicy],
  );
}

/** Several stolen credentials used within two hours from one city through a network none of them used. */
function wave(at: Attacker, dice: Dice, victims: Person[], place: Place, dayStartMs: number): void {
  let t = dayStartMs + (dice.int(1, 5) - place.utcOffset) * HOUR;
  victims.forEach((v, i) => {
    const steps = [OPS.listKeys, OPS.roleAssign].map((operation, k) => ({
      atMs: t + k * 4 * MIN,
      operation,
    }));
    at.run(
      `A9-${i + 1}`,
      'wave',
      `${v.upn}, one of ${victims.length} credentials used from one new network within two hours`,
      user(v),
      place,
      steps,
    );
    t += dice.int(10, 30) * MIN;
  });
}

/** Who and when, drawn from the seed: victims differ within a seed, hostile cities too; attacks come after the learning week. */
class Casting {
  private readonly hostile = [...HOSTILE];
  private readonly admins: Person[];
  private readonly pool: Person[];
  private readonly first: number;

  constructor(
    private readonly w: World,
    private readonly dice: Dice,
    private readonly startMs: number,
  ) {
    const busy = (p: Person) => p.trip ?? p.nearbyDay ?? p.mobile ?? p.startDay > 0;
    this.pool = w.people.filter((p) => !busy(p));
    this.admins = this.pool.filter((p) => p.role === 'admin');
    this.first = Math.max(8, Math.floor(w.days * 0.3)); // after the learning week (SUITE_MIN_DAYS leaves room)
  }

  /** Start of a random day after the learning week, no later than `last`. */
  day(last = this.w.days - 2): number {
    return this.startMs + this.dice.int(this.first, Math.max(this.first, last)) * DAY;
  }

  admin(): Person {
    const p = this.dice.draw(this.admins);
    this.pool.splice(this.pool.indexOf(p), 1);
    return p;
  }

  victim(): Person {
    return this.dice.draw(this.pool);
  }

  hostileCity(): Place {
    return this.dice.draw(this.hostile);
  }
}

/** Stolen credentials used far away or in a city that does not fit: A1–A4. */
function firstAttacks(w: World, at: Attacker, dice: Dice, cast: Casting): Office {
  const [admin1, admin2] = [cast.admin(), cast.admin()];
  const day = () => cast.day();
  let place = cast.hostileCity();
  at.run(
    'A1',
    'foreign-password',
    `${admin1.upn}'s password used at night: storage keys, role assignment, NSG rule`,
    user(admin1),
    place,
    at.burst(day(), dice.int(1, 5), place, [OPS.listKeys, OPS.roleAssign, OPS.nsgRule, OPS.vmWrite]),
  );
  const ci = w.automation[0]!;
  place = cast.hostileCity();
  at.run(
    'A2',
    'sp-secret',
    `the ${ci.description} service principal's secret used from a hosting provider`,
    { caller: ci.id, callerType: ci.callerType },
    place,
    at.burst(day(), dice.int(18, 23), place, [OPS.listKeys, OPS.containerWrite, OPS.sqlFirewall]),
  );
  const office = dice.pick<Office>(['amsterdam', 'mumbai']);
  place = { ...OFFICES[office], ips: OFFICE_CITY_ATTACKER[office] };
  at.run(
    'A3',
    'office-city',
    `${admin2.upn} (${admin2.office}) used from the ${office} office city, where they never work: role assignment, Key Vault policy`,
    user(admin2),
    place,
    at.burst(day(), dice.int(10, 16), place, [OPS.roleAssign, OPS.kvPolicy]),
  );
  const domestic = cast.victim();
  place = dice.pick(DOMESTIC[domestic.office].filter((p) => !w.taken.has(p.city)));
  at.run(
    'A4',
    'same-country',
    `${domestic.upn} used from another city of their country in the evening`,
    user(domestic),
    place,
    at.burst(day(), dice.int(19, 22), place, [OPS.listKeys, OPS.vmWrite, OPS.snapshot]),
  );
  return office;
}

/** Attacks that hide among the tenant's own: IPv6, a replayed token, an automation city, a campaign, a wave. */
function laterAttacks(w: World, at: Attacker, dice: Dice, cast: Casting, office: Office): void {
  const day = () => cast.day();
  let place: Place;
  const v6 = cast.victim();
  place = dice.pick(HOSTILE_V6);
  at.run(
    'A5',
    'ipv6',
    `${v6.upn} used over IPv6`,
    user(v6),
    place,
    at.burst(day(), dice.int(0, 23), place, [OPS.listKeys, OPS.vmWrite]),
  );
  const token = cast.victim();
  place = cast.hostileCity();
  at.run(
    'A6',
    'token-replay',
    `${token.upn}'s session token replayed abroad (the token's ipaddr claim is still ${token.homeIp})`,
    { ...user(token), tokenIp: token.homeIp },
    place,
    at.burst(day(), dice.int(0, 23), place, [OPS.listKeys, OPS.vmWrite, OPS.snapshot]),
  );
  const vps = cast.victim();
  place = dice.pick(VPS_IN_AUTOMATION_CITY.filter((p) => p.city !== OFFICES[office].city));
  at.run(
    'A7',
    'vps-automation-city',
    `${vps.upn} used from a VPS in a city where the tenant's automation runs daily`,
    user(vps),
    place,
    at.burst(day(), dice.int(0, 23), place, [OPS.listKeys, OPS.kvPolicy, OPS.vmWrite]),
  );
  lowAndSlow(at, dice, cast.victim(), cast.hostileCity(), cast.day(w.days - 4));
  wave(at, dice, [cast.victim(), cast.victim(), cast.victim()], cast.hostileCity(), day());
}

/** Every attack class once, at seed-dependent days, victims and cities; returns the labels and their places. */
export function emitAttacks(w: World, log: ActivityLog, dice: Dice, startMs: number): Attacker {
  const at = new Attacker(log, dice);
  const cast = new Casting(w, dice, startMs);
  laterAttacks(w, at, dice, cast, firstAttacks(w, at, dice, cast));
  return at;
}
