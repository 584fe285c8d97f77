import type { BenignLabel } from '../evaluate.js';
import { DAY } from './activity.js';
import { AZURE, type Place } from './places.js';
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

interface Episode {
  cls: string;
  description: string;
  callers: string[];
  /** Where its new addresses are (their city is the one they geolocate to); none = any address. */
  where?: Place;
  fromDay: number;
  toDay: number;
}

function episodes(w: World): Episode[] {
  const out: Episode[] = [];
  for (const p of w.people) {
    if (p.trip) {
      const { place, fromDay, toDay } = p.trip;
      out.push({
        cls: 'trip-abroad',
        description: `${p.upn} travels to ${place.city}`,
        callers: [p.upn],
        where: place,
        fromDay,
        toDay,
      });
    }
    if (p.nearbyDay) {
      const { place, day } = p.nearbyDay;
      out.push({
        cls: 'nearby-city',
        description: `${p.upn} works a day from ${place.city}`,
        callers: [p.upn],
        where: place,
        fromDay: day,
        toDay: day,
      });
    }
    if (p.startDay > 0)
      out.push({
        cls: 'new-hire',
        description: `${p.upn} joins, working from home in ${p.home.city}`,
        callers: [p.upn],
        where: { ...p.home, ips: [p.homeIp] },
        fromDay: p.startDay,
        toDay: w.days - 1,
      });
  }
  const mobile = w.people.filter((p) => p.mobile);
  const days = mobile.flatMap((p) => p.mobile!.days);
  const hub = mobile[0]!.mobile!.place;
  out.push({
    cls: 'mobile-hub',
    description: `phone hotspots of ${mobile.length} people geolocate to ${hub.city}`,
    callers: mobile.map((p) => p.upn),
    where: hub,
    fromDay: Math.min(...days),
    toDay: Math.max(...days),
  });
  const vpnUsers = w.people.filter((p) => p.usesVpn).map((p) => p.upn);
  out.push({
    cls: 'vpn-move',
    description: `the corporate VPN egress moves from ${w.vpn.from.city} to ${w.vpn.to.city} for its ${vpnUsers.length} users`,
    callers: vpnUsers,
    where: w.vpn.to,
    fromDay: w.vpn.moveDay,
    toDay: w.days - 1,
  });
  out.push({
    cls: 'first-party',
    description: `Azure Policy remediation from Microsoft datacentres in up to ${w.firstParty.regions.length} regions`,
    callers: [w.firstParty.id],
    fromDay: 0,
    toDay: w.days - 1,
  });
  for (const a of w.automation.filter((x) => x.newRegion)) {
    const region = AZURE[a.newRegion!.region];
    out.push({
      cls: 'new-automation-region',
      description: `the ${a.description} also runs in ${region.city} (${a.newRegion!.region})`,
      callers: [a.id],
      where: region,
      fromDay: a.newRegion!.fromDay,
      toDay: w.days - 1,
    });
  }
  out.push({
    cls: 'holidays',
    description: 'a quiet holiday week: most people away',
    callers: w.people.map((p) => p.upn),
    fromDay: w.holiday.fromDay,
    toDay: w.holiday.toDay,
  });
  return out;
}

/** Labels for the world's benign novelties (and the place of each), so false alerts can be charged to their cause. */
export function benignLabels(w: World, startMs: number, places: Map<string, Place>): BenignLabel[] {
  const order = (e: Episode) => BENIGN_CLASSES.indexOf(e.cls as (typeof BENIGN_CLASSES)[number]);
  const sorted = episodes(w).sort((a, b) => order(a) - order(b));
  return sorted.map((e, i) => {
    const id = `B${i + 1}`;
    if (e.where) places.set(id, e.where);
    return {
      id,
      class: e.cls,
      description: e.description,
      callers: e.callers,
      ips: [...(e.where?.ips ?? [])],
      startMs: startMs + e.fromDay * DAY,
      endMs: startMs + (e.toDay + 1) * DAY,
    };
  });
}
