metadata description = 'A new Log Analytics workspace: the Sentinel workspace of deployments without one, or the separate telemetry workspace of Application Insights.'

@description('Required. Workspace name.')
@minLength(4)
@maxLength(63)
param name string

@description('Required. Azure region.')
param location string

@description('Optional. Tags for the workspace.')
param tags object = {}

@description('Optional. Interactive retention in days. 90 is what Microsoft Sentinel includes at no extra retention cost.')
@minValue(30)
@maxValue(730)
param retentionInDays int = 90

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      // Resource-context access: a reader of one resource sees its logs without workspace-wide rights.
      enableLogAccessUsingOnlyResourcePermissions: true
    }
  }
}

@description('Resource id of the workspace (Activity Log, alerts table and Sentinel; or the telemetry).')
output resourceId string = workspace.id
