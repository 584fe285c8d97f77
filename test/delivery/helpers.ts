import { randomBytes } from 'node:crypto';

import { DefaultAzureCredential } from '@azure/identity';
import { LogsIngestionClient } from '@azure/monitor-ingestion';

import { type Alert, alertIdFor, type OperationExplanation } from '../../shared/alerts/alert.js';
import { SqliteStore } from '../../shared/baseline/sqlite.js';
import type { BaselineStore } from '../../shared/baseline/store.js';
import { TableStorageStore } from '../../shared/baseline/tableStorage.js';
import type { AzuriteTables } from '../support/azurite.js';
import type { FakeIngestion } from '../support/fakeIngestion.js';

export const T0 = Date.parse('2025-03-10T08:15:00.000Z');
const MINUTE = 60_000;

export interface AlertShape {
  /** Tick time, minutes after T0 (default: i). */
  minute?: number;
  /** Characters of filler in Explanation.summary (large payloads). */
  explanationChars?: number;
}

/** A valid alert (every column of the right type), distinct per `i`. */
export function makeAlert(i: number, shape: AlertShape = {}): Alert {
  const tickMs = T0 + (shape.minute ?? i) * MINUTE;
  const filler = shape.explanationChars ?? 0;
  // Varied text (not one repeated character) so gzip cannot squeeze a big alert to nothing.
  const summary =
    `Operation ${i} from an unusual city. ` +
    (filler > 0
      ? randomBytes(Math.ceil(filler / 2))
          .toString('hex')
          .slice(0, filler)
      : '');
  const operation: OperationExplanation = {
    operation: 'Microsoft.Compute/virtualMachines/write',
    score: 87.5,
    hour: new Date(tickMs - (tickMs % 3_600_000)).toISOString(),
    sentence: 'Never seen from Lagos for this operation.',
    factors: { score: 87.5, rarity: 90, probability: 0.001 } as OperationExplanation['factors'],
  };
  return {
    TimeGenerated: new Date(tickMs).toISOString(),
    AlertId: alertIdFor(
      `user${i}@contoso.com`,
      'g:2332459',
      tickMs,
      'microsoft.compute/virtualmachines/write',
    ),
    AlertName: 'Azure operation from an unusual city',
    Severity: 'Medium',
    RiskScore: 50,
    AnomalyScore: 87.5,
    Description: `user${i}@contoso.com (user) performed Microsoft.Compute/virtualMachines/write from Lagos.`,
    Tactics: 'InitialAccess',
    Techniques: 'T1078,T1078.004',
    Operation: 'Microsoft.Compute/virtualMachines/write',
    Operations: ['Microsoft.Compute/virtualMachines/write'],
    Caller: `user${i}@contoso.com`,
    CallerType: 'user',
    SrcIpAddr: '102.89.0.1',
    SrcIpAddrs: ['102.89.0.1'],
    SrcGeoCity: 'Lagos',
    SrcGeoRegion: 'Lagos',
    SrcGeoCountry: 'NG',
    SrcGeoLatitude: 6.4474,
    SrcGeoLongitude: 3.3903,
    SubscriptionId: '00000000-0000-4000-8000-000000000001',
    ResourceGroup: 'rg-prod',
    ResourceIds: [`/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg-prod/vm${i}`],
    CorrelationIds: [`c0ffee00-0000-4000-8000-${String(i).padStart(12, '0')}`],
    EventCount: 3,
    FirstEventTime: new Date(tickMs - 30 * MINUTE).toISOString(),
    LastEventTime: new Date(tickMs - 20 * MINUTE).toISOString(),
    BaselineCities: [{ city: 'London', country: 'GB', latitude: 51.5164, longitude: -0.093, hours: 120.5 }],
    Explanation: { summary, operations: [operation] },
    DetectorVersion: 'unusual-city 0.1.0 m1',
    ParentAlertId: '',
    SrcGeoCityId: '2332459',
  };
}

export const makeAlerts = (n: number, shape: AlertShape = {}): Alert[] =>
  Array.from({ length: n }, (_, i) => makeAlert(i, shape));

export interface StoreKind {
  name: string;
  open(): Promise<BaselineStore>;
}

/** The outbox runs on both adapters: SQLite in memory and Table Storage on the file's in-process Azurite. */
export function storeKinds(azurite: () => AzuriteTables): StoreKind[] {
  return [
    { name: 'SQLite', open: () => Promise.resolve(SqliteStore.open(':memory:')) },
    {
      name: 'Table Storage (Azurite)',
      open: () =>
        TableStorageStore.open({
          endpoint: azurite().endpoint,
          credential: azurite().credential,
          tablePrefix: `t${randomBytes(6).toString('hex')}`,
          allowInsecureConnection: true,
        }),
    },
  ];
}

/**
 * The production client and credential chain, pointed at the fakes. SDK retries stay on but fast; `maxRetries: 0`
 * makes one failed request a failed chunk.
 */
export function ingestionClient(fake: FakeIngestion, maxRetries = 3): LogsIngestionClient {
  return new LogsIngestionClient(fake.endpoint, new DefaultAzureCredential(), {
    tlsOptions: { ca: fake.ca },
    retryOptions: { maxRetries, retryDelayInMs: 5, maxRetryDelayInMs: 20 },
  });
}

/** How often each AlertId reached the fake. */
export function receivedCounts(fake: FakeIngestion): Map<string, number> {
  const counts = new Map<string, number>();
  for (const row of fake.received) {
    const id = String(row.AlertId);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

export const receivedIds = (fake: FakeIngestion): string[] => fake.received.map((r) => String(r.AlertId));
