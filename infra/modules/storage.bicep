metadata description = 'Storage for the detector: Functions host storage, the deployment package, the GeoIP database blob, the Table Storage state and the shard queue, reachable with Entra ID only.'

import { roleIds } from 'roles.bicep'

@description('Required. Storage account name (3-24 lower-case letters and digits, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Required. Azure region.')
param location string

@description('Optional. Tags for the storage account.')
param tags object = {}

@description('Optional. Replication of the account. The state is rebuildable from the Activity Log but a lost baseline means weeks of re-learning: zone-redundant where the region offers it.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param skuName string = 'Standard_LRS'

@description('Required. UC_TABLE_PREFIX: the detector\'s tables are this prefix followed by Baselines, Tenant, Alerts, State and Outbox.')
@minLength(3)
@maxLength(51)
param tablePrefix string

@description('Required. Blob container holding the GeoIP City database (UC_GEOIP_BLOB is <container>/<edition>.mmdb).')
param geoIpContainerName string

@description('Required. Blob container the Flex Consumption platform deploys the app package from.')
param deploymentContainerName string

@description('Required. UC_SHARD_QUEUE: the Storage queue carrying shards in queue mode; its poison queue <name>-poison is created with it.')
@minLength(3)
@maxLength(56)
param shardQueueName string

@description('Required. Principal id of the detector\'s managed identity.')
param principalId string

@description('Optional. Principal id of an operator (the person or pipeline deploying) granted Storage Table Data Contributor and Storage Blob Data Reader, to run baseline, bootstrap and doctor from their machine. Empty: nobody.')
param operatorPrincipalId string = ''

@description('Optional. Principal type of operatorPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

// The table suffixes the code appends to UC_TABLE_PREFIX (shared/baseline/tableStorage.ts TABLE_SUFFIXES).
// Created here so the identity needs no table-creation right at run time and the tables exist before the first
// run; the code still creates a missing one (Storage Table Data Contributor allows it).
var tableSuffixes = [
  'Baselines'
  'Tenant'
  'Alerts'
  'State'
  'Outbox'
]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    // Entra ID only: no account key can be used, so none can leak from an app setting or a template.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    accessTier: 'Hot'
    // Flex Consumption without a virtual network reaches storage over its public endpoint (Entra ID still
    // required); put both behind private endpoints if the subscription policy demands it.
    publicNetworkAccess: 'Enabled'
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource geoIpContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: geoIpContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for suffix in tableSuffixes: {
    parent: tableService
    name: '${tablePrefix}${suffix}'
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

// Queue mode (UC_SHARDING=queue): the timer enqueues each tick's shards here and processShard consumes them. The
// poison queue is the one the Functions host moves a message to after maxDequeueCount failures (host.json).
resource shardQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: shardQueueName
}

resource shardPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${shardQueueName}-poison'
}

// Role assignments: scoped to this account, named from (scope, principal, role) so a redeployment finds the
// same assignment instead of failing on a duplicate.
resource tableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roleIds.storageTableDataContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource blobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roleIds.storageBlobDataOwner)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roleIds.storageQueueDataContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageQueueDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The operator's own identity (grantDeployerDataAccess): bootstrap and baseline write the state tables, doctor
// reads the checkpoint and outbox; bootstrap and doctor read the GeoIP database blob.
resource operatorTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(account.id, operatorPrincipalId, roleIds.storageTableDataContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataContributor)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

resource operatorBlobDataReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(account.id, operatorPrincipalId, roleIds.storageBlobDataReader)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataReader)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

@description('Resource id of the storage account.')
output resourceId string = account.id

@description('Name of the storage account.')
output name string = account.name

@description('Blob service URL (trailing slash): UC_BLOB_ENDPOINT and AzureWebJobsStorage__blobServiceUri.')
output blobEndpoint string = account.properties.primaryEndpoints.blob

@description('Table service URL (trailing slash): UC_TABLE_ENDPOINT.')
output tableEndpoint string = account.properties.primaryEndpoints.table

@description('Queue service URL (trailing slash): UC_QUEUE_ENDPOINT and AzureWebJobsStorage__queueServiceUri.')
output queueEndpoint string = account.properties.primaryEndpoints.queue

@description('Name of the shard queue: UC_SHARD_QUEUE.')
output shardQueueName string = shardQueue.name

@description('URL of the deployment container: the Function App\'s functionAppConfig.deployment.storage.value.')
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainer.name}'

@description('Name of the GeoIP container: the first part of UC_GEOIP_BLOB.')
output geoIpContainerName string = geoIpContainer.name

@description('Names of the Table Storage tables the detector uses.')
output tableNames array = [for (suffix, i) in tableSuffixes: tables[i].name]
