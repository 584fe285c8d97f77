/**
 * The scenario suite (issue 12): a deterministic, labelled generator whose addresses really geolocate where the
 * scenario says, holding every class in every seed, and the per-class attribution of `evaluate`.
 */
import { readFile, rm } from 'node:fs/promises';
import { isIPv6 } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { newReadStats, readActivityFiles } from '../../shared/activity/read.js';
import type { ActivityEvent } from '../../shared/activity/types.js';
import { writeActivityJsonl } from '../../shared/demo/suite/activity.js';
import { ATTACK_CLASSES } from '../../shared/demo/suite/attacks.js';
import { BENIGN_CLASSES } from '../../shared/demo/suite/benign.js';
import * as places from '../../shared/demo/suite/places.js';
import { generateSuiteTenant, type SuiteTenant } from '../../shared/demo/suite/suite.js';
import { OPS } from '../../shared/demo/tenant.js';
import { embeddedDatabasePath, openGeolocator } from '../../shared/geo/geolocator.js';
import type { Geolocator } from '../../shared/geo/types.js';

const DAY = 86_400_000;
let geo: Geolocator;
const tenants = new Map<number, SuiteTenant>();
const tenant = (seed: number) => tenants.get(seed) ?? tenants.set(seed, generateSuiteTenant(seed)).get(seed)!;

beforeAll(async () => {
  geo = await openGeolocator({ databasePath: embeddedDatabasePath()!, noCityMode: 'skip' });
});

const cityOf = (ip: string) => {
  const r = geo.locate(ip);
  return r.kind === 'city' ? `${r.city.name}, ${r.city.country}` : r.kind;
};

const label = (t: SuiteTenant, cls: string) => t.labels.attacks.find((a) => a.class === cls)!;
const before = (t: SuiteTenant, ms: number, f: (e: ActivityEvent) => boolean) =>
  t.events.filter((e) => e.timeMs < ms && f(e));

describe('suite generator', () => {
  it('is deterministic per seed, and seeds differ', () => {
    const a = generateSuiteTenant(7, 12);
    const b = generateSuiteTenant(7, 12);
    expect(b.events).toEqual(a.events);
    expect(b.labels).toEqual(a.labels);
    expect(generateSuiteTenant(8, 12).labels.attacks).not.toEqual(a.labels.attacks);
  });

  it('has the size the brief asks for: ~36 people, 8 automation identities, a few thousand rows a day', () => {
    const t = tenant(1);
    expect(t.people).toBeGreaterThanOrEqual(30);
    expect(t.people).toBeLessThanOrEqual(40);
    expect(t.automation).toBe(9); // eight of the tenant's, one Microsoft first-party
    expect(t.events.length / t.days).toBeGreaterThan(2_000);
    expect(t.events.length / t.days).toBeLessThan(5_000);
    const cities = new Set(t.events.filter((e) => e.callerType === 'user').map((e) => cityOf(e.callerIp)));
    for (const office of ['London, GB', 'Amsterdam, NL', 'Mumbai, IN', 'New York, US'])
      expect(cities).toContain(office);
  });

  it.each([1, 2, 3])('seed %i holds every attack and benign class, at seed-dependent times', (seed) => {
    const t = tenant(seed);
    expect(new Set(t.labels.attacks.map((a) => a.class))).toEqual(new Set(ATTACK_CLASSES));
    expect(new Set(t.labels.benign!.map((b) => b.class))).toEqual(new Set(BENIGN_CLASSES));
    for (const a of t.labels.attacks) {
      expect(a.startMs).toBeGreaterThanOrEqual(t.labels.startMs + 7 * 86_400_000);
      expect(a.endMs).toBeLessThanOrEqual(t.labels.endMs);
    }
    if (seed > 1) expect(label(t, 'office-city').startMs).not.toBe(label(tenant(1), 'office-city').startMs);
  });

  it('holds every class at the smallest size too', () => {
    const t = generateSuiteTenant(5, 12);
    expect(new Set(t.labels.attacks.map((a) => a.class))).toEqual(new Set(ATTACK_CLASSES));
    expect(new Set(t.labels.benign!.map((b) => b.class))).toEqual(new Set(BENIGN_CLASSES));
    for (const l of [...t.labels.attacks, ...t.labels.benign!].filter((x) => x.class !== 'first-party')) {
      expect(l.startMs, l.id).toBeGreaterThanOrEqual(t.labels.startMs + 7 * DAY);
      expect(l.endMs, l.id).toBeLessThanOrEqual(t.labels.endMs);
    }
    expect(() => generateSuiteTenant(5, 11)).toThrow(/at least 12 whole days, got 11/);
  });
});

