metadata name = 'unusual-city'
metadata description = 'The unusual-city detector: a Flex Consumption Function App that reads the Azure Activity Log from a Log Analytics workspace, scores each operation\'s city, and writes alerts to a custom table that a Microsoft Sentinel analytics rule and workbook read. Resource-group scope; the Activity Log itself is routed to the workspace by activity-log/main.bicep (subscription scope).'

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------------------------
// Deployment
// ---------------------------------------------------------------------------------------------------------------

@description('Required. Environment name (azd sets it from AZURE_ENV_NAME): tags every resource and seeds the unique resource names.')
@minLength(1)
@maxLength(64)
param environmentName string

@description('Optional. Azure region of the detector\'s resources. Must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@description('Optional. Short name in every resource name: 2-7 lower-case letters or digits (other characters are dropped, capitals lowered).')
@minLength(2)
@maxLength(7)
param baseName string = 'uc'

@description('Optional. Tags added to every resource.')
param tags object = {}

@description('Optional. Principal id of the person or pipeline deploying (azd sets AZURE_PRINCIPAL_ID): granted Key Vault Secrets Officer on the vault so they can set the MaxMind secrets. Empty: no such assignment.')
param deployerPrincipalId string = ''

@description('Optional. Principal type of deployerPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param deployerPrincipalType string = 'User'

@description('Optional. Also grant deployerPrincipalId what running `unusual-city` baseline, bootstrap and doctor from their own machine needs: Log Analytics Reader on the workspace, Storage Table Data Contributor and Storage Blob Data Reader on the storage account, Monitoring Reader on this resource group. Default false: grant them yourself (README.md, "Deploying to Azure").')
param grantDeployerDataAccess bool = false

// ---------------------------------------------------------------------------------------------------------------
// Log Analytics and Sentinel
// ---------------------------------------------------------------------------------------------------------------

@description('Optional. Resource id of the existing Log Analytics workspace that receives the Activity Log and runs Microsoft Sentinel (/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.OperationalInsights/workspaces/<name>). It may be in another resource group or subscription. Empty: a new workspace is created here.')
param existingWorkspaceResourceId string = ''

@description('Optional. Retention in days of a newly created workspace (ignored with existingWorkspaceResourceId).')
@minValue(30)
@maxValue(730)
param newWorkspaceRetentionInDays int = 90

@description('Optional. Enable Microsoft Sentinel on the workspace. Default: only for a newly created workspace (an existing Sentinel workspace already is).')
param onboardSentinel bool = empty(existingWorkspaceResourceId)

@description('Optional. Create the Sentinel analytics rule and workbook. Needs Sentinel enabled on the workspace.')
param deploySentinelContent bool = true

@description('Optional. Whether the Sentinel analytics rule is enabled when created.')
param analyticsRuleEnabled bool = true

@description('Optional. UC_ALERTS_TABLE: the custom table receiving alerts: letters, digits and underscores, ending in _CL (other characters are dropped, _CL added when missing). Default: the table of shared/alerts/columns.json.')
@minLength(4)
@maxLength(63)
param alertsTableName string = 'UnusualCityAlerts_CL'

@description('Optional. Interactive retention of the alerts table in days; -1 uses the workspace default.')
@minValue(-1)
@maxValue(730)
param alertsTableRetentionInDays int = -1

// ---------------------------------------------------------------------------------------------------------------
// Storage, Key Vault, Function App
// ---------------------------------------------------------------------------------------------------------------

@description('Optional. Replication of the storage account holding the baselines and the GeoIP database.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSkuName string = 'Standard_LRS'

@description('Optional. UC_TABLE_PREFIX: prefix of the Table Storage tables: letters and digits, starting with a letter (other characters are dropped; "uc" is put first when it starts with a digit).')
@minLength(3)
@maxLength(51)
param tablePrefix string = 'unusualcity'

@description('Optional. Blob container of the GeoIP City database and of the Service Tags document (ServiceTags.json).')
@minLength(3)
@maxLength(63)
param geoIpContainerName string = 'geoip'

@description('Optional. UC_SHARD_QUEUE: Storage queue carrying the shards of each tick in queue mode (its poison queue is <name>-poison).')
@minLength(3)
@maxLength(56)
param shardQueueName string = 'unusualcity-shards'

@description('Optional. Blob container of the Function App deployment package.')
@minLength(3)
@maxLength(63)
param deploymentContainerName string = 'app-package'

@description('Optional. UC_GEOIP_EDITION: the MaxMind edition refreshGeoIpDatabase downloads; GeoIP2-City needs a paid licence. The blob is <container>/<edition>.mmdb.')
@allowed([
  'GeoLite2-City'
  'GeoIP2-City'
])
param geoIpEdition string = 'GeoLite2-City'

@description('Optional. Create the custom role "unusual-city Service Tags Reader" (only Microsoft.Network/locations/serviceTags/read) in this subscription and assign it to the detector\'s identity at subscription scope, so that refreshServiceTags keeps Microsoft\'s datacentre ranges (UC_SERVICE_TAGS_BLOB) current and Azure addresses are keyed as Azure <region>. Needs Owner or User Access Administrator on the subscription. false: no role, UC_SERVICE_TAGS_SUBSCRIPTION_ID stays empty, and you upload the published ServiceTags_Public JSON to the blob yourself (README.md).')
param grantServiceTagsRead bool = true

@description('Optional. Name of the Key Vault secret holding the MaxMind account id (set it after deploying: README.md, "Deploying to Azure").')
param maxMindAccountIdSecretName string = 'maxmind-account-id'

@description('Optional. Name of the Key Vault secret holding the MaxMind licence key (set it after deploying: README.md, "Deploying to Azure").')
param maxMindLicenseKeySecretName string = 'maxmind-license-key'

@description('Optional. Key Vault purge protection: turn on for production. Cannot be turned off once on; a purge-protected vault name stays taken for 90 days after deletion, so a redeployment into the same environment needs keyVaultRecoverSoftDeleted or keyVaultNameSalt. Default off, so that `azd down --purge` frees the name of a test environment.')
param keyVaultEnablePurgeProtection bool = false

@description('Optional. Recover the soft-deleted Key Vault of this environment (with its secrets) instead of creating it: for a redeployment after `azd down` without --purge.')
param keyVaultRecoverSoftDeleted bool = false

@description('Optional. Any text: gives the Key Vault a new name (the old one stays soft-deleted, or purge-protected, until it expires). Empty: the environment\'s usual name.')
@maxLength(64)
param keyVaultNameSalt string = ''

@description('Optional. Memory per Function App instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Optional. Highest number of Function App instances (1-1000): a cap on scale-out and its cost. The timers run as singletons; only queue mode (sharding) uses more than one.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Optional. Accept Application Insights telemetry only with an Entra ID token (local auth disabled).')
param appInsightsDisableLocalAuth bool = true

@description('Optional. Where Application Insights stores the Functions host\'s and the detector\'s telemetry: "separate" (default), a new workspace without Sentinel, so telemetry is billed at Log Analytics prices only; "sentinel", the Sentinel workspace, where every GB also pays Sentinel. Ignored when telemetryWorkspaceResourceId is set.')
@allowed([
  'separate'
  'sentinel'
])
param telemetryWorkspace string = 'separate'

@description('Optional. Resource id of an existing workspace for the telemetry (e.g. a shared, non-Sentinel operations workspace). Empty: see telemetryWorkspace.')
param telemetryWorkspaceResourceId string = ''

@description('Optional. Retention in days of a new telemetry workspace (telemetryWorkspace "separate"): the 30 included days by default.')
@minValue(30)
@maxValue(730)
param telemetryWorkspaceRetentionInDays int = 30

// ---------------------------------------------------------------------------------------------------------------
// Detector settings that operations teams tune. Defaults are the code's (shared/config/settings.json); the
// test in test/infra keeps them equal. Any other catalogue setting can be changed with settingsOverrides.
// ---------------------------------------------------------------------------------------------------------------

@description('Optional. UC_SCHEDULE: NCRONTAB schedule of the detection timer (six fields, seconds first). Keep it in step with detectionTickInterval.')
param detectionSchedule string = '0 */15 * * * *'

@description('Optional. UC_TICK_INTERVAL: the period the schedule fires at, as a duration (30s, 15m, 2h, 1d).')
param detectionTickInterval string = '15m'

@description('Optional. UC_LOOKBACK: window each run reads (at least detectionTickInterval). Longer tolerates later Activity Log ingestion, at a higher query cost.')
param detectionLookback string = '2h'

@description('Optional. UC_RUN_BUDGET: time one run may spend before stopping cleanly (below the 10-minute function timeout).')
param runBudget string = '8m'

@description('Optional. UC_ALERT_THRESHOLD: alert when an observation scores at least this (0-100). Higher: fewer, stronger alerts.')
@minValue(0)
@maxValue(100)
param alertThreshold int = 50

@description('Optional. UC_ALERT_COOLDOWN: one alert per (caller, city) episode, which ends after this long without rare activity. Longer: fewer repeat alerts.')
param alertCooldown string = '24h'

@description('Optional. UC_RESCORE_MARGIN: within an episode, a new alert only for an operation scoring this many points above the episode\'s alert.')
@minValue(0)
@maxValue(100)
param rescoreMargin int = 20

@description('Optional. UC_DAILY_ALERT_CAP: at most this many alerts per UTC day (the rest are counted and logged).')
@minValue(1)
@maxValue(1000000)
param dailyAlertCap int = 50

@description('Optional. UC_EGRESS_RANGES: known egress and cloud ranges scored as their provider instead of a city, as Label=cidr cidr;Label2=cidr (VPN, proxies, CI runners). Empty: none.')
param egressRanges string = ''

@description('Optional. UC_EGRESS_SCORE_CAP: highest score an IP in egressRanges can get; below alertThreshold means those never alert.')
@minValue(0)
@maxValue(100)
param egressScoreCap int = 40

@description('Optional. UC_FAMILIAR_SCORE_CAP: highest score from a city the caller has worked from on several days (commutes, trips); below alertThreshold means those never alert.')
@minValue(0)
@maxValue(100)
param familiarScoreCap int = 40

@description('Optional. UC_CATEGORIES: comma-separated Activity Log categories to analyse (e.g. Administrative,Security). Empty: all.')
param activityCategories string = ''

@description('Optional. UC_STATUSES: comma-separated statuses to analyse (e.g. Succeeded). Empty: all.')
param activityStatuses string = ''

@description('Optional. UC_NO_CITY_MODE: an IP with a country but no city is skipped, or scored with its country as the place.')
@allowed([
  'skip'
  'country'
])
param noCityMode string = 'skip'

@description('Optional. UC_ALERT_NAME: AlertName of every alert, also the analytics rule\'s display name.')
param alertName string = 'Unusual City for an Azure Activity Logs Event'

@description('Optional. UC_ALERT_SEVERITY: severity of every alert (the analytics rule takes it from the alert row).')
@allowed([
  'Informational'
  'Low'
  'Medium'
  'High'
])
param alertSeverity string = 'Low'

@description('Optional. UC_ADDITIONAL_WORKSPACE_IDS: comma-separated workspace ids (GUIDs) queried with the main workspace. Grant the identity Log Analytics Reader on each yourself.')
param additionalWorkspaceIds string = ''

@description('Optional. UC_GEOIP_REFRESH_SCHEDULE: NCRONTAB schedule of refreshGeoIpDatabase (MaxMind publishes twice a week).')
param geoIpRefreshSchedule string = '0 0 4 * * 1'

@description('Optional. UC_GEOIP_MAX_AGE_DAYS: a GeoIP database built longer ago than this raises a warning on every run.')
@minValue(1)
@maxValue(3650)
param geoIpMaxAgeDays int = 35

@description('Optional. UC_TELEMETRY_INCLUDE_IDENTITIES: let Application Insights events carry callers and IPs of alerts (personal data). Default off.')
param telemetryIncludeIdentities bool = false

@description('Optional. UC_SHARDING: off (one instance runs each tick) or queue (the timer splits each tick into shards on the Storage queue, processShard runs them on as many instances as the platform scales to).')
@allowed([
  'off'
  'queue'
])
param sharding string = 'off'

@description('Optional. UC_SHARD_COUNT: shards per tick in queue mode (operation-hash ranges).')
@minValue(1)
@maxValue(64)
param shardCount int = 4

@description('Optional. Any other catalogue setting (shared/config/settings.json) by name, value as text, e.g. { "UC_HALF_LIFE_DAYS": "60" }. Names that are not in the catalogue, that have a parameter above, or that are wired from resources are refused (the deployment fails).')
param settingsOverrides object = {}

// ---------------------------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------------------------

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))

// Name inputs, cleaned rather than trusted: a character a resource type refuses would otherwise fail the
// deployment at the provider, half-way through. Bicep has no regular expressions: each name is split into its
// characters, the allowed ones kept.
var letters = 'abcdefghijklmnopqrstuvwxyz'
var alphanumerics = '${letters}0123456789'
var charsOf = {
  baseName: map(range(0, length(baseName)), i => substring(baseName, i, 1))
  tablePrefix: map(range(0, length(tablePrefix)), i => substring(tablePrefix, i, 1))
  alertsTableName: map(range(0, length(alertsTableName)), i => substring(alertsTableName, i, 1))
}
// baseName is in the storage account's name: lower-case letters and digits only ('My-App' becomes 'myapp').
var baseNameKept = join(filter(map(charsOf.baseName, c => toLower(c)), c => contains(alphanumerics, c)), '')
var cleanBaseName = empty(baseNameKept) ? 'uc' : baseNameKept
// Table Storage names: letters and digits, starting with a letter ('unusual-city' becomes 'unusualcity').
var tablePrefixKept = join(filter(charsOf.tablePrefix, c => contains(alphanumerics, toLower(c))), '')
var cleanTablePrefix = contains(letters, toLower(take(tablePrefixKept, 1))) ? tablePrefixKept : 'uc${tablePrefixKept}'
// Custom log tables: letters, digits and underscores, ending in _CL ('alerts-x' becomes 'alertsx_CL').
var alertsTableKept = join(filter(charsOf.alertsTableName, c => c == '_' || contains(alphanumerics, toLower(c))), '')
var alertsTableStem = endsWith(toLower(alertsTableKept), '_cl')
  ? take(alertsTableKept, length(alertsTableKept) - 3)
  : alertsTableKept
var cleanAlertsTableName = '${contains(letters, toLower(take(alertsTableStem, 1))) ? '' : 'UC'}${alertsTableStem}_CL'
var allTags = union(tags, {
  'azd-env-name': environmentName
})
var names = {
  identity: 'id-${cleanBaseName}-${resourceToken}'
  storage: toLower('st${cleanBaseName}${resourceToken}')
  // A salt gives the vault another name of the same length when the usual one is held by a deleted vault.
  keyVault: 'kv-${cleanBaseName}-${empty(keyVaultNameSalt) ? resourceToken : toLower(uniqueString(resourceToken, keyVaultNameSalt))}'
  workspace: 'log-${cleanBaseName}-${resourceToken}'
  telemetryWorkspace: 'log-${cleanBaseName}-telemetry-${resourceToken}'
  appInsights: 'appi-${cleanBaseName}-${resourceToken}'
  dataCollectionRule: 'dcr-${cleanBaseName}-${resourceToken}'
  plan: 'plan-${cleanBaseName}-${resourceToken}'
  functionApp: 'func-${cleanBaseName}-${resourceToken}'
}

// The workspace may live in another resource group or subscription: its content (alerts table, reader role,
// Sentinel) is deployed there, the rest here.
var grantDeployer = grantDeployerDataAccess && !empty(deployerPrincipalId)
var operatorPrincipalId = grantDeployer ? deployerPrincipalId : ''

var createWorkspace = empty(existingWorkspaceResourceId)
var workspaceResourceId = createWorkspace
  ? resourceId('Microsoft.OperationalInsights/workspaces', names.workspace)
  : existingWorkspaceResourceId
var workspaceIdSegments = split(workspaceResourceId, '/')
var workspaceSubscriptionId = workspaceIdSegments[2]
var workspaceResourceGroupName = workspaceIdSegments[4]
var workspaceName = workspaceIdSegments[8]

// Telemetry (Application Insights) goes to its own workspace unless told otherwise: host traces and run events are
// operations data, not security data, and need not pay Sentinel's per-GB price.
var createTelemetryWorkspace = empty(telemetryWorkspaceResourceId) && telemetryWorkspace == 'separate'
var appInsightsWorkspaceResourceId = !empty(telemetryWorkspaceResourceId)
  ? telemetryWorkspaceResourceId
  : createTelemetryWorkspace
      ? resourceId('Microsoft.OperationalInsights/workspaces', names.telemetryWorkspace)
      : workspaceResourceId

// ---------------------------------------------------------------------------------------------------------------
// Modules, by concern
// ---------------------------------------------------------------------------------------------------------------

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: names.identity
    location: location
    tags: allTags
  }
}

