/**
 * Starts Azurite's Blob service inside the test process, bound to 127.0.0.1 on a random port and kept in
 * memory (as test/support/azurite.ts does for Tables). Each server gets its own in-memory chunk store, so two
 * servers in one process never see – or clean – each other's blobs.
 */
import type { IncomingMessage, Server } from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';

import { StorageSharedKeyCredential } from '@azure/storage-blob';

import { AZURITE_ACCOUNT, AZURITE_KEY } from './azurite.js';

export interface AzuriteBlob {
  /** `http://127.0.0.1:{port}/devstoreaccount1`. */
  endpoint: string;
  credential: StorageSharedKeyCredential;
  /** A connection string for UC_STORAGE_CONNECTION_STRING. */
  connectionString: string;
  /** Every request the server received, in order (method and path with query). */
  requests: { method: string; url: string }[];
  stop(): Promise<void>;
}

interface BlobServerInstance {
  start(): Promise<void>;
  close(): Promise<void>;
  clean?(): Promise<void>;
  getHttpServerAddress(): string;
  httpServer: Server;
}
type BlobConfigurationCtor = new (
  host: string,
  port: number,
  keepAliveTimeout: number,
  metadataDBPath: string,
  extentDBPath: string,
  persistencePathArray: unknown[],
  enableAccessLog: boolean,
  accessLogWriteStream: undefined,
  enableDebugLog: boolean,
  debugLogFilePath: undefined,
  loose: boolean,
  skipApiVersionCheck: boolean,
  cert: string,
  key: string,
  pwd: string,
  oauth: undefined,
  disableProductStyleUrl: boolean,
  isMemoryPersistence: boolean,
  memoryStore: unknown,
) => unknown;
type BlobServerCtor = new (configuration: unknown) => BlobServerInstance;
interface MemoryExtentStoreModule {
  MemoryExtentChunkStore: new (sizeLimit?: number) => unknown;
}
interface TelemetryModule {
  AzuriteTelemetryClient: { enableTelemetry: boolean };
}

const require = createRequire(import.meta.url);
const azuriteDist = path.join(path.dirname(require.resolve('azurite/package.json')), 'dist', 'src');

function load<T>(relative: string): T {
  return require(path.join(azuriteDist, relative)) as T;
}

let counter = 0;

export async function startAzuriteBlob(): Promise<AzuriteBlob> {
  load<TelemetryModule>('common/Telemetry').AzuriteTelemetryClient.enableTelemetry = false;
  const BlobConfiguration = load<{ default: BlobConfigurationCtor }>('blob/BlobConfiguration').default;
  const BlobServer = load<{ default: BlobServerCtor }>('blob/BlobServer').default;
  const { MemoryExtentChunkStore } = load<MemoryExtentStoreModule>('common/persistence/MemoryExtentStore');

  const id = `${process.pid}-${++counter}`;
  const config = new BlobConfiguration(
    '127.0.0.1',
    0, // the OS picks a free port
    5,
    // With in-memory persistence these are only LokiJS database names, never files.
    `azurite-blob-${id}.json`,
    `azurite-blob-extent-${id}.json`,
    [],
    false, // access log
    undefined,
    false, // debug log
    undefined,
    false, // loose
    true, // skipApiVersionCheck: the SDK may be newer than this Azurite build
    '',
    '',
    '',
    undefined,
    false,
    true, // in memory
    new MemoryExtentChunkStore(2 * 1024 * 1024 * 1024), // this server's own store
  );
  const server = new BlobServer(config);
  const requests: AzuriteBlob['requests'] = [];
  server.httpServer.prependListener('request', (req: IncomingMessage) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '' });
  });
  await server.start();
  const endpoint = `${server.getHttpServerAddress()}/${AZURITE_ACCOUNT}`;
  let stopped = false;
  return {
    endpoint,
    credential: new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    connectionString:
      `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};` +
      `BlobEndpoint=${endpoint};`,
    requests,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.close();
      await server.clean?.();
    },
  };
}
