import type { CallerType } from '../../activity/types.js';
import { OPS } from '../tenant.js';
import {
  ABROAD,
  AZURE,
  type AzureRegion,
  DOMESTIC,
  MOBILE_HUB,
  NEARBY,
  NEW_AUTOMATION_REGIONS,
  type Office,
  OFFICES,
  type Place,
  VPN_HOME,
  VPN_MOVES,
} from './places.js';

/** Seeded choices: every decision of the generator goes through one of these, in a fixed order. */
export class Dice {
  constructor(readonly rand: () => number) {}
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.rand() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rand() * xs.length)]!;
  }
  /** Removes and returns a random element: for choices that must differ within a seed. */
  draw<T>(xs: T[]): T {
    return xs.splice(Math.floor(this.rand() * xs.length), 1)[0]!;
  }
}

export const ROLE_OPS = {
  dev: [OPS.deploy, OPS.deploy, OPS.siteWrite, OPS.siteRestart, OPS.vmStart, OPS.containerWrite, OPS.tags],
  ops: [OPS.vmStart, OPS.vmDeallocate, OPS.snapshot, OPS.alertRule, OPS.tags, OPS.siteRestart],
  admin: [OPS.deploy, OPS.roleAssign, OPS.kvPolicy, OPS.nsgRule, OPS.listKeys, OPS.vmWrite, OPS.tags],
} as const;
export type Role = keyof typeof ROLE_OPS;

export interface Person {
  upn: string;
  role: Role;
  office: Office;
  /** Where they live and work when not in the office: the office city, or a new hire's own city. */
  home: Place;
  homeIp: string;
  startDay: number;
  usesVpn: boolean;
  trip?: { place: Place; fromDay: number; toDay: number };
  nearbyDay?: { place: Place; day: number };
  mobile?: { place: Place; days: number[] };
}

export interface Automation {
  id: string;
  callerType: CallerType;
  description: string;
  region: AzureRegion;
  operations: readonly string[];
  everyMinutes: number;
  /** Runs only in these UTC hours on working days (CI/CD); around the clock when absent. */
  workingHours?: [number, number];
  /** From this day it also runs in a region the tenant never used. */
  newRegion?: { region: AzureRegion; fromDay: number };
}

export interface World {
  days: number;
  people: Person[];
  automation: Automation[];
  firstParty: { id: string; regions: AzureRegion[] };
  vpn: { from: Place; to: Place; moveDay: number };
  holiday: { fromDay: number; toDay: number };
  /** Cities used by a benign episode of this seed (new hire): attacks avoid them. */
  taken: Set<string>;
}

const NAMES: Record<Office, string[]> = {
  london: [
    'oliver.hughes',
    'james.wilson',
    'sophie.turner',
    'emma.clarke',
    'harry.wright',
    'amelia.walker',
    'jack.green',
    'isla.hall',
    'george.wood',
    'ava.king',
    'noah.baker',
  ],
  amsterdam: [
    'daan.visser',
    'sanne.bakker',
    'lucas.martin',
    'emma.jansen',
    'milan.smit',
    'julia.mulder',
    'bram.devries',
    'lotte.bos',
  ],
  mumbai: [
    'priya.shah',
    'arjun.mehta',
    'ananya.iyer',
    'rohan.desai',
    'kavya.nair',
    'vikram.rao',
    'meera.joshi',
    'aditya.kulkarni',
  ],
  newYork: [
    'michael.brown',
    'sarah.miller',
    'david.garcia',
    'jessica.lee',
    'daniel.martinez',
    'ashley.taylor',
    'ryan.anderson',
    'megan.thomas',
  ],
};

/** Admins sit in London and New York only: nobody ever assigns roles from Amsterdam or Mumbai. */
function roleOf(office: Office, i: number): Role {
  if (office === 'london' || office === 'newYork') return i < 3 ? 'admin' : i < 7 ? 'dev' : 'ops';
  return i < 5 ? 'dev' : 'ops';
}

function staff(dice: Dice): Person[] {
  const people: Person[] = [];
  for (const office of Object.keys(NAMES) as Office[]) {
    const place = OFFICES[office];
    NAMES[office].forEach((name, i) =>
      people.push({
        upn: `${name}@contoso.com`,
        role: roleOf(office, i),
        office,
        home: place,
        homeIp: place.ips[1 + (i % (place.ips.length - 1))]!,
        startDay: 0,
        usesVpn: dice.rand() < 0.4,
      }),
    );
  }
  return people;
}