module logAnalytics 'modules/logAnalytics.bicep' = if (createWorkspace) {
  name: 'log-analytics'
  params: {
    name: names.workspace
    location: location
    tags: allTags
    retentionInDays: newWorkspaceRetentionInDays
  }
}

module telemetryLogAnalytics 'modules/logAnalytics.bicep' = if (createTelemetryWorkspace) {
  name: 'telemetry-log-analytics'
  params: {
    name: names.telemetryWorkspace
    location: location
    tags: allTags
    retentionInDays: telemetryWorkspaceRetentionInDays
  }
}

module workspace 'modules/workspace.bicep' = {
  name: 'workspace-${resourceToken}'
  scope: resourceGroup(workspaceSubscriptionId, workspaceResourceGroupName)
  dependsOn: [
    logAnalytics
  ]
  params: {
    workspaceName: workspaceName
    tableName: cleanAlertsTableName
    tableRetentionInDays: alertsTableRetentionInDays
    principalId: identity.outputs.principalId
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: deployerPrincipalType
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: names.storage
    location: location
    tags: allTags
    skuName: storageSkuName
    tablePrefix: cleanTablePrefix
    geoIpContainerName: geoIpContainerName
    deploymentContainerName: deploymentContainerName
    shardQueueName: shardQueueName
    principalId: identity.outputs.principalId
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: deployerPrincipalType
  }
}