describe('suite addresses', () => {
  it.each([1, 2, 3])('seed %i: every labelled IP geolocates to the city its scenario intends', (seed) => {
    const t = tenant(seed);
    const labelled = [...t.labels.attacks, ...t.labels.benign!].filter((l) => l.ips.length > 0);
    for (const l of labelled) {
      const place = t.places.get(l.id);
      expect(place, l.id).toBeDefined();
      for (const ip of l.ips) expect(cityOf(ip), `${l.id} ${ip}`).toBe(`${place!.city}, ${place!.country}`);
    }
    const v6 = label(t, 'ipv6');
    expect(v6.ips.every((ip) => isIPv6(ip))).toBe(true);
  });

  it('every address of every place, IPv6 included, geolocates to its city', () => {
    const all: places.Place[] = [
      ...Object.values(places.OFFICES),
      ...Object.values(places.NEARBY).flat(),
      ...Object.values(places.DOMESTIC).flat(),
      ...Object.values(places.MOBILE_HUB),
      places.VPN_HOME,
      ...places.VPN_MOVES,
      ...places.ABROAD,
      ...places.HOSTILE,
      ...places.HOSTILE_V6,
      ...Object.values(places.AZURE),
      ...places.VPS_IN_AUTOMATION_CITY,
    ];
    for (const p of all) for (const ip of p.ips) expect(cityOf(ip), ip).toBe(`${p.city}, ${p.country}`);
    for (const [office, ips] of Object.entries(places.OFFICE_CITY_ATTACKER)) {
      const p = places.OFFICES[office as places.Office];
      for (const ip of ips) expect(cityOf(ip), ip).toBe(`${p.city}, ${p.country}`);
    }
  });
});

const benign = (t: SuiteTenant, cls: string) => t.labels.benign!.find((b) => b.class === cls)!;

