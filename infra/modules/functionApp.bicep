metadata description = 'The detector: a Flex Consumption Function App (Node 22) running as the user-assigned identity, with identity-based host storage, a blob deployment container and Entra ID-authenticated Application Insights.'

@description('Required. Function App name (globally unique: <name>.azurewebsites.net).')
param name string

@description('Required. Name of the Flex Consumption plan.')
param planName string

@description('Required. Azure region (one that offers Flex Consumption).')
param location string

@description('Optional. Tags for the plan and the app.')
param tags object = {}

@description('Optional. The azd service this app is the host of (azure.yaml services): tagged azd-service-name on the site alone, since azd before 1.23.4 stops when two resources carry the tag. Empty: no tag.')
param azdServiceName string = ''

@description('Required. Resource id of the user-assigned managed identity.')
param identityResourceId string

@description('Required. Client id of the user-assigned managed identity.')
param identityClientId string

@description('Required. Blob service URL of the host storage account (trailing slash).')
param storageBlobEndpoint string

@description('Required. Queue service URL of the host storage account (trailing slash): the identity-based connection of processShard\'s queue trigger.')
param storageQueueEndpoint string

@description('Required. URL of the blob container the platform deploys the package from.')
param deploymentContainerUrl string

@description('Required. Name of the Application Insights component.')
param appInsightsName string

@description('Required. The detector\'s UC_* settings, complete: every catalogue setting (main.bicep builds them from shared/config/settings.json).')
param detectorSettings object

@description('Optional. Must stay empty. main.bicep passes here the settingsOverrides names it refuses (not in the catalogue, or wired from resources): a non-empty list fails the deployment on this parameter\'s length.')
// Only ARM's parameter validation (the length limit) reads it.
@maxLength(0)
#disable-next-line no-unused-params
param rejectedSettingsOverrides array = []

@description('Optional. Memory per instance in MB. The GeoIP City database (about 60 MB) and the per-run baseline reads fit in 2048.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Optional. Highest instance count (1-1000): caps scale-out, and with it the cost of a queue-mode burst. Timers run as singletons.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// Settings the Functions host and the SDKs read (not the detector's catalogue). No secret among them: storage
// is reached with the identity, and the App Insights connection string holds only the instrumentation key, an
// identifier that cannot send telemetry on its own once local auth is disabled.
var platformSettings = {
  // Identity-based host storage (no AzureWebJobsStorage connection string, the account refuses keys anyway).
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
  // processShard's queue trigger (connection 'AzureWebJobsStorage', queue mode) reaches the queues with the identity.
  AzureWebJobsStorage__queueServiceUri: storageQueueEndpoint
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  // Entra ID authentication for the host's telemetry (local auth is disabled on the component).
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // DefaultAzureCredential picks the user-assigned identity with this (shared/runtime/clients.ts).
  AZURE_CLIENT_ID: identityClientId
}

// The site alone carries azd-service-name: azd deploys to the one resource tagged with the service's name.
var siteTags = empty(azdServiceName)
  ? tags
  : union(tags, {
      'azd-service-name': azdServiceName
    })

// Platform settings last: a detector setting can never displace the host's storage or identity wiring.
var appSettings = union(detectorSettings, platformSettings)

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: siteTags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityResourceId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references (UC_MAXMIND_*) resolve with the user-assigned identity, not a system one.
    keyVaultReferenceIdentity: identityResourceId
    siteConfig: {
      minTlsVersion: '1.2'
      // No FTPS state: FTP does not exist on Flex Consumption (an unsupported site setting there).
      http20Enabled: true
      appSettings: map(items(appSettings), s => {
        name: s.key
        value: s.value
      })
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityResourceId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      // On Flex Consumption the runtime is declared here, not with FUNCTIONS_WORKER_RUNTIME.
      runtime: {
        name: 'node'
        version: '22'
      }
    }
  }
}

// Basic (publishing-profile) credentials off: deployments authenticate with Entra ID (azd, az functionapp deploy).
// Only the scm policy: Flex Consumption has no FTP endpoint, so the ftp policy does not apply there.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

@description('Resource id of the Function App.')
output resourceId string = app.id

@description('Name of the Function App: azd deploy target, az functionapp commands.')
output name string = app.name

@description('Default host name of the Function App.')
output defaultHostName string = app.properties.defaultHostName

@description('Names of every app setting set on the Function App (values left out: some are Key Vault references).')
output appSettingNames array = objectKeys(appSettings)
