/**
 * Azurite's Table service in this process (127.0.0.1, random port, in memory) with a request counter on its HTTP
 * server: what the detector asks of Table Storage, counted where the requests arrive.
 *
 * One change to Azurite's behaviour, for the benchmark only: Azurite answers every entity query by running the
 * filter over every entity of the table, so reading one partition of a table of 50,000 rows costs 50,000 filter
 * calls — the run's time would be Azurite's, growing with the size of the table. Table Storage reads a
 * partition by its key. The patch below narrows a query whose filter is exactly `PartitionKey eq '…'` (what
 * BaselineStore.readPartition sends) to that partition with the collection's existing PartitionKey index
 * before Azurite's own filtering, sorting and paging run unchanged. Answers are identical; only their cost
 * changes from O(table) to O(partition).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';

import { AzureNamedKeyCredential } from '@azure/data-tables';

import { AZURITE_ACCOUNT, AZURITE_KEY } from '../test/support/azurite.js';

export interface TableRequestCounts {
  /** Entity-group transactions (POST $batch). */
  transactions: number;
  /** Entity queries (GET …() or with $filter): one partition read, or a page of one. */
  queries: number;
  /** Point reads (GET …(PartitionKey=…,RowKey=…)). */
  pointReads: number;
  /** Single-entity writes and deletes outside transactions. */
  writes: number;
  /** Table create/delete/list. */
  tableOps: number;
  total: number;
}

export const noRequests = (): TableRequestCounts => ({
  transactions: 0,
  queries: 0,
  pointReads: 0,
  writes: 0,
  tableOps: 0,
  total: 0,
});

export interface CountingAzurite {
  endpoint: string;
  credential: AzureNamedKeyCredential;
  counts: TableRequestCounts;
  reset(): void;
  stop(): Promise<void>;
}

interface TableServerInstance {
  start(): Promise<void>;
  close(): Promise<void>;
  clean?(): Promise<void>;
  getHttpServerAddress(): string;
  httpServer: Server;
}
type Ctor = new (...args: unknown[]) => unknown;

const require = createRequire(import.meta.url);
const azuriteDist = path.join(path.dirname(require.resolve('azurite/package.json')), 'dist', 'src');
const load = <T>(relative: string): T => require(path.join(azuriteDist, relative)) as T;

export function classify(req: IncomingMessage, counts: TableRequestCounts): void {
  const url = decodeURIComponent(req.url ?? '');
  counts.total += 1;
  if (/\/\$batch(\?|$)/.test(url)) counts.transactions += 1;
  else if (/\/Tables(\(|\?|$)/.test(url)) counts.tableOps += 1;
  else if (req.method === 'GET' && /\(PartitionKey=.*RowKey=.*\)/.test(url)) counts.pointReads += 1;
  else if (req.method === 'GET') counts.queries += 1;
  else counts.writes += 1;
}

interface LokiCollection {
  chain(): { find(query: Record<string, unknown>): unknown };
}
interface LokiTableStore {
  getEntityCollection(account: string, table: string, context: unknown): LokiCollection;
  queryTableEntities: (this: LokiTableStore, ...args: unknown[]) => Promise<unknown>;
}

let patched = false;

/** See the module comment: partition queries use the PartitionKey index. */
function indexPartitionQueries(): void {
  if (patched) return;
  patched = true;
  const proto = load<{ default: { prototype: LokiTableStore } }>('table/persistence/LokiTableMetadataStore')
    .default.prototype;
  const original = proto.queryTableEntities;
  proto.queryTableEntities = function (this: LokiTableStore, ...args: unknown[]) {
    const [context, account, table, options] = args as [
      unknown,
      string,
      string,
      { filter?: string } | undefined,
    ];
    const m = /^PartitionKey eq '((?:[^']|'')*)'$/.exec(options?.filter ?? '');
    if (!m) return original.apply(this, args);
    const partitionKey = m[1]!.replace(/''/g, "'");
    const collection = this.getEntityCollection(account, table, context) as LokiCollection & {
      chain: LokiCollection['chain'];
    };
    const chain = collection.chain.bind(collection);
    // Azurite's query starts with collection.chain() synchronously: start that chain from the index instead.
    collection.chain = () =>
      chain().find({ PartitionKey: partitionKey }) as ReturnType<LokiCollection['chain']>;
    try {
      return original.apply(this, args);
    } finally {
      delete (collection as Partial<LokiCollection>).chain;
    }
  };
}

export async function startCountingAzurite(): Promise<CountingAzurite> {
  load<{ AzuriteTelemetryClient: { enableTelemetry: boolean } }>(
    'common/Telemetry',
  ).AzuriteTelemetryClient.enableTelemetry = false;
  indexPartitionQueries();
  const TableConfiguration = load<{ default: Ctor }>('table/TableConfiguration').default;
  const TableServer = load<{ default: new (c: unknown) => TableServerInstance }>('table/TableServer').default;
  const config = new TableConfiguration(
    '127.0.0.1',
    0,
    5,
    `azurite-table-${randomUUID()}.json`,
    false,
    false,
    undefined,
    undefined,
    false,
    true,
    '',
    '',
    '',
    undefined,
    false,
    true,
  );
  const server = new TableServer(config);
  const state = { counts: noRequests() };
  server.httpServer.prependListener('request', (req: IncomingMessage) => classify(req, state.counts));
  await server.start();
  return {
    endpoint: `${server.getHttpServerAddress()}/${AZURITE_ACCOUNT}`,
    credential: new AzureNamedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    get counts() {
      return state.counts;
    },
    reset() {
      state.counts = noRequests();
    },
    async stop() {
      await server.close();
      await server.clean?.();
    },
  };
}