// Subscription scope: the one right outside this resource group, read-only and limited to the Service Tags list.
module serviceTagsReader 'modules/serviceTagsReader.bicep' = if (grantServiceTagsRead) {
  name: 'service-tags-reader'
  scope: subscription()
  params: {
    principalId: identity.outputs.principalId
  }
}

module operatorAccess 'modules/operatorAccess.bicep' = if (grantDeployer) {
  name: 'operator-access'
  params: {
    operatorPrincipalId: deployerPrincipalId
    operatorPrincipalType: deployerPrincipalType
  }
}

module keyVault 'modules/keyVault.bicep' = {
  name: 'key-vault'
  params: {
    name: names.keyVault
    location: location
    tags: allTags
    principalId: identity.outputs.principalId
    secretsOfficerPrincipalId: deployerPrincipalId
    secretsOfficerPrincipalType: deployerPrincipalType
    enablePurgeProtection: keyVaultEnablePurgeProtection
    recoverSoftDeleted: keyVaultRecoverSoftDeleted
  }
}

module appInsights 'modules/appInsights.bicep' = {
  name: 'app-insights'
  params: {
    name: names.appInsights
    location: location
    tags: allTags
    workspaceResourceId: appInsightsWorkspaceResourceId
    principalId: identity.outputs.principalId
    disableLocalAuth: appInsightsDisableLocalAuth
  }
  dependsOn: [
    logAnalytics
    telemetryLogAnalytics
  ]
}

