/**
 * Starts Azurite's Table service inside the test process, bound to 127.0.0.1 on a random port and kept in memory
 * (test/support/azuriteCommon.ts).
 */
import { randomUUID } from 'node:crypto';

import { AzureNamedKeyCredential } from '@azure/data-tables';

import { AZURITE_ACCOUNT, AZURITE_KEY, startAzuriteService } from './azuriteCommon.js';

export { AZURITE_ACCOUNT, AZURITE_KEY };

export interface AzuriteTables {
  /** `http://127.0.0.1:{port}/devstoreaccount1`; clients need `allowInsecureConnection: true`. */
  endpoint: string;
  credential: AzureNamedKeyCredential;
  stop(): Promise<void>;
}

/** The Table configuration's arguments between keepAliveTimeout and `loose`. */
type TableArgs = [
  metadataDBPath: string,
  enableDebugLog: boolean,
  enableAccessLog: boolean,
  accessLogWriteStream: undefined,
  debugLogFilePath: undefined,
];

export async function startAzurite(): Promise<AzuriteTables> {
  const args: TableArgs = [
    // With in-memory persistence this is only LokiJS's database name, never a file; unique for clarity.
    `azurite-table-${randomUUID()}.json`,
    false, // debug log
    false, // access log
    undefined,
    undefined,
  ];
  const { endpoint, stop } = await startAzuriteService('table', args);
  return {
    endpoint,
    credential: new AzureNamedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    stop,
  };
}
