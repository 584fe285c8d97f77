metadata name = 'unusual-city activity log routing'
metadata description = 'Routes the subscription\'s Activity Log into the Log Analytics workspace (the AzureActivity table the detector reads). Subscription scope: deploy once per monitored subscription.'

targetScope = 'subscription'

@description('Required. Resource id of the Log Analytics workspace (the WORKSPACE_RESOURCE_ID output of infra/main.bicep). It may be in another subscription of the same tenant.')
param workspaceResourceId string

@description('Optional. Name of the diagnostic setting. A subscription allows at most five; reuse an existing setting that already targets this workspace instead of adding a second one.')
param diagnosticSettingName string = 'unusual-city-activity-log'

@description('Optional. Activity Log categories sent to the workspace. The detector analyses all of them unless UC_CATEGORIES narrows it; Administrative is the one that matters most (control-plane writes and actions).')
@allowed([
  'Administrative'
  'Security'
  'ServiceHealth'
  'Alert'
  'Recommendation'
  'Policy'
  'Autoscale'
  'ResourceHealth'
])
param categories array = [
  'Administrative'
  'Security'
  'ServiceHealth'
  'Alert'
  'Recommendation'
  'Policy'
  'Autoscale'
  'ResourceHealth'
]

// Microsoft.Insights/diagnosticSettings has no GA API version; 2021-05-01-preview is the current one.
resource activityLog 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: diagnosticSettingName
  properties: {
    workspaceId: workspaceResourceId
    logs: [
      for category in categories: {
        category: category
        enabled: true
      }
    ]
  }
}

@description('Resource id of the diagnostic setting.')
output diagnosticSettingId string = activityLog.id
