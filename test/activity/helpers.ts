import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll } from 'vitest';

import { newReadStats, readActivityFile, type ReadOptions } from '../../shared/activity/read.js';
import type { ActivityEvent, CallerType, ReadStats } from '../../shared/activity/types.js';
import { mulberry32 } from '../../shared/demo/random.js';

export const FIXTURES = fileURLToPath(new URL('../fixtures/activity/', import.meta.url));

export function fixture(name: string): string {
  return join(FIXTURES, name);
}

export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'activity-test-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * A temporary directory for the tests of this file: made before them, removed after them. Returns the path of
 * `name` in it (call it from tests or hooks).
 */
export function useTempDir(): (name: string) => string {
  let dir: string | undefined;
  let cleanup: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  afterAll(async () => {
    await cleanup?.();
  });
  return (name) => {
    if (dir === undefined) throw new Error('the temporary directory is used before beforeAll made it');
    return join(dir, name);
  };
}

export async function readAll(
  path: string,
  opts: ReadOptions = {},
): Promise<{ events: ActivityEvent[]; stats: ReadStats; warnings: string[] }> {
  const stats = newReadStats();
  const warnings: string[] = [];
  const events: ActivityEvent[] = [];
  for await (const ev of readActivityFile(path, stats, { onWarning: (w) => warnings.push(w), ...opts })) {
    events.push(ev);
  }
  return { events, stats, warnings };
}

export function totalSkipped(stats: ReadStats): number {
  return Object.values(stats.skipped).reduce((a, b) => a + b, 0);
}

function guid(rnd: () => number): string {
  const hex = (n: number): string =>
    Math.floor(rnd() * 16 ** n)
      .toString(16)
      .padStart(n, '0');
  return `${hex(8)}-${hex(4)}-4${hex(3)}-8${hex(3)}-${hex(6)}${hex(6)}`;
}

const OPERATIONS = [
  'Microsoft.Storage/storageAccounts/listKeys/action',
  'MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTACCOUNTSAS/ACTION',
  'Microsoft.Compute/virtualMachines/write',
  'Microsoft.KeyVault/vaults/secrets/read',
  'Microsoft.Authorization/roleAssignments/write',
  'Microsoft.Network/networkSecurityGroups/securityRules/write',
];
const CALLER_TYPES: CallerType[] = ['user', 'servicePrincipal', 'managedIdentity', 'unknown'];
const STATUSES = ['Started', 'Accepted', 'Succeeded', 'Failed'];
const CATEGORIES = ['Administrative', 'Policy', 'Security'];
const SUBSCRIPTIONS = ['1b2c3d4e-0000-4000-8000-00000000abcd', '9a8b7c6d-1111-4222-8333-444455556666'];

/** Realistic, varied events covering every caller type and resource id shape. */
export function* generateEvents(count: number, seed = 7): Generator<ActivityEvent> {
  const rnd = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const base = Date.UTC(2024, 0, 1);
  for (let i = 0; i < count; i++) {
    const callerType = CALLER_TYPES[i % CALLER_TYPES.length]!;
    const caller =
      callerType === 'user'
        ? `user${Math.floor(rnd() * 50)}@contoso.com`
        : callerType === 'unknown'
          ? i % 8 === 3
            ? 'Microsoft.PolicyInsights'
            : ''
          : guid(rnd);
    const operation = pick(OPERATIONS);
    const subscriptionId = pick(SUBSCRIPTIONS);
    const shape = i % 5;
    let resourceId: string;
    let resourceGroup: string;
    if (shape === 0) {
      resourceGroup = 'RG-PROD';
      resourceId = `/SUBSCRIPTIONS/${subscriptionId.toUpperCase()}/RESOURCEGROUPS/RG-PROD/PROVIDERS/MICROSOFT.STORAGE/STORAGEACCOUNTS/ST${i}`;
    } else if (shape === 1) {
      resourceGroup = '';
      resourceId = `/subscriptions/${subscriptionId}/providers/Microsoft.Authorization/roleAssignments/${guid(rnd)}`;
    } else {
      resourceGroup = `rg-${shape}`;
      resourceId = `/subscriptions/${subscriptionId}/resourcegroups/rg-${shape}/providers/microsoft.compute/virtualmachines/vm${i}`;
    }
    const ipShape = i % 7;
    const callerIp =
      ipShape === 0
        ? ''
        : ipShape === 1
          ? `2001:db8::${Math.floor(rnd() * 65535).toString(16)}`
          : `${Math.floor(rnd() * 223) + 1}.${Math.floor(rnd() * 256)}.${Math.floor(rnd() * 256)}.${Math.floor(rnd() * 256)}`;
    yield {
      timeMs: base + Math.floor(rnd() * 365 * 86_400_000),
      operation,
      operationKey: operation.toLowerCase(),
      caller,
      callerType,
      callerIp,
      category: pick(CATEGORIES),
      status: pick(STATUSES),
      correlationId: guid(rnd),
      eventDataId: i % 11 === 5 ? '' : guid(rnd),
      subscriptionId,
      resourceGroup,
      resourceId,
    };
  }
}

export function makeEvents(count: number, seed = 7): ActivityEvent[] {
  return [...generateEvents(count, seed)];
}
