// The built-in Azure roles the deployment assigns, by role definition id (the same in every tenant and cloud).
// One map, imported by every module that assigns a role, so each right is named once and reviewed in one place.
// The detector's identity gets exactly these, each on one resource: nothing at resource-group or subscription
// scope, and no control-plane role that could read keys.

@export()
@description('Built-in role definition ids, by role name.')
var roleIds = {
  // Query AzureActivity through the Log Analytics query API. Workspace-wide read: the detector reads one table,
  // but table-level RBAC is an opt-in hardening (see README.md, "Deploying to Azure").
  logAnalyticsReader: '73c42c96-874c-492b-b04d-ab87d138a893'
  // Baselines, tenant profile, alert episodes, checkpoint and outbox live in Table Storage (entities only).
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  // The Functions host keeps its keys, timer schedule and singleton leases in blobs, the platform reads the
  // deployment package from a blob container, and refreshGeoIpDatabase writes the GeoIP database blob.
  // Owner rather than Contributor: it is the role Azure Functions documents for identity-based host storage.
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // Queue mode (UC_SHARDING=queue): the timer enqueues shards, processShard's identity-based queue trigger reads and
  // deletes them and moves failed ones to the poison queue (which it creates: queues/write is in this role).
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  // Logs Ingestion API (alerts into the DCR) and Application Insights ingestion with Entra ID auth.
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  // Resolve the MaxMind Key Vault references in app settings (read secret values, nothing else).
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  // Optional, for the person deploying: lets them `az keyvault secret set` the MaxMind secrets. Never the app.
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  // Optional (grantDeployerDataAccess), for the operator's own identity: read the GeoIP database blob that
  // bootstrap and doctor use. Never the app (it has Blob Data Owner for host storage).
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  // Optional (grantDeployerDataAccess), for the operator's own identity, on the resource group: doctor reads the
  // DCR, Application Insights (the last run) and the identity's role assignments. Read-only. Never the app.
  monitoringReader: '43d0d8ad-25c7-4714-9337-8ba259a9fe05'
}

// The one custom role: Azure has no built-in role smaller than Reader that may list the Service Tags, and Reader on
// the subscription would let the detector read every resource's configuration. This role holds exactly the one
// action refreshServiceTags needs (ARM GET …/locations/{location}/serviceTags): no resource, no data, no write.
// Its id is not fixed like the built-in ones: it is guid(subscription().id, seed), so each subscription gets its
// own definition (a custom role's id and name are unique in the tenant, its assignable scope is the subscription).
@export()
@description('The custom role refreshServiceTags needs, created at subscription scope by serviceTagsReader.bicep.')
var serviceTagsReaderRole = {
  seed: 'unusual-city-service-tags-reader'
  // The name refreshServiceTags' 403 message tells the operator to grant (the subscription id is appended).
  roleName: 'unusual-city Service Tags Reader'
  actions: [
    'Microsoft.Network/locations/serviceTags/read'
  ]
}
