import type { ActivityEvent, CallerType } from '../activity/types.js';
import type { AttackLabel, Labels } from './evaluate.js';
import { mulberry32 } from './random.js';

/**
 * A deterministic, realistic multi-week Azure tenant ("Contoso") with labelled credential abuse.
 * IPs are real addresses chosen because the embedded 2019 GeoLite2-City places them in the named city
 * (test/demo/tenant.test.ts checks every one), so the demo exercises real geolocation.
 */
export const PLACES = {
  london: [
    '5.10.99.10',
    '31.221.99.10',
    '45.8.201.10',
    '45.83.7.10',
    '51.104.201.10',
    '51.145.99.10',
    '82.13.99.10',
  ],
  amsterdam: [
    '5.101.99.10',
    '5.153.7.10',
    '24.132.99.10',
    '31.160.7.10',
    '31.160.201.10',
    '37.58.99.10',
    '37.139.7.10',
  ],
  mumbai: [
    '1.6.7.10',
    '14.143.99.10',
    '27.4.7.10',
    '27.4.99.10',
    '27.4.201.10',
    '27.106.7.10',
    '42.107.7.10',
  ],
  frankfurt: ['46.101.99.10', '46.101.201.10'],
  dublin: ['31.169.99.10', '31.187.7.10', '37.0.7.10', '46.7.7.10'],
  newYork: ['24.90.99.10', '24.103.7.10'],
  manchester: ['2.98.7.10', '2.127.7.10', '79.71.99.10'],
  paris: ['5.48.99.10', '5.49.7.10'],
  lagos: ['41.58.99.10'],
  moscow: ['5.228.7.10'],
  saoPaulo: ['45.234.99.10', '143.107.99.10'],
  bucharest: ['5.12.7.10'],
} as const;

/** City (MaxMind English name) each place's IPs resolve to in the embedded database. */
export const PLACE_CITIES: Record<keyof typeof PLACES, string> = {
  london: 'London',
  amsterdam: 'Amsterdam',
  mumbai: 'Mumbai',
  frankfurt: 'Frankfurt am Main',
  dublin: 'Dublin',
  newYork: 'New York',
  manchester: 'Manchester',
  paris: 'Paris',
  lagos: 'Lagos',
  moscow: 'Moscow',
  saoPaulo: 'São Paulo',
  bucharest: 'Bucharest',
};

export const OPS = {
  deploy: 'MICROSOFT.RESOURCES/DEPLOYMENTS/WRITE',
  siteWrite: 'MICROSOFT.WEB/SITES/WRITE',
  siteRestart: 'MICROSOFT.WEB/SITES/RESTART/ACTION',
  vmStart: 'MICROSOFT.COMPUTE/VIRTUALMACHINES/START/ACTION',
  vmDeallocate: 'MICROSOFT.COMPUTE/VIRTUALMACHINES/DEALLOCATE/ACTION',
  vmWrite: 'MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE',
  vmssWrite: 'MICROSOFT.COMPUTE/VIRTUALMACHINESCALESETS/WRITE',
  snapshot: 'MICROSOFT.COMPUTE/SNAPSHOTS/WRITE',
  listKeys: 'MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION',
  containerWrite: 'MICROSOFT.STORAGE/STORAGEACCOUNTS/BLOBSERVICES/CONTAINERS/WRITE',
  roleAssign: 'MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE',
  kvPolicy: 'MICROSOFT.KEYVAULT/VAULTS/ACCESSPOLICIES/WRITE',
  nsgRule: 'MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/SECURITYRULES/WRITE',
  sqlFirewall: 'MICROSOFT.SQL/SERVERS/FIREWALLRULES/WRITE',
  alertRule: 'MICROSOFT.INSIGHTS/METRICALERTS/WRITE',
  tags: 'MICROSOFT.RESOURCES/TAGS/WRITE',
  costExport: 'MICROSOFT.COSTMANAGEMENT/EXPORTS/ACTION',
  policyAudit: 'MICROSOFT.AUTHORIZATION/POLICIES/AUDITIFNOTEXISTS/ACTION',
} as const;

const ROLE_OPS = {
  dev: [
    OPS.deploy,
    OPS.deploy,
    OPS.siteWrite,
    OPS.siteWrite,
    OPS.siteRestart,
    OPS.vmStart,
    OPS.vmDeallocate,
    OPS.containerWrite,
    OPS.tags,
    OPS.alertRule,
  ],
  ops: [OPS.vmStart, OPS.vmDeallocate, OPS.snapshot, OPS.alertRule, OPS.tags, OPS.siteRestart, OPS.deploy],
  admin: [
    OPS.deploy,
    OPS.roleAssign,
    OPS.kvPolicy,
    OPS.nsgRule,
    OPS.listKeys,
    OPS.vmWrite,
    OPS.sqlFirewall,
    OPS.tags,
    OPS.siteWrite,
  ],
} as const;
type Role = keyof typeof ROLE_OPS;