module dataCollectionRule 'modules/dataCollectionRule.bicep' = {
  name: 'data-collection-rule'
  params: {
    name: names.dataCollectionRule
    // Logs Ingestion requires the rule in the workspace's region.
    location: workspace.outputs.location
    tags: allTags
    workspaceResourceId: workspaceResourceId
    // From the workspace module's output, so the rule waits for the table it writes to.
    tableName: workspace.outputs.tableName
    principalId: identity.outputs.principalId
  }
}

module sentinel 'modules/sentinel.bicep' = {
  name: 'sentinel-${resourceToken}'
  scope: resourceGroup(workspaceSubscriptionId, workspaceResourceGroupName)
  params: {
    workspaceName: workspaceName
    // From the workspace module's output: the rule's query must find the table when Sentinel validates it.
    tableName: workspace.outputs.tableName
    appInsightsResourceId: appInsights.outputs.resourceId
    onboardSentinel: onboardSentinel
    deployAnalyticsRule: deploySentinelContent
    deployWorkbook: deploySentinelContent
    analyticsRuleEnabled: analyticsRuleEnabled
    analyticsRuleDisplayName: alertName
    analyticsRuleSeverity: alertSeverity
    location: workspace.outputs.location
    tags: allTags
  }
}

// ---------------------------------------------------------------------------------------------------------------
// App settings: every UC_* setting of the catalogue, with the code's default unless tuned or wired below.
// ---------------------------------------------------------------------------------------------------------------