/** The tenant's eight automation identities, each in its Azure region. */
function automation(): Automation[] {
  const a = (
    id: string,
    callerType: CallerType,
    description: string,
    region: AzureRegion,
    operations: readonly string[],
    everyMinutes: number,
    workingHours?: [number, number],
  ): Automation => ({
    id,
    callerType,
    description,
    region,
    operations,
    everyMinutes,
    ...(workingHours ? { workingHours } : {}),
  });
  return [
    a(
      '3c9e1f52-8a47-4d6b-b0e3-5f2a7c91d604',
      'servicePrincipal',
      'CI/CD pipeline',
      'westEurope',
      [OPS.listKeys, OPS.deploy, OPS.siteWrite],
      20,
      [7, 18],
    ),
    a(
      '0f1e2d3c-4b5a-4968-8776-655443322110',
      'managedIdentity',
      'AKS autoscaler',
      'westEurope',
      [OPS.vmssWrite],
      5,
    ),
    a(
      '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d',
      'managedIdentity',
      'nightly backup',
      'northEurope',
      [OPS.snapshot],
      60,
    ),
    a(
      '5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a',
      'servicePrincipal',
      'DR storage sync',
      'northEurope',
      [OPS.containerWrite],
      5,
    ),
    a(
      '7e6f5a4b-3c2d-4e1f-9a8b-7c6d5e4f3a2b',
      'servicePrincipal',
      'monitoring as code',
      'ukSouth',
      [OPS.alertRule, OPS.tags],
      30,
    ),
    a(
      '2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d',
      'servicePrincipal',
      'US web app deployer',
      'eastUs2',
      [OPS.deploy, OPS.siteRestart],
      60,
    ),
    a(
      '8f9e0d1c-2b3a-4c5d-8e6f-7a8b9c0d1e2f',
      'managedIdentity',
      'India batch scheduler',
      'centralIndia',
      [OPS.vmStart, OPS.vmDeallocate],
      15,
    ),
    a(
      'c0575e7a-9e11-4c2b-a1d3-7e8f90a1b2c3',
      'servicePrincipal',
      'cost exporter',
      'eastUs',
      [OPS.costExport],
      120,
    ),
  ];
}

/** First day an episode may start: after the tenant's learning week. */
const warm = (days: number) => Math.min(days - 2, Math.max(8, Math.floor(days * 0.3)));

/** One seed's people, automation and benign novelties, chosen in a fixed order from the dice. */
export function buildWorld(dice: Dice, days: number): World {
  const people = staff(dice);
  const taken = new Set<string>();
  const late = () => dice.int(warm(days), days - 2);
  // New hire: remote, in a city of their office's country that the tenant never used.
  const hireOffice = dice.pick<Office>(['london', 'amsterdam', 'mumbai', 'newYork']);
  const hireHome = dice.pick(DOMESTIC[hireOffice]);
  taken.add(hireHome.city);
  people.push({
    upn: 'nova.hire@contoso.com',
    role: 'dev',
    office: hireOffice,
    home: hireHome,
    homeIp: hireHome.ips[0]!,
    startDay: late(),
    usesVpn: false,
  });
  const regular = people.filter((p) => p.startDay === 0);
  const traveller = dice.pick(regular);
  const tripFrom = late();
  traveller.trip = {
    place: dice.pick(ABROAD),
    fromDay: tripFrom,
    toDay: Math.min(days - 1, tripFrom + dice.int(2, 4)),
  };
  const visitor = dice.pick(regular.filter((p) => p !== traveller));
  visitor.nearbyDay = { place: dice.pick(NEARBY[visitor.office]), day: late() };
  const mobileOffice = dice.pick<Office>(['mumbai', 'newYork']);
  for (const p of regular.filter((q) => q.office === mobileOffice).slice(0, 3)) {
    const first = late();
    p.mobile = {
      place: MOBILE_HUB[mobileOffice]!,
      days: [first, Math.min(days - 1, first + dice.int(1, 3))],
    };
  }
  const autos = automation();
  const grower = dice.pick(autos.filter((a) => a.everyMinutes <= 60));
  grower.newRegion = { region: dice.pick(NEW_AUTOMATION_REGIONS), fromDay: late() };
  const holidayFrom = dice.int(warm(days), Math.max(warm(days), days - 7));
  const firstPartyRegions = (Object.keys(AZURE) as AzureRegion[]).filter(
    (r) => !NEW_AUTOMATION_REGIONS.includes(r),
  );
  return {
    days,
    people,
    automation: autos,
    firstParty: { id: '1d78a85d-813d-46f0-b496-dd72f50a3ec0', regions: firstPartyRegions },
    vpn: { from: VPN_HOME, to: dice.pick(VPN_MOVES), moveDay: late() },
    holiday: { fromDay: holidayFrom, toDay: Math.min(days - 1, holidayFrom + 6) },
    taken,
  };
}
