import { OPS } from '../tenant.js';
import { type ActivityLog, DAY, HOUR, MIN } from './activity.js';
import { AZURE, OFFICES, type Place } from './places.js';
import { type Automation, type Dice, type Person, ROLE_OPS, type World } from './world.js';

const isWeekday = (day: number) => day % 7 < 5; // the suite starts on a Monday
const inHoliday = (w: World, day: number) => day >= w.holiday.fromDay && day <= w.holiday.toDay;

/** Where a person works from for one burst of activity on a given day. */
function whereFrom(w: World, p: Person, day: number, dice: Dice): { place: Place; ip: string } {
  const at = (place: Place) => ({ place, ip: dice.pick(place.ips) });
  if (p.trip && day >= p.trip.fromDay && day <= p.trip.toDay) return at(p.trip.place);
  if (p.nearbyDay?.day === day) return at(p.nearbyDay.place);
  if (p.mobile?.days.includes(day) && dice.rand() < 0.6) return at(p.mobile.place);
  const r = dice.rand();
  if (p.usesVpn && r > 0.7) return at(day >= w.vpn.moveDay ? w.vpn.to : w.vpn.from);
  // Office egress (the first address of an office), or home broadband; a remote new hire is always at home.
  const inOffice = r < 0.45 && p.home === OFFICES[p.office];
  return { place: p.home, ip: inOffice ? p.home.ips[0]! : p.homeIp };
}

/** A working day of one person: two to five bursts in local office hours, one to three operations each. */
function personDay(w: World, log: ActivityLog, dice: Dice, p: Person, dayStartMs: number, day: number): void {
  const bursts = dice.int(2, 5);
  for (let b = 0; b < bursts; b++) {
    const { place, ip } = whereFrom(w, p, day, dice);
    const t0 = dayStartMs + (dice.int(9, 17) - place.utcOffset) * HOUR + dice.rand() * 50 * MIN;
    const n = dice.int(1, 3);
    for (let k = 0; k < n; k++)
      log.add({
        timeMs: t0 + k * 2 * MIN,
        operation: dice.pick(ROLE_OPS[p.role]),
        caller: p.upn,
        callerType: 'user',
        ip,
      });
  }
}

function peopleRoutine(w: World, log: ActivityLog, dice: Dice, startMs: number): void {
  for (let day = 0; day < w.days; day++) {
    if (!isWeekday(day)) continue;
    for (const p of w.people) {
      if (day < p.startDay || dice.rand() < 0.08) continue; // not yet hired, leave, sick days
      if (inHoliday(w, day) && dice.rand() > 0.15) continue; // a quiet week
      personDay(w, log, dice, p, startMs + day * DAY, day);
    }
  }
}

/** One automation identity: an operation every few minutes from its region, with jitter. */
function automationRoutine(w: World, log: ActivityLog, dice: Dice, a: Automation, startMs: number): void {
  for (let t = startMs; t < startMs + w.days * DAY; t += a.everyMinutes * MIN) {
    const day = Math.floor((t - startMs) / DAY);
    const hour = Math.floor((t - startMs - day * DAY) / HOUR);
    if (a.workingHours) {
      if (!isWeekday(day) || hour < a.workingHours[0] || hour > a.workingHours[1]) continue;
      if (inHoliday(w, day) && dice.rand() > 0.2) continue;
    }
    const moved = a.newRegion && day >= a.newRegion.fromDay && dice.rand() < 0.5;
    const region = AZURE[moved ? a.newRegion!.region : a.region];
    const ip = dice.pick(region.ips);
    a.operations.forEach((operation, k) =>
      log.add({
        timeMs: t + dice.rand() * 3 * MIN + k * MIN,
        operation,
        caller: a.id,
        callerType: a.callerType,
        ip,
        resourceGroup: 'rg-platform',
      }),
    );
  }
}

/**
 * Azure Policy's first-party identity remediating resources from Microsoft datacentres: every half hour from
 * the region Azure currently runs it in, which moves every few days to another of many regions.
 */
function firstPartyRoutine(w: World, log: ActivityLog, dice: Dice, startMs: number): void {
  let region = dice.pick(w.firstParty.regions);
  for (let t = startMs; t < startMs + w.days * DAY; t += 30 * MIN) {
    if (dice.rand() < 1 / (3 * 48)) region = dice.pick(w.firstParty.regions);
    const ip = dice.pick(AZURE[dice.rand() < 0.02 ? dice.pick(w.firstParty.regions) : region].ips);
    const operation = dice.rand() < 0.7 ? OPS.deploy : OPS.tags;
    log.add({
      timeMs: t + dice.rand() * 20 * MIN,
      operation,
      caller: w.firstParty.id,
      callerType: 'servicePrincipal',
      ip,
      resourceGroup: 'rg-policy',
    });
  }
}

/** Everything that is not an attack. */
export function emitRoutine(w: World, log: ActivityLog, dice: Dice, startMs: number): void {
  peopleRoutine(w, log, dice, startMs);
  for (const a of w.automation) automationRoutine(w, log, dice, a, startMs);
  firstPartyRoutine(w, log, dice, startMs);
}
