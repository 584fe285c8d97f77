/**
 * Starts Azurite's Blob service inside the test process, bound to 127.0.0.1 on a random port and kept in
 * memory (as test/support/azurite.ts does for Tables). Each server gets its own in-memory chunk store, so two
 * servers in one process never see – or clean – each other's blobs.
 */
import type { IncomingMessage, Server } from 'node:http';

import { StorageSharedKeyCredential } from '@azure/storage-blob';

import {
  AZURITE_ACCOUNT,
  AZURITE_KEY,
  type AzuriteServerInstance,
  type ExtentServiceArgs,
  loadAzurite,
  startAzuriteService,
} from './azuriteCommon.js';

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

interface MemoryExtentStoreModule {
  MemoryExtentChunkStore: new (sizeLimit?: number) => unknown;
}

let counter = 0;

export async function startAzuriteBlob(): Promise<AzuriteBlob> {
  const { MemoryExtentChunkStore } = loadAzurite<MemoryExtentStoreModule>(
    'common/persistence/MemoryExtentStore',
  );
  const id = `${process.pid}-${++counter}`;
  const args: ExtentServiceArgs = [
    // With in-memory persistence these are only LokiJS database names, never files.
    `azurite-blob-${id}.json`,
    `azurite-blob-extent-${id}.json`,
    [],
    false, // access log
    undefined,
    false, // debug log
    undefined,
  ];
  const requests: AzuriteBlob['requests'] = [];
  const { endpoint, stop } = await startAzuriteService<AzuriteServerInstance & { httpServer: Server }>(
    'blob',
    args,
    {
      trailing: [new MemoryExtentChunkStore(2 * 1024 * 1024 * 1024)], // this server's own store
      beforeStart: (server) => {
        server.httpServer.prependListener('request', (req: IncomingMessage) => {
          requests.push({ method: req.method ?? '', url: req.url ?? '' });
        });
      },
    },
  );
  return {
    endpoint,
    credential: new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    connectionString:
      `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};` +
      `BlobEndpoint=${endpoint};`,
    requests,
    stop,
  };
}