// The catalogue the code reads (shared/config/settings.ts): one source of truth, so a setting added to the code
// reaches Azure with its default without touching this template.
var settingsCatalogue = loadJsonContent('../shared/config/settings.json')
var catalogueDefaults = toObject(settingsCatalogue.settings, s => s.name, s => s.default)

// The settings with a parameter above.
var tunedSettings = {
  UC_SCHEDULE: detectionSchedule
  UC_TICK_INTERVAL: detectionTickInterval
  UC_LOOKBACK: detectionLookback
  UC_RUN_BUDGET: runBudget
  UC_ALERT_THRESHOLD: string(alertThreshold)
  UC_ALERT_COOLDOWN: alertCooldown
  UC_RESCORE_MARGIN: string(rescoreMargin)
  UC_DAILY_ALERT_CAP: string(dailyAlertCap)
  UC_EGRESS_RANGES: egressRanges
  UC_EGRESS_SCORE_CAP: string(egressScoreCap)
  UC_FAMILIAR_SCORE_CAP: string(familiarScoreCap)
  UC_CATEGORIES: activityCategories
  UC_STATUSES: activityStatuses
  UC_NO_CITY_MODE: noCityMode
  UC_ALERT_NAME: alertName
  UC_ALERT_SEVERITY: alertSeverity
  UC_ADDITIONAL_WORKSPACE_IDS: additionalWorkspaceIds
  UC_GEOIP_REFRESH_SCHEDULE: geoIpRefreshSchedule
  UC_GEOIP_MAX_AGE_DAYS: string(geoIpMaxAgeDays)
  // string(bool) would give "True"/"False"; the catalogue spells booleans in lower case.
  UC_TELEMETRY_INCLUDE_IDENTITIES: telemetryIncludeIdentities ? 'true' : 'false'
  UC_SHARDING: sharding
  UC_SHARD_COUNT: string(shardCount)
}

