metadata description = 'Workspace-based Application Insights with local (instrumentation key) authentication disabled: telemetry is accepted only with an Entra ID token of the detector\'s identity.'

import { roleIds } from 'roles.bicep'

@description('Required. Application Insights component name.')
param name string

@description('Required. Azure region.')
param location string

@description('Optional. Tags for the component.')
param tags object = {}

@description('Required. Resource id of the Log Analytics workspace the telemetry is stored in.')
param workspaceResourceId string

@description('Required. Principal id of the detector\'s managed identity (granted Monitoring Metrics Publisher here).')
param principalId string

@description('Optional. Refuse telemetry sent with the instrumentation key alone. Keep true in production; the app authenticates with APPLICATIONINSIGHTS_AUTHENTICATION_STRING.')
param disableLocalAuth bool = true

resource component 'Microsoft.Insights/components@2020-02-02' = {
  name: name
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspaceResourceId
    IngestionMode: 'LogAnalytics'
    // The connection string carries only the instrumentation key, an identifier: with local auth off it
    // cannot be used to send (or forge) telemetry.
    DisableLocalAuth: disableLocalAuth
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(component.id, principalId, roleIds.monitoringMetricsPublisher)
  scope: component
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

@description('Resource id of the component: the data source of the workbook\'s detector-health queries.')
output resourceId string = component.id

@description('Application id of the component: the Application Insights query API.')
output appId string = component.properties.AppId

@description('Name of the component.')
output name string = component.name

