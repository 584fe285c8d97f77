import { AzureNamedKeyCredential } from '@azure/data-tables';
import { DefaultAzureCredential, type TokenCredential } from '@azure/identity';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';

import { TableStorageStore } from '../baseline/tableStorage.js';
import { type Settings, SettingsError } from '../config/settings.js';

/** Azurite's published development account: only ever used with loopback endpoints (local development). */
const DEV_ACCOUNT = 'devstoreaccount1';
const DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/** Settings the timer cannot run without; checked at start-up with one message naming every missing one. */
export function requireRuntimeSettings(s: Settings): void {
  const missing: { name: string; value: string; allowed: string }[] = [];
  const need = (name: string, value: string, allowed: string) => {
    if (value === '') missing.push({ name, value, allowed });
  };
  need(
    'UC_WORKSPACE_ID',
    s.UC_WORKSPACE_ID,
    'the id (GUID) of the Log Analytics workspace holding AzureActivity',
  );
  if (s.UC_TABLE_ENDPOINT === '' && s.UC_STORAGE_CONNECTION_STRING === '') {
    missing.push({
      name: 'UC_TABLE_ENDPOINT',
      value: '',
      allowed:
        'the Table service URL of the state storage account (or UC_STORAGE_CONNECTION_STRING for local development)',
    });
  }
  need(
    'UC_INGESTION_ENDPOINT',
    s.UC_INGESTION_ENDPOINT,
    'the Logs Ingestion endpoint (DCE or DCR endpoint URL)',
  );
  need(
    'UC_DCR_IMMUTABLE_ID',
    s.UC_DCR_IMMUTABLE_ID,
    'the immutable id of the alerts data collection rule (dcr-…)',
  );
  if (missing.length > 0) throw new SettingsError(missing);
}

/** Managed identity in Azure (user-assigned when AZURE_CLIENT_ID is set); developer sign-in locally. */
export function createCredential(env: Readonly<Record<string, string | undefined>>): TokenCredential {
  const clientId = env.AZURE_CLIENT_ID?.trim();
  return clientId
    ? new DefaultAzureCredential({ managedIdentityClientId: clientId })
    : new DefaultAzureCredential();
}

interface LocalStorage {
  tableEndpoint?: string;
  blobEndpoint?: string;
  credential: AzureNamedKeyCredential;
}

/** Parses a local-development connection string (validated by settings to point at loopback only). */
export function parseLocalConnectionString(text: string): LocalStorage {
  if (/^UseDevelopmentStorage=true$/i.test(text.trim())) {
    return {
      tableEndpoint: `http://127.0.0.1:10002/${DEV_ACCOUNT}`,
      blobEndpoint: `http://127.0.0.1:10000/${DEV_ACCOUNT}`,
      credential: new AzureNamedKeyCredential(DEV_ACCOUNT, DEV_KEY),
    };
  }
  const parts = new Map(
    text
      .split(';')
      .map((p) => p.trim())
      .filter((p) => p !== '')
      .map((p) => {
        const eq = p.indexOf('=');
        return [p.slice(0, eq).toLowerCase(), p.slice(eq + 1)] as const;
      }),
  );
  const account = parts.get('accountname') ?? DEV_ACCOUNT;
  const key = parts.get('accountkey') ?? DEV_KEY;
  const out: LocalStorage = { credential: new AzureNamedKeyCredential(account, key) };
  const table = parts.get('tableendpoint');
  const blob = parts.get('blobendpoint');
  if (table !== undefined) out.tableEndpoint = table;
  if (blob !== undefined) out.blobEndpoint = blob;
  return out;
}

/** The state store: Table Storage by URL with managed identity, or Azurite locally. */
export async function openTableStore(s: Settings, credential: TokenCredential): Promise<TableStorageStore> {
  if (s.UC_TABLE_ENDPOINT !== '') {
    return TableStorageStore.open({
      endpoint: s.UC_TABLE_ENDPOINT,
      credential,
      tablePrefix: s.UC_TABLE_PREFIX,
    });
  }
  const local = parseLocalConnectionString(s.UC_STORAGE_CONNECTION_STRING);
  if (local.tableEndpoint === undefined) {
    throw new SettingsError([
      {
        name: 'UC_STORAGE_CONNECTION_STRING',
        value: '(set)',
        allowed: 'a connection string with a TableEndpoint',
      },
    ]);
  }
  return TableStorageStore.open({
    endpoint: local.tableEndpoint,
    credential: local.credential,
    tablePrefix: s.UC_TABLE_PREFIX,
    allowInsecureConnection: true,
  });
}

/**
 * The Blob service the GeoIP database lives in: UC_BLOB_ENDPOINT with a token credential (managed identity),
 * else the Blob endpoint of UC_STORAGE_CONNECTION_STRING (Azurite, local development, shared key over
 * http). Undefined when neither is set.
 */
export function blobServiceFromSettings(
  settings: Settings,
  env: Readonly<Record<string, string | undefined>> = process.env,
  /** Reuse the process's credential (and its token cache); default: a new one from {@link createCredential}. */
  credential?: TokenCredential,
): BlobServiceClient | undefined {
  if (settings.UC_BLOB_ENDPOINT !== '') {
    return new BlobServiceClient(settings.UC_BLOB_ENDPOINT, credential ?? createCredential(env));
  }
  if (settings.UC_STORAGE_CONNECTION_STRING !== '') {
    const local = parseLocalConnectionString(settings.UC_STORAGE_CONNECTION_STRING);
    if (local.blobEndpoint === undefined) return undefined;
    return new BlobServiceClient(
      local.blobEndpoint,
      new StorageSharedKeyCredential(local.credential.name, local.credential.key),
    );
  }
  return undefined;
}