// The settings that point at the resources deployed here: never a parameter, never overridden.
var wiredSettings = {
  UC_WORKSPACE_ID: workspace.outputs.customerId
  UC_ALERTS_TABLE: workspace.outputs.tableName
  UC_INGESTION_ENDPOINT: dataCollectionRule.outputs.ingestionEndpoint
  UC_DCR_IMMUTABLE_ID: dataCollectionRule.outputs.immutableId
  UC_TABLE_ENDPOINT: storage.outputs.tableEndpoint
  UC_TABLE_PREFIX: cleanTablePrefix
  UC_QUEUE_ENDPOINT: storage.outputs.queueEndpoint
  UC_SHARD_QUEUE: storage.outputs.shardQueueName
  UC_BLOB_ENDPOINT: storage.outputs.blobEndpoint
  UC_GEOIP_BLOB: '${storage.outputs.geoIpContainerName}/${geoIpEdition}.mmdb'
  UC_GEOIP_EDITION: geoIpEdition
  // Microsoft's datacentre ranges beside the GeoIP database, read through this subscription by refreshServiceTags.
  UC_SERVICE_TAGS_BLOB: '${storage.outputs.geoIpContainerName}/ServiceTags.json'
  UC_SERVICE_TAGS_SUBSCRIPTION_ID: grantServiceTagsRead ? subscription().subscriptionId : ''
  UC_SERVICE_TAGS_LOCATION: location
  // What doctor reads through Azure Resource Manager (the detector itself never does).
  UC_ARM_ENDPOINT: environment().resourceManager
  UC_IDENTITY_PRINCIPAL_ID: identity.outputs.principalId
  UC_WORKSPACE_RESOURCE_ID: workspaceResourceId
  UC_STORAGE_RESOURCE_ID: storage.outputs.resourceId
  UC_DCR_RESOURCE_ID: dataCollectionRule.outputs.resourceId
  UC_KEY_VAULT_RESOURCE_ID: keyVault.outputs.resourceId
  UC_APPINSIGHTS_RESOURCE_ID: appInsights.outputs.resourceId
  UC_ANALYTICS_RULE_ID: sentinel.outputs.analyticsRuleId
  // Local development only (Azurite); in Azure the code must use the endpoints above with the identity.
  UC_STORAGE_CONNECTION_STRING: ''
  // Key Vault references, resolved by the platform with the app's identity. Versionless, so a rotated secret is
  // picked up without redeploying. No value lives in this template or its parameters.
  UC_MAXMIND_ACCOUNT_ID: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.uri}secrets/${maxMindAccountIdSecretName}/)'
  UC_MAXMIND_LICENSE_KEY: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.uri}secrets/${maxMindLicenseKeySecretName}/)'
}

// A name the code does not read would be set silently and ignored (a typo looks like a tuning that "does
// nothing"); a parameterised or wired name would have two sources. Both are refused.
var rejectedOverrides = filter(
  objectKeys(settingsOverrides),
  settingName =>
    !contains(catalogueDefaults, settingName) || contains(tunedSettings, settingName) || contains(wiredSettings, settingName)
)

// Later wins: catalogue defaults, then overrides, then tuned parameters, then the wiring.
var detectorSettings = union(catalogueDefaults, settingsOverrides, tunedSettings, wiredSettings)

module functionApp 'modules/functionApp.bicep' = {
  name: 'function-app'
  params: {
    name: names.functionApp
    planName: names.plan
    location: location
    tags: allTags
    // azure.yaml's service: only the site is tagged with it.
    azdServiceName: 'detector'
    identityResourceId: identity.outputs.resourceId
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsName: appInsights.outputs.name
    detectorSettings: detectorSettings
    rejectedSettingsOverrides: rejectedOverrides
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
  }
  // No explicit dependsOn: each module whose output feeds a setting also holds that resource's role assignment,
  // so the app is created after its rights (Entra ID may still take a few minutes to apply them; the timer's
  // next run retries).
}

// ---------------------------------------------------------------------------------------------------------------
// Outputs (azd stores them in the environment: azd env get-value NAME, azd env get-values)
// ---------------------------------------------------------------------------------------------------------------

@description('Function App name: azd deploy target; az functionapp commands (restart, logs, the first GeoIP refresh).')
output FUNCTION_APP_NAME string = functionApp.outputs.name

@description('Key Vault name: az keyvault secret set --vault-name, for the two MaxMind secrets.')
output KEY_VAULT_NAME string = keyVault.outputs.name

@description('Secret name of the MaxMind account id: az keyvault secret set --name.')
output MAXMIND_ACCOUNT_ID_SECRET_NAME string = maxMindAccountIdSecretName

@description('Secret name of the MaxMind licence key: az keyvault secret set --name.')
output MAXMIND_LICENSE_KEY_SECRET_NAME string = maxMindLicenseKeySecretName

@description('Storage account name: az storage blob upload --auth-mode login, for a first GeoIP database without MaxMind credentials.')
output STORAGE_ACCOUNT_NAME string = storage.outputs.name

@description('Resource id of the Log Analytics workspace: the workspaceResourceId parameter of activity-log/main.bicep.')
output WORKSPACE_RESOURCE_ID string = workspaceResourceId

@description('Resource id of the workspace holding the Application Insights telemetry (the Sentinel workspace or a separate one).')
output TELEMETRY_WORKSPACE_RESOURCE_ID string = appInsightsWorkspaceResourceId

@description('Resource id of Application Insights: the source of the workbook\'s detector-health section and of doctor\'s last-run check.')
output APPLICATIONINSIGHTS_RESOURCE_ID string = appInsights.outputs.resourceId

@description('Application id of Application Insights: the Application Insights query API (doctor\'s last-run check).')
output APPLICATIONINSIGHTS_APP_ID string = appInsights.outputs.appId

@description('Resource id of the data collection rule alerts are sent through (doctor: exists, the identity may ingest).')
output DCR_RESOURCE_ID string = dataCollectionRule.outputs.resourceId

