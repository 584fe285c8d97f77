import type { BenignLabel } from '../evaluate.js';
import { DAY } from './activity.js';
import { AZURE } from './places.js';
import type { World } from './world.js';

/** The benign-but-novel classes every seed holds. */
export const BENIGN_CLASSES = [
  'trip-abroad',
  'nearby-city',
  'new-hire',
  'vpn-move',
  'mobile-hub',
  'first-party',
  'new-automation-region',
  'holidays',
] as const;

/** Labels for the world's benign novelties, so that false alerts can be attributed to their cause. */
export function benignLabels(w: World, startMs: number): BenignLabel[] {
  const at = (day: number) => startMs + day * DAY;
  const out: BenignLabel[] = [];
  const label = (
    cls: string,
    description: string,
    callers: string[],
    ips: readonly string[],
    fromDay: number,
    toDay: number,
  ) =>
    out.push({
      id: `B${out.length + 1}`,
      class: cls,
      description,
      callers,
      ips: [...ips],
      startMs: at(fromDay),
      endMs: at(toDay + 1),
    });
  for (const p of w.people) {
    if (p.trip)
      label(
        'trip-abroad',
        `${p.upn} travels to ${p.trip.place.city}`,
        [p.upn],
        p.trip.place.ips,
        p.trip.fromDay,
        p.trip.toDay,
      );
    if (p.nearbyDay)
      label(
        'nearby-city',
        `${p.upn} works a day from ${p.nearbyDay.place.city}`,
        [p.upn],
        p.nearbyDay.place.ips,
        p.nearbyDay.day,
        p.nearbyDay.day,
      );
    if (p.startDay > 0)
      label(
        'new-hire',
        `${p.upn} joins, working from ${p.home.city}`,
        [p.upn],
        [p.homeIp],
        p.startDay,
        w.days - 1,
      );
  }
  const mobile = w.people.filter((p) => p.mobile);
  const days = mobile.flatMap((p) => p.mobile!.days);
  label(
    'mobile-hub',
    `phone hotspots of ${mobile.length} people geolocate to ${mobile[0]!.mobile!.place.city}`,
    mobile.map((p) => p.upn),
    mobile[0]!.mobile!.place.ips,
    Math.min(...days),
    Math.max(...days),
  );
  const vpnUsers = w.people.filter((p) => p.usesVpn).map((p) => p.upn);
  label(
    'vpn-move',
    `the corporate VPN egress moves from ${w.vpn.from.city} to ${w.vpn.to.city} for its ${vpnUsers.length} users`,
    vpnUsers,
    w.vpn.to.ips,
    w.vpn.moveDay,
    w.days - 1,
  );
  label(
    'first-party',
    `Azure Policy remediation from Microsoft datacentres in ${w.firstParty.regions.length} regions`,
    [w.firstParty.id],
    [],
    0,
    w.days - 1,
  );
  for (const a of w.automation) {
    if (!a.newRegion) continue;
    const region = AZURE[a.newRegion.region];
    label(
      'new-automation-region',
      `the ${a.description} also runs in ${region.city} (${a.newRegion.region})`,
      [a.id],
      region.ips,
      a.newRegion.fromDay,
      w.days - 1,
    );
  }
  label(
    'holidays',
    'a quiet holiday week: most people away',
    w.people.map((p) => p.upn),
    [],
    w.holiday.fromDay,
    w.holiday.toDay,
  );
  return out;
}
