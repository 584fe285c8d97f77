// Upward import (runtime/ is above ops/): the operator tools' Azure clients are built next to the detector's, in
// shared/runtime/opsClients.ts; re-exported here for the CLI and the bootstrap function that import them from here.
export {
  type AzureOpsClients,
  openAzureHistory,
  openAzureOps,
  openStateStore,
  type OpsClientOptions,
} from '../runtime/opsClients.js';