export const SUBSCRIPTION = '6f1c2a9e-3b7d-4e21-9c58-0d4f7a1b2c3d';
export const DEMO_START = Date.UTC(2026, 8, 7); // a Monday
const HOUR = 3_600_000;
const DAY = 86_400_000;
const MIN = 60_000;

interface Person {
  upn: string;
  role: Role;
  office: keyof typeof PLACES;
  /** Hours from UTC of the office (no DST: the demo spans autumn weeks). */
  utcOffset: number;
  homeIp: string;
  startDay: number;
  /** Works from this place on these weekdays (0 = Monday). */
  commute?: { place: keyof typeof PLACES; weekdays: number[] };
  travel?: { place: keyof typeof PLACES; fromDay: number; toDay: number };
}

export interface DemoDataset {
  events: ActivityEvent[];
  labels: Labels;
  people: number;
  servicePrincipals: number;
  days: number;
}

export function generateTenant(days = 42, seed = 20261130): DemoDataset {
  const rand = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const uuid = () => {
    const h = Array.from({ length: 32 }, () => Math.floor(rand() * 16).toString(16)).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
  };
  const events: ActivityEvent[] = [];

  const resourceFor = (op: string, rg: string): string => {
    const parts = op.toLowerCase().split('/');
    const provider = parts[0] ?? 'microsoft.resources';
    const type = parts[1] ?? 'deployments';
    return `/subscriptions/${SUBSCRIPTION}/resourcegroups/${rg}/providers/${provider}/${type}/${type.slice(0, 6)}-${rg.slice(3)}`;
  };
  /** One management operation: Started and Succeeded (or Failed) rows sharing a correlation id. */
  const emit = (
    timeMs: number,
    op: string,
    caller: string,
    callerType: CallerType,
    ip: string,
    rg = 'rg-web',
  ) => {
    const correlationId = uuid();
    const resourceId = resourceFor(op, rg);
    const base = {
      operation: op,
      operationKey: op.toLowerCase(),
      caller,
      callerType,
      callerIp: ip,
      category: op === OPS.policyAudit ? 'Policy' : 'Administrative',
      correlationId,
      subscriptionId: SUBSCRIPTION,
      resourceGroup: rg,
      resourceId,
    };
    events.push({ ...base, timeMs: Math.round(timeMs), status: 'Started', eventDataId: uuid() });
    events.push({
      ...base,
      timeMs: Math.round(timeMs + 2_000 + rand() * 40_000),
      status: rand() < 0.03 ? 'Failed' : 'Succeeded',
      eventDataId: uuid(),
    });
  };

  const firstNames = [
    'oliver',
    'james',
    'sophie',
    'emma',
    'harry',
    'amelia',
    'jack',
    'isla',
    'george',
    'ava',
    'noah',
    'mia',
    'leo',
    'grace',
    'oscar',
    'freya',
    'henry',
    'lily',
  ];
  const lastNames = [
    'hughes',
    'wilson',
    'turner',
    'clarke',
    'wright',
    'walker',
    'green',
    'hall',
    'wood',
    'king',
    'baker',
    'hill',
    'scott',
    'adams',
    'young',
    'allen',
    'evans',
    'price',
  ];
  const people: Person[] = [];
  for (let i = 0; i < 16; i++) {
    people.push({
      upn: `${firstNames[i]}.${lastNames[i]}@contoso.com`,
      role: i < 3 ? 'admin' : i < 12 ? 'dev' : 'ops',
      office: 'london',
      utcOffset: 0,
      homeIp: PLACES.london[i % PLACES.london.length]!,
      startDay: 0,
    });
  }
  const dutch = ['daan.visser', 'sanne.bakker', 'lucas.martin', 'emma.jansen', 'milan.smit', 'julia.mulder'];
  dutch.forEach((n, i) =>
    people.push({
      upn: `${n}@contoso.com`,
      role: i < 4 ? 'dev' : 'ops',
      office: 'amsterdam',
      utcOffset: 1,
      homeIp: PLACES.amsterdam[(i + 2) % PLACES.amsterdam.length]!,
      startDay: 0,
    }),
  );
  ['priya.shah', 'arjun.mehta', 'ananya.iyer', 'rohan.desai', 'kavya.nair'].forEach((n, i) =>
    people.push({
      upn: `${n}@contoso.com`,
      role: 'dev',
      office: 'mumbai',
      utcOffset: 5.5,
      homeIp: PLACES.mumbai[(i + 3) % PLACES.mumbai.length]!,
      startDay: 0,
    }),
  );
  // A Dutch ops engineer who works from Paris on Fridays; a Londoner who travels to New York for a week.
  people.find((p) => p.upn.startsWith('lucas.martin'))!.commute = { place: 'paris', weekdays: [4] };
  people.find((p) => p.upn.startsWith('emma.clarke'))!.travel = { place: 'newYork', fromDay: 15, toDay: 18 };
  // A new hire working remotely from Manchester from week 4.
  people.push({
    upn: 'liam.novak@contoso.com',
    role: 'dev',
    office: 'manchester',
    utcOffset: 0,
    homeIp: PLACES.manchester[0],
    startDay: 22,
  });

  for (const p of people) {
    for (let d = p.startDay; d < days; d++) {
      const weekday = ((d % 7) + 7) % 7; // DEMO_START is a Monday
      if (weekday >= 5) continue;
      if (rand() < 0.08) continue; // leave, sick days
      const traveling = p.travel && d >= p.travel.fromDay && d <= p.travel.toDay ? p.travel.place : undefined;
      const commuting = p.commute && p.commute.weekdays.includes(weekday) ? p.commute.place : undefined;
      const offset = traveling === 'newYork' ? -4 : p.utcOffset;
      const bursts = 2 + Math.floor(rand() * 4);
      const hours = new Set<number>();
      while (hours.size < bursts) hours.add(9 + Math.floor(rand() * 9));
      for (const localHour of hours) {
        let ip: string;
        if (traveling) ip = pick(PLACES[traveling]);
        else if (commuting) ip = pick(PLACES[commuting]);
        else {
          const r = rand();
          // Office egress, home broadband in the same city, or the corporate VPN concentrator in Frankfurt.
          ip = r < 0.45 ? PLACES[p.office][0] : r < 0.75 ? p.homeIp : pick(PLACES.frankfurt);
        }
        const t0 = DEMO_START + d * DAY + (localHour - offset) * HOUR + rand() * 50 * MIN;
        const n = 1 + Math.floor(rand() * 4);
        for (let k = 0; k < n; k++) {
          emit(
            t0 + k * 2 * MIN,
            pick(ROLE_OPS[p.role]),
            p.upn,
            'user',
            ip,
            pick(['rg-web', 'rg-data', 'rg-aks']),
          );
        }
      }
    }
  }

  // Service principals and managed identities in Azure regions (West Europe = Amsterdam, North Europe = Dublin).
  const deploySp = '3c9e1f52-8a47-4d6b-b0e3-5f2a7c91d604';
  const backupMi = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';
  const scalerMi = '0f1e2d3c-4b5a-4968-8776-655443322110';
  const costSp = 'c0575e7a-9e11-4c2b-a1d3-7e8f90a1b2c3';
  const runnerSp = '7d6c5b4a-3928-4716-a5b4-c3d2e1f00f1e';
  for (let d = 0; d < days; d++) {
    const weekday = ((d % 7) + 7) % 7;
    for (let h = 0; h < 24; h++) {
      const hourStart = DEMO_START + d * DAY + h * HOUR;
      // CI/CD pipeline on working days: deployments, and the storage keys it fetches to upload artefacts.
      if (weekday < 5 && h >= 7 && h <= 17 && rand() < 0.7) {
        const ip = pick(PLACES.amsterdam.slice(3));
        const t = hourStart + rand() * 40 * MIN;
        emit(t, OPS.listKeys, deploySp, 'servicePrincipal', ip, 'rg-data');
        emit(t + MIN, OPS.deploy, deploySp, 'servicePrincipal', ip);
        emit(t + 3 * MIN, OPS.siteWrite, deploySp, 'servicePrincipal', ip);
      }
      // AKS autoscaler (managed identity) every half hour, around the clock.
      emit(
        hourStart + 5 * MIN + rand() * 20 * MIN,
        OPS.vmssWrite,
        scalerMi,
        'managedIdentity',
        PLACES.amsterdam[4],
        'rg-aks',
      );
      emit(
        hourStart + 35 * MIN + rand() * 20 * MIN,
        OPS.vmssWrite,
        scalerMi,
        'managedIdentity',
        PLACES.amsterdam[4],
        'rg-aks',
      );
      // Nightly backups from North Europe.
      if (h >= 1 && h <= 3)
        emit(
          hourStart + rand() * 50 * MIN,
          OPS.snapshot,
          backupMi,
          'managedIdentity',
          pick(PLACES.dublin),
          'rg-data',
        );
      // Azure Policy evaluations: no caller IP (Azure-internal), counted as internal, never alerted on.
      if (h % 6 === 0) emit(hourStart + rand() * 30 * MIN, OPS.policyAudit, '', 'unknown', '', 'rg-web');
      // A self-hosted build agent on a private network: private IP, internal.
      if (weekday < 5 && h === 12)
        emit(hourStart + 10 * MIN, OPS.deploy, runnerSp, 'servicePrincipal', '10.20.4.17');
      // New automation from day 28: a cost exporter doing a brand-new operation (learning: no alert).
      if (d >= 28 && h % 2 === 0)
        emit(hourStart + 7 * MIN, OPS.costExport, costSp, 'servicePrincipal', pick(PLACES.dublin), 'rg-data');
    }
  }
  // A runaway deployment loop: 10,000 events in one hour from the pipeline's usual city (one observation).
  if (days > 12) {
    const t = DEMO_START + 11 * DAY + 14 * HOUR;
    for (let k = 0; k < 5_000; k++)
      emit(t + k * 600, OPS.deploy, deploySp, 'servicePrincipal', PLACES.amsterdam[5]);
  }

  // Labelled credential abuse.
  const attacks: AttackLabel[] = [];
  const attack = (
    id: string,
    description: string,
    caller: string,
    callerType: CallerType,
    ips: string[],
    steps: [number, string][],
  ) => {
    const times = steps.map(([t]) => t);
    steps.forEach(([t, op], i) => emit(t, op, caller, callerType, ips[i % ips.length]!, 'rg-data'));
    attacks.push({
      id,
      description,
      caller,
      ips,
      startMs: Math.min(...times),
      endMs: Math.max(...times) + MIN,
    });
  };
  const at = (day: number, hour: number, minute = 0) => DEMO_START + day * DAY + hour * HOUR + minute * MIN;
  const admin = people[0]!.upn;
  if (days > 20) {
    attack(
      'A1',
      `admin ${admin} signs in from Lagos at 03:10 on a Saturday: storage keys, role assignment, NSG rule`,
      admin,
      'user',
      [...PLACES.lagos],
      [
        [at(19, 3, 10), OPS.listKeys],
        [at(19, 3, 14), OPS.listKeys],
        [at(19, 3, 22), OPS.roleAssign],
        [at(19, 3, 31), OPS.nsgRule],
        [at(19, 3, 40), OPS.vmWrite],
      ],
    );
  }
  if (days > 25) {
    attack(
      'A2',
      'CI/CD service principal secret used from a Moscow ISP: storage keys and a SQL firewall opening',
      deploySp,
      'servicePrincipal',
      [...PLACES.moscow],
      [
        [at(24, 22, 40), OPS.listKeys],
        [at(24, 22, 44), OPS.containerWrite],
        [at(24, 22, 51), OPS.sqlFirewall],
      ],
    );
  }
  const priya = 'priya.shah@contoso.com';
  if (days > 33) {
    const steps: [number, string][] = [];
    for (let k = 0; k < 18; k++) {
      steps.push([at(30, 1, 15) + k * 4 * HOUR, OPS.vmWrite]);
      steps.push([at(30, 1, 20) + k * 4 * HOUR, OPS.vmStart]);
    }
    attack(
      'A3',
      `developer ${priya}'s token used from São Paulo every 4 hours for 3 days to create VMs (crypto mining)`,
      priya,
      'user',
      [...PLACES.saoPaulo],
      steps,
    );
  }
  const sophie = people[2]!.upn;
  if (days > 36) {
    attack(
      'A4',
      `${sophie} used from Bucharest during office hours: role assignment and Key Vault access policy`,
      sophie,
      'user',
      [...PLACES.bucharest],
      [
        [at(35, 14, 5), OPS.roleAssign],
        [at(35, 14, 12), OPS.kvPolicy],
      ],
    );
  }
  const james = people[1]!.upn;
  if (days > 39) {
    attack(
      'A5',
      `admin ${james} used from Mumbai — the tenant's development office, never used for role assignments`,
      james,
      'user',
      [PLACES.mumbai[6]],
      [
        [at(38, 10, 3), OPS.roleAssign],
        [at(38, 10, 9), OPS.kvPolicy],
      ],
    );
  }

  events.sort((a, b) => a.timeMs - b.timeMs || a.eventDataId.localeCompare(b.eventDataId));
  return {
    events,
    labels: { startMs: DEMO_START, endMs: DEMO_START + days * DAY, attacks },
    people: people.length,
    servicePrincipals: 5,
    days,
  };
}