@description('Resource id of the Sentinel analytics rule (empty when deploySentinelContent is false).')
output ANALYTICS_RULE_ID string = sentinel.outputs.analyticsRuleId

@description('Client id of the detector\'s managed identity (AZURE_CLIENT_ID of the app): grant it Log Analytics Reader on any UC_ADDITIONAL_WORKSPACE_IDS workspace.')
output IDENTITY_CLIENT_ID string = identity.outputs.clientId

@description('Principal (object) id of the detector\'s managed identity: for role assignments made outside this template, and doctor\'s role checks.')
output IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId

@description('Whether the deploying principal was granted the data roles to run baseline, bootstrap and doctor from their machine (grantDeployerDataAccess).')
output DEPLOYER_DATA_ACCESS bool = grantDeployer

// The app's UC_* settings, by their catalogue names (shared/config/settings.json), so that the command line run
// against this deployment (bootstrap, baseline, doctor) sees what the app sees: with azd,
// `azd env get-values > .env.azure` then `set -a; . ./.env.azure; set +a`. Secrets and Key Vault references are
// not outputs. Overrides given with settingsOverrides are not repeated here.

@description('UC_WORKSPACE_ID, as the app has it (wired from the deployed resources).')
output UC_WORKSPACE_ID string = wiredSettings.UC_WORKSPACE_ID

@description('UC_ALERTS_TABLE, as the app has it (wired from the deployed resources).')
output UC_ALERTS_TABLE string = wiredSettings.UC_ALERTS_TABLE

@description('UC_INGESTION_ENDPOINT, as the app has it (wired from the deployed resources).')
output UC_INGESTION_ENDPOINT string = wiredSettings.UC_INGESTION_ENDPOINT

@description('UC_DCR_IMMUTABLE_ID, as the app has it (wired from the deployed resources).')
output UC_DCR_IMMUTABLE_ID string = wiredSettings.UC_DCR_IMMUTABLE_ID

@description('UC_TABLE_ENDPOINT, as the app has it (wired from the deployed resources).')
output UC_TABLE_ENDPOINT string = wiredSettings.UC_TABLE_ENDPOINT

@description('UC_TABLE_PREFIX, as the app has it (wired from the deployed resources).')
output UC_TABLE_PREFIX string = wiredSettings.UC_TABLE_PREFIX

@description('UC_QUEUE_ENDPOINT, as the app has it (wired from the deployed resources).')
output UC_QUEUE_ENDPOINT string = wiredSettings.UC_QUEUE_ENDPOINT

@description('UC_SHARD_QUEUE, as the app has it (wired from the deployed resources).')
output UC_SHARD_QUEUE string = wiredSettings.UC_SHARD_QUEUE

@description('UC_BLOB_ENDPOINT, as the app has it (wired from the deployed resources).')
output UC_BLOB_ENDPOINT string = wiredSettings.UC_BLOB_ENDPOINT

@description('UC_GEOIP_BLOB, as the app has it (wired from the deployed resources).')
output UC_GEOIP_BLOB string = wiredSettings.UC_GEOIP_BLOB

@description('UC_GEOIP_EDITION, as the app has it (wired from the deployed resources).')
output UC_GEOIP_EDITION string = wiredSettings.UC_GEOIP_EDITION

@description('UC_SERVICE_TAGS_BLOB, as the app has it (wired from the deployed resources).')
output UC_SERVICE_TAGS_BLOB string = wiredSettings.UC_SERVICE_TAGS_BLOB

@description('UC_SERVICE_TAGS_SUBSCRIPTION_ID, as the app has it (this subscription when grantServiceTagsRead).')
output UC_SERVICE_TAGS_SUBSCRIPTION_ID string = wiredSettings.UC_SERVICE_TAGS_SUBSCRIPTION_ID

@description('UC_SERVICE_TAGS_LOCATION, as the app has it (the deployment\'s location).')
output UC_SERVICE_TAGS_LOCATION string = wiredSettings.UC_SERVICE_TAGS_LOCATION
@description('UC_ARM_ENDPOINT, as the app has it (wired from the deployed resources).')
output UC_ARM_ENDPOINT string = wiredSettings.UC_ARM_ENDPOINT

@description('UC_IDENTITY_PRINCIPAL_ID, as the app has it (wired from the deployed resources).')
output UC_IDENTITY_PRINCIPAL_ID string = wiredSettings.UC_IDENTITY_PRINCIPAL_ID

@description('UC_WORKSPACE_RESOURCE_ID, as the app has it (wired from the deployed resources).')
output UC_WORKSPACE_RESOURCE_ID string = wiredSettings.UC_WORKSPACE_RESOURCE_ID

@description('UC_STORAGE_RESOURCE_ID, as the app has it (wired from the deployed resources).')
output UC_STORAGE_RESOURCE_ID string = wiredSettings.UC_STORAGE_RESOURCE_ID

@description('UC_DCR_RESOURCE_ID, as the app has it (wired from the deployed resources).')
output UC_DCR_RESOURCE_ID string = wiredSettings.UC_DCR_RESOURCE_ID

