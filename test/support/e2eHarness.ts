/**
 * The end-to-end harness: the local managed-identity endpoint (installed in process.env, so the production
 * credential chain finds it), Azurite's Table service (and, on request, its Queue service) in-process, the local
 * https Log Analytics and Logs Ingestion services — and the app settings that point the function at them.
 * Nothing leaves 127.0.0.1.
 */
import { TableStorageStore } from '../../shared/baseline/tableStorage.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, type AzuriteTables, startAzurite } from './azurite.js';
import { type AzuriteQueues, startAzuriteQueue } from './azuriteQueue.js';
import { FAKE_DCR_ID, type FakeIngestion, startFakeIngestion } from './fakeIngestion.js';
import { type AzureActivityRow, type FakeLogAnalytics, startFakeLogAnalytics } from './fakeLogAnalytics.js';
import { type FakeIdentity, startFakeIdentity } from './identity.js';
import { testCertificate } from './tls.js';

/** The Log Analytics workspace of the harness's settings. */
export const WORKSPACE = '0b0e2f5c-5c1e-4a57-9d4e-2f5b4c9e1a11';

/** The local services the settings can point at: Log Analytics and the identity always, the rest if given. */
export interface AzureServices {
  identity: FakeIdentity;
  logs: FakeLogAnalytics;
  azurite?: AzuriteTables;
  queues?: AzuriteQueues;
  ingestion?: FakeIngestion;
}

/**
 * App settings for the local services: managed identity, workspace WORKSPACE, Log Analytics, a five-minute run
 * budget, and — where started — the storage connection string (Table and Queue endpoints) and Logs Ingestion
 * with its DCR; then `overrides`.
 */
export function azureEnv(s: AzureServices, overrides: Record<string, string> = {}): Record<string, string> {
  const endpoints = [
    ...(s.azurite ? [`TableEndpoint=${s.azurite.endpoint}`] : []),
    ...(s.queues ? [`QueueEndpoint=${s.queues.endpoint}`] : []),
  ];
  return {
    IDENTITY_ENDPOINT: s.identity.endpoint,
    IDENTITY_HEADER: s.identity.header,
    UC_WORKSPACE_ID: WORKSPACE,
    UC_LOGS_ENDPOINT: s.logs.endpoint,
    ...(endpoints.length > 0 && {
      UC_STORAGE_CONNECTION_STRING: [
        'DefaultEndpointsProtocol=http',
        `AccountName=${AZURITE_ACCOUNT}`,
        `AccountKey=${AZURITE_KEY}`,
        ...endpoints,
      ].join(';'),
    }),
    ...(s.ingestion && { UC_INGESTION_ENDPOINT: s.ingestion.endpoint, UC_DCR_IMMUTABLE_ID: FAKE_DCR_ID }),
    UC_RUN_BUDGET: '5m',
    ...overrides,
  };
}

export interface Harness extends AzureServices {
  azurite: AzuriteTables;
  ingestion: FakeIngestion;
  /** PEM of the certificate the https fakes use: pass as `tlsCa`. */
  ca: string;
  /** azureEnv for these services. */
  env(overrides?: Record<string, string>): Record<string, string>;
  /** A store on this Azurite with the given table prefix, closed by stop(). */
  tableStore(prefix: string): Promise<TableStorageStore>;
  /** Restores process.env, closes the stores and stops every service. */
  stop(): Promise<void>;
}

/** Starts the services (Azurite's Queue service too with `queues: true`); Log Analytics answers from `rows`. */
export async function startHarness(o: {
  rows: AzureActivityRow[];
  queues: true;
}): Promise<Harness & { queues: AzuriteQueues }>;
export async function startHarness(o: { rows: AzureActivityRow[]; queues?: false }): Promise<Harness>;
export async function startHarness(o: { rows: AzureActivityRow[]; queues?: boolean }): Promise<Harness> {
  const identity = await startFakeIdentity();
  const restoreEnv = identity.install();
  const azurite = await startAzurite();
  const queues = o.queues ? await startAzuriteQueue() : undefined;
  const logs = await startFakeLogAnalytics({ rows: o.rows });
  const ingestion = await startFakeIngestion();
  const ca = (await testCertificate()).cert;
  const stores: TableStorageStore[] = [];
  const harness: Harness = {
    identity,
    azurite,
    ...(queues && { queues }),
    logs,
    ingestion,
    ca,
    env: (overrides) => azureEnv(harness, overrides),
    tableStore: async (prefix) => {
      const store = await TableStorageStore.open({
        endpoint: azurite.endpoint,
        credential: azurite.credential,
        tablePrefix: prefix,
        allowInsecureConnection: true,
      });
      stores.push(store);
      return store;
    },
    stop: async () => {
      restoreEnv();
      await Promise.all([...stores.map((s) => s.close()), logs.close(), ingestion.close(), identity.close()]);
      await Promise.all([azurite.stop(), queues?.stop()]);
    },
  };
  return harness;
}