describe.each([1, 2, 3])('seed %i: each scenario is what its label says', (seed) => {
  it('office city: the victim never worked from that office city, nobody ever did those operations there', () => {
    const t = tenant(seed);
    const a = label(t, 'office-city');
    const city = cityOf(a.ips[0]!);
    const attackOps = new Set(t.events.filter((e) => a.ips.includes(e.callerIp)).map((e) => e.operation));
    expect(
      before(t, a.startMs, (e) => e.callerType === 'user' && cityOf(e.callerIp) === city).length,
    ).toBeGreaterThan(100);
    expect(before(t, a.startMs, (e) => e.caller === a.caller && cityOf(e.callerIp) === city)).toEqual([]);
    expect(before(t, a.startMs, (e) => attackOps.has(e.operation) && cityOf(e.callerIp) === city)).toEqual(
      [],
    );
    expect(t.events.some((e) => e.caller === a.caller && attackOps.has(e.operation))).toBe(true);
  });

  it("same country: another city of the victim's country that the tenant never used before", () => {
    const t = tenant(seed);
    const a = label(t, 'same-country');
    const city = cityOf(a.ips[0]!);
    const countries = new Map<string, number>();
    for (const e of before(t, a.startMs, (x) => x.caller === a.caller))
      countries.set(cityOf(e.callerIp).slice(-2), (countries.get(cityOf(e.callerIp).slice(-2)) ?? 0) + 1);
    const home = [...countries].sort((x, y) => y[1] - x[1])[0]![0];
    expect(city.slice(-2)).toBe(home);
    expect(before(t, a.startMs, (e) => cityOf(e.callerIp) === city)).toEqual([]);
  });

  it("VPS: a city where the tenant's automation calls every day, from an address it never used", () => {
    const t = tenant(seed);
    const a = label(t, 'vps-automation-city');
    const city = cityOf(a.ips[0]!);
    const automationDays = new Set(
      before(t, a.startMs, (e) => e.callerType !== 'user' && cityOf(e.callerIp) === city).map((e) =>
        Math.floor((e.timeMs - t.labels.startMs) / DAY),
      ),
    );
    expect(automationDays.size).toBe(Math.floor((a.startMs - t.labels.startMs) / DAY) + 1);
    expect(before(t, a.startMs, (e) => a.ips.includes(e.callerIp))).toEqual([]);
  });

  it('low and slow: credential reads every 3–5 hours for two days, then escalation from the same addresses', () => {
    const t = tenant(seed);
    const recon = t.labels.attacks.find((a) => a.id === 'A8-recon')!;
    const esc = t.labels.attacks.find((a) => a.id === 'A8-escalation')!;
    const reads = t.events.filter(
      (e) => e.caller === recon.caller && recon.ips.includes(e.callerIp) && e.status === 'Started',
    );
    const reconReads = reads.filter((e) => e.timeMs <= recon.endMs);
    expect(reconReads.every((e) => e.operation === OPS.listKeys)).toBe(true);
    const gaps = reconReads.slice(1).map((e, i) => (e.timeMs - reconReads[i]!.timeMs) / 3_600_000);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(3);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(5);
    expect(recon.endMs - recon.startMs).toBeGreaterThan(1.8 * DAY);
    expect(esc.startMs).toBeGreaterThan(recon.endMs);
    expect(esc.ips).toEqual(recon.ips);
    expect(esc.requiredOperations).toEqual([OPS.roleAssign, OPS.kvPolicy]);
    expect(
      before(t, esc.startMs, (e) => e.caller === esc.caller && esc.requiredOperations!.includes(e.operation)),
    ).toEqual([]);
  });

  it('wave: several credentials within two hours from one city, through addresses none of them used', () => {
    const t = tenant(seed);
    const wave = t.labels.attacks.filter((a) => a.class === 'wave');
    expect(wave.length).toBeGreaterThanOrEqual(3);
    expect(new Set(wave.map((a) => a.caller)).size).toBe(wave.length);
    expect(new Set(wave.map((a) => cityOf(a.ips[0]!))).size).toBe(1);
    expect(
      Math.max(...wave.map((a) => a.endMs)) - Math.min(...wave.map((a) => a.startMs)),
    ).toBeLessThanOrEqual(2 * 3_600_000);
    const first = Math.min(...wave.map((a) => a.startMs));
    expect(before(t, first, (e) => wave[0]!.ips.includes(e.callerIp))).toEqual([]);
  });

  it('VPN move: every VPN user appears at the new egress after the move, nobody before', () => {
    const t = tenant(seed);
    const b = benign(t, 'vpn-move');
    const after = new Set(t.events.filter((e) => b.ips.includes(e.callerIp)).map((e) => e.caller));
    expect(before(t, b.startMs, (e) => b.ips.includes(e.callerIp))).toEqual([]);
    expect(after.size).toBeGreaterThan(b.callers.length * 0.8);
    for (const c of after) expect(b.callers).toContain(c);
  });

  it('holidays are a quiet week; the first-party identity roams many regions, new ones after the first week', () => {
    const t = tenant(seed);
    const h = benign(t, 'holidays');
    const userRows = (from: number, to: number) =>
      t.events.filter((e) => e.callerType === 'user' && e.timeMs >= from && e.timeMs < to).length;
    expect(userRows(h.startMs, h.endMs)).toBeLessThan(0.35 * userRows(h.startMs - 7 * DAY, h.startMs));
    const fp = benign(t, 'first-party').callers[0]!;
    const cityDay = new Map<string, number>();
    for (const e of t.events.filter((x) => x.caller === fp))
      if (!cityDay.has(cityOf(e.callerIp))) cityDay.set(cityOf(e.callerIp), e.timeMs);
    expect(cityDay.size).toBeGreaterThanOrEqual(8);
    expect([...cityDay.values()].some((ms) => ms > t.labels.startMs + 7 * DAY)).toBe(true);
  });
});

describe('session-token replay as exported', () => {
  it("keeps the victim's ipaddr in the claims and the attacker's CallerIpAddress; the reader takes the caller IP", async () => {
    const t = generateSuiteTenant(4, 12);
    const a = label(t, 'token-replay');
    const events = t.events.filter((e) => e.caller === a.caller && a.ips.includes(e.callerIp));
    expect(events.length).toBeGreaterThan(0);
    const file = join(tmpdir(), `uc-suite-token-${process.pid}.jsonl`);
    await writeActivityJsonl(events, t.tokenIps, file);
    const rows = (await readFile(file, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, Record<string, string>>);
    const own = new Set(
      t.events.filter((e) => e.caller === a.caller && !a.ips.includes(e.callerIp)).map((e) => e.callerIp),
    );
    for (const r of rows) {
      expect(a.ips).toContain(r.CallerIpAddress);
      expect(own).toContain(r.Claims_d!.ipaddr);
    }
    const read: ActivityEvent[] = [];
    for await (const e of readActivityFiles([file], newReadStats())) read.push(e);
    await rm(file);
    expect(read.map((e) => e.callerIp)).toEqual(events.map((e) => e.callerIp));
  });
});
