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

/** The seeded random source every choice of the demo comes from, in order, and the event log it writes to. */
interface TenantLog {
  rand: () => number;
  pick: <T>(xs: readonly T[]) => T;
  /** One management operation: Started and Succeeded (or Failed) rows sharing a correlation id. */
  emit: (timeMs: number, op: string, caller: string, callerType: CallerType, ip: string, rg?: string) => void;
  events: ActivityEvent[];
}

/** A credential-abuse scenario to write into the log when the demo spans more than `afterDays` days. */
interface PlannedAttack {
  afterDays: number;
  id: string;
  description: string;
  caller: string;
  callerType: CallerType;
  ips: string[];
  steps: [number, string][];
}

// Service principals and managed identities in Azure regions (West Europe = Amsterdam, North Europe = Dublin).
const DEPLOY_SP = '3c9e1f52-8a47-4d6b-b0e3-5f2a7c91d604';
const BACKUP_MI = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';
const SCALER_MI = '0f1e2d3c-4b5a-4968-8776-655443322110';
const COST_SP = 'c0575e7a-9e11-4c2b-a1d3-7e8f90a1b2c3';
const RUNNER_SP = '7d6c5b4a-3928-4716-a5b4-c3d2e1f00f1e';

const FIRST_NAMES = [
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
const LAST_NAMES = [
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

/** The demo tenant over `days` days: staff, automation, a runaway loop and labelled attacks, in time order. */
export function generateTenant(days = 42, seed = 20261130): DemoDataset {
  const log = tenantLog(seed);
  const people = contosoStaff();
  emitStaffActivity(log, people, days);
  emitAutomation(log, days);
  emitRunawayDeployLoop(log, days);
  const attacks = plannedAttacks(people)
    .filter((a) => days > a.afterDays)
    .map((a) => emitAttack(log, a));
  const events = log.events;
  events.sort((a, b) => a.timeMs - b.timeMs || a.eventDataId.localeCompare(b.eventDataId));
  return {
    events,
    labels: { startMs: DEMO_START, endMs: DEMO_START + days * DAY, attacks },
    people: people.length,
    servicePrincipals: 5,
    days,
  };
}

/** The seeded log: random choices, ids and the Started/Succeeded rows of each operation. */
function tenantLog(seed: number): TenantLog {
  const rand = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const uuid = () => {
    const h = Array.from({ length: 32 }, () => Math.floor(rand() * 16).toString(16)).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
  };
  const events: ActivityEvent[] = [];
  const emit: TenantLog['emit'] = (timeMs, op, caller, callerType, ip, rg = 'rg-web') => {
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
  return { rand, pick, emit, events };
}

/** The resource an operation acts on, named after its provider and type in the resource group. */
function resourceFor(op: string, rg: string): string {
  const parts = op.toLowerCase().split('/');
  const provider = parts[0] ?? 'microsoft.resources';
  const type = parts[1] ?? 'deployments';
  return `/subscriptions/${SUBSCRIPTION}/resourcegroups/${rg}/providers/${provider}/${type}/${type.slice(0, 6)}-${rg.slice(3)}`;
}

/** The staff: London headquarters, Amsterdam and Mumbai offices, a commuter, a traveller and a remote new hire. */
function contosoStaff(): Person[] {
  const people: Person[] = [];
  for (let i = 0; i < 16; i++) {
    people.push({
      upn: `${FIRST_NAMES[i]}.${LAST_NAMES[i]}@contoso.com`,
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
  return people;
}

/** Each person's working weekdays from their start, less leave and sick days. */
function emitStaffActivity(log: TenantLog, people: readonly Person[], days: number): void {
  for (const p of people) {
    for (let d = p.startDay; d < days; d++) {
      const weekday = ((d % 7) + 7) % 7; // DEMO_START is a Monday
      if (weekday >= 5) continue;
      if (log.rand() < 0.08) continue; // leave, sick days
      emitWorkday(log, p, d, weekday);
    }
  }
}

/** One person's working day: a few bursts of operations in local office hours, from where they work that day. */
function emitWorkday(log: TenantLog, p: Person, d: number, weekday: number): void {
  const { rand, pick } = log;
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
      log.emit(
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

/** The tenant's automation, every hour of every day. */
function emitAutomation(log: TenantLog, days: number): void {
  for (let d = 0; d < days; d++) {
    const weekday = ((d % 7) + 7) % 7;
    for (let h = 0; h < 24; h++) emitAutomationHour(log, d, weekday, h);
  }
}

/** One hour of automation: CI/CD, the AKS autoscaler, backups, Azure Policy, a build agent, a cost exporter. */
function emitAutomationHour(log: TenantLog, d: number, weekday: number, h: number): void {
  const { rand, pick, emit } = log;
  const hourStart = DEMO_START + d * DAY + h * HOUR;
  // CI/CD pipeline on working days: deployments, and the storage keys it fetches to upload artefacts.
  if (weekday < 5 && h >= 7 && h <= 17 && rand() < 0.7) {
    const ip = pick(PLACES.amsterdam.slice(3));
    const t = hourStart + rand() * 40 * MIN;
    emit(t, OPS.listKeys, DEPLOY_SP, 'servicePrincipal', ip, 'rg-data');
    emit(t + MIN, OPS.deploy, DEPLOY_SP, 'servicePrincipal', ip);
    emit(t + 3 * MIN, OPS.siteWrite, DEPLOY_SP, 'servicePrincipal', ip);
  }
  // AKS autoscaler (managed identity) every half hour, around the clock.
  emit(
    hourStart + 5 * MIN + rand() * 20 * MIN,
    OPS.vmssWrite,
    SCALER_MI,
    'managedIdentity',
    PLACES.amsterdam[4],
    'rg-aks',
  );
  emit(
    hourStart + 35 * MIN + rand() * 20 * MIN,
    OPS.vmssWrite,
    SCALER_MI,
    'managedIdentity',
    PLACES.amsterdam[4],
    'rg-aks',
  );
  // Nightly backups from North Europe.
  if (h >= 1 && h <= 3)
    emit(
      hourStart + rand() * 50 * MIN,
      OPS.snapshot,
      BACKUP_MI,
      'managedIdentity',
      pick(PLACES.dublin),
      'rg-data',
    );
  // Azure Policy evaluations: no caller IP (Azure-internal), counted as internal, never alerted on.
  if (h % 6 === 0) emit(hourStart + rand() * 30 * MIN, OPS.policyAudit, '', 'unknown', '', 'rg-web');
  // A self-hosted build agent on a private network: private IP, internal.
  if (weekday < 5 && h === 12)
    emit(hourStart + 10 * MIN, OPS.deploy, RUNNER_SP, 'servicePrincipal', '10.20.4.17');
  // New automation from day 28: a cost exporter doing a brand-new operation (learning: no alert).
  if (d >= 28 && h % 2 === 0)
    emit(hourStart + 7 * MIN, OPS.costExport, COST_SP, 'servicePrincipal', pick(PLACES.dublin), 'rg-data');
}

/** A runaway deployment loop: 10,000 events in one hour from the pipeline's usual city (one observation). */
function emitRunawayDeployLoop(log: TenantLog, days: number): void {
  if (days <= 12) return;
  const t = DEMO_START + 11 * DAY + 14 * HOUR;
  for (let k = 0; k < 5_000; k++)
    log.emit(t + k * 600, OPS.deploy, DEPLOY_SP, 'servicePrincipal', PLACES.amsterdam[5]);
}

/** Writes one attack's operations into the log and returns its label. */
function emitAttack(log: TenantLog, a: PlannedAttack): AttackLabel {
  const times = a.steps.map(([t]) => t);
  a.steps.forEach(([t, op], i) =>
    log.emit(t, op, a.caller, a.callerType, a.ips[i % a.ips.length]!, 'rg-data'),
  );
  return {
    id: a.id,
    description: a.description,
    caller: a.caller,
    ips: a.ips,
    startMs: Math.min(...times),
    endMs: Math.max(...times) + MIN,
  };
}

/** A time in the demo: day from DEMO_START, UTC hour and minute. */
const at = (day: number, hour: number, minute = 0) => DEMO_START + day * DAY + hour * HOUR + minute * MIN;

/** The labelled credential abuse, in the order it is written. */
function plannedAttacks(people: readonly Person[]): PlannedAttack[] {
  return [
    lagosAdmin(people[0]!.upn),
    moscowPipelineSecret(),
    saoPauloMining('priya.shah@contoso.com'),
    bucharestRoleGrant(people[2]!.upn),
    mumbaiAdmin(people[1]!.upn),
  ];
}

/** A1: an admin's account used from Lagos on a Saturday night. */
function lagosAdmin(admin: string): PlannedAttack {
  return {
    afterDays: 20,
    id: 'A1',
    description: `admin ${admin} signs in from Lagos at 03:10 on a Saturday: storage keys, role assignment, NSG rule`,
    caller: admin,
    callerType: 'user',
    ips: [...PLACES.lagos],
    steps: [
      [at(19, 3, 10), OPS.listKeys],
      [at(19, 3, 14), OPS.listKeys],
      [at(19, 3, 22), OPS.roleAssign],
      [at(19, 3, 31), OPS.nsgRule],
      [at(19, 3, 40), OPS.vmWrite],
    ],
  };
}

/** A2: the CI/CD service principal's secret used from Moscow. */
function moscowPipelineSecret(): PlannedAttack {
  return {
    afterDays: 25,
    id: 'A2',
    description:
      'CI/CD service principal secret used from a Moscow ISP: storage keys and a SQL firewall opening',
    caller: DEPLOY_SP,
    callerType: 'servicePrincipal',
    ips: [...PLACES.moscow],
    steps: [
      [at(24, 22, 40), OPS.listKeys],
      [at(24, 22, 44), OPS.containerWrite],
      [at(24, 22, 51), OPS.sqlFirewall],
    ],
  };
}

/** A3: a developer's token used from São Paulo every 4 hours for 3 days to mine crypto. */
function saoPauloMining(priya: string): PlannedAttack {
  const steps: [number, string][] = [];
  for (let k = 0; k < 18; k++) {
    steps.push([at(30, 1, 15) + k * 4 * HOUR, OPS.vmWrite]);
    steps.push([at(30, 1, 20) + k * 4 * HOUR, OPS.vmStart]);
  }
  return {
    afterDays: 33,
    id: 'A3',
    description: `developer ${priya}'s token used from São Paulo every 4 hours for 3 days to create VMs (crypto mining)`,
    caller: priya,
    callerType: 'user',
    ips: [...PLACES.saoPaulo],
    steps,
  };
}

/** A4: an account used from Bucharest in office hours for a role assignment and a Key Vault policy. */
function bucharestRoleGrant(sophie: string): PlannedAttack {
  return {
    afterDays: 36,
    id: 'A4',
    description: `${sophie} used from Bucharest during office hours: role assignment and Key Vault access policy`,
    caller: sophie,
    callerType: 'user',
    ips: [...PLACES.bucharest],
    steps: [
      [at(35, 14, 5), OPS.roleAssign],
      [at(35, 14, 12), OPS.kvPolicy],
    ],
  };
}

/** A5: an admin used from the tenant's own development office, never used for role assignments. */
function mumbaiAdmin(james: string): PlannedAttack {
  return {
    afterDays: 39,
    id: 'A5',
    description: `admin ${james} used from Mumbai — the tenant's development office, never used for role assignments`,
    caller: james,
    callerType: 'user',
    ips: [PLACES.mumbai[6]],
    steps: [
      [at(38, 10, 3), OPS.roleAssign],
      [at(38, 10, 9), OPS.kvPolicy],
    ],
  };
}