@description('UC_KEY_VAULT_RESOURCE_ID, as the app has it (wired from the deployed resources).')
output UC_KEY_VAULT_RESOURCE_ID string = wiredSettings.UC_KEY_VAULT_RESOURCE_ID

@description('UC_APPINSIGHTS_RESOURCE_ID, as the app has it (wired from the deployed resources).')
output UC_APPINSIGHTS_RESOURCE_ID string = wiredSettings.UC_APPINSIGHTS_RESOURCE_ID

@description('UC_ANALYTICS_RULE_ID, as the app has it (wired from the deployed resources).')
output UC_ANALYTICS_RULE_ID string = wiredSettings.UC_ANALYTICS_RULE_ID

@description('UC_SCHEDULE, as the app has it (a parameter of this template).')
output UC_SCHEDULE string = tunedSettings.UC_SCHEDULE

@description('UC_TICK_INTERVAL, as the app has it (a parameter of this template).')
output UC_TICK_INTERVAL string = tunedSettings.UC_TICK_INTERVAL

@description('UC_LOOKBACK, as the app has it (a parameter of this template).')
output UC_LOOKBACK string = tunedSettings.UC_LOOKBACK

@description('UC_RUN_BUDGET, as the app has it (a parameter of this template).')
output UC_RUN_BUDGET string = tunedSettings.UC_RUN_BUDGET

@description('UC_ALERT_THRESHOLD, as the app has it (a parameter of this template).')
output UC_ALERT_THRESHOLD string = tunedSettings.UC_ALERT_THRESHOLD

@description('UC_ALERT_COOLDOWN, as the app has it (a parameter of this template).')
output UC_ALERT_COOLDOWN string = tunedSettings.UC_ALERT_COOLDOWN

@description('UC_RESCORE_MARGIN, as the app has it (a parameter of this template).')
output UC_RESCORE_MARGIN string = tunedSettings.UC_RESCORE_MARGIN

@description('UC_DAILY_ALERT_CAP, as the app has it (a parameter of this template).')
output UC_DAILY_ALERT_CAP string = tunedSettings.UC_DAILY_ALERT_CAP

@description('UC_EGRESS_RANGES, as the app has it (a parameter of this template).')
output UC_EGRESS_RANGES string = tunedSettings.UC_EGRESS_RANGES

@description('UC_EGRESS_SCORE_CAP, as the app has it (a parameter of this template).')
output UC_EGRESS_SCORE_CAP string = tunedSettings.UC_EGRESS_SCORE_CAP

@description('UC_FAMILIAR_SCORE_CAP, as the app has it (a parameter of this template).')
output UC_FAMILIAR_SCORE_CAP string = tunedSettings.UC_FAMILIAR_SCORE_CAP

@description('UC_CATEGORIES, as the app has it (a parameter of this template).')
output UC_CATEGORIES string = tunedSettings.UC_CATEGORIES

@description('UC_STATUSES, as the app has it (a parameter of this template).')
output UC_STATUSES string = tunedSettings.UC_STATUSES

@description('UC_NO_CITY_MODE, as the app has it (a parameter of this template).')
output UC_NO_CITY_MODE string = tunedSettings.UC_NO_CITY_MODE

@description('UC_ALERT_NAME, as the app has it (a parameter of this template).')
output UC_ALERT_NAME string = tunedSettings.UC_ALERT_NAME

@description('UC_ALERT_SEVERITY, as the app has it (a parameter of this template).')
output UC_ALERT_SEVERITY string = tunedSettings.UC_ALERT_SEVERITY

@description('UC_ADDITIONAL_WORKSPACE_IDS, as the app has it (a parameter of this template).')
output UC_ADDITIONAL_WORKSPACE_IDS string = tunedSettings.UC_ADDITIONAL_WORKSPACE_IDS

@description('UC_GEOIP_REFRESH_SCHEDULE, as the app has it (a parameter of this template).')
output UC_GEOIP_REFRESH_SCHEDULE string = tunedSettings.UC_GEOIP_REFRESH_SCHEDULE

@description('UC_GEOIP_MAX_AGE_DAYS, as the app has it (a parameter of this template).')
output UC_GEOIP_MAX_AGE_DAYS string = tunedSettings.UC_GEOIP_MAX_AGE_DAYS

@description('UC_TELEMETRY_INCLUDE_IDENTITIES, as the app has it (a parameter of this template).')
output UC_TELEMETRY_INCLUDE_IDENTITIES string = tunedSettings.UC_TELEMETRY_INCLUDE_IDENTITIES

@description('UC_SHARDING, as the app has it (a parameter of this template).')
output UC_SHARDING string = tunedSettings.UC_SHARDING

@description('UC_SHARD_COUNT, as the app has it (a parameter of this template).')
output UC_SHARD_COUNT string = tunedSettings.UC_SHARD_COUNT
