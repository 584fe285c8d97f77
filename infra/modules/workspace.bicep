metadata description = 'What the detector needs inside the Log Analytics workspace: the alerts table (schema from shared/alerts/columns.json) and read access to AzureActivity. Deployed in the workspace\'s resource group, which may differ from the app\'s.'

import { roleIds } from 'roles.bicep'

@description('Required. Name of the existing Log Analytics workspace (in this deployment\'s resource group).')
param workspaceName string

@description('Required. Name of the alerts table (UC_ALERTS_TABLE), ending in _CL.')
param tableName string

@description('Optional. Interactive retention of the alerts table in days; -1 uses the workspace default.')
@minValue(-1)
@maxValue(730)
param tableRetentionInDays int = -1

@description('Optional. Total retention (interactive plus long-term) of the alerts table in days; -1 uses the workspace default.')
@minValue(-1)
@maxValue(4383)
param tableTotalRetentionInDays int = -1

@description('Required. Principal id of the detector\'s managed identity (granted Log Analytics Reader on the workspace).')
param principalId string

@description('Optional. Principal id of an operator (the person or pipeline deploying) granted Log Analytics Reader, to run baseline, bootstrap and doctor from their machine. Empty: nobody.')
param operatorPrincipalId string = ''

@description('Optional. Principal type of operatorPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

// One source of truth for the alert columns: the code builds rows from the same file (shared/alerts/alert.ts),
// and test/infra checks that nothing here drifts from it.
var alertColumns = loadJsonContent('../../shared/alerts/columns.json').columns

// columns.json uses the code's type names; Log Analytics table schemas spell two of them differently.
var tableColumnTypes = {
  string: 'string'
  int: 'int'
  long: 'long'
  real: 'real'
  bool: 'boolean'
  datetime: 'dateTime'
  dynamic: 'dynamic'
}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource alertsTable 'Microsoft.OperationalInsights/workspaces/tables@2022-10-01' = {
  parent: workspace
  name: tableName
  properties: {
    // Analytics plan: Sentinel analytics rules and workbooks can only query Analytics (and Basic for some
    // operators) tables; alerts are few, so the plan costs next to nothing.
    plan: 'Analytics'
    // -1 is the service's "use the workspace's retention", but the type declares 4-730 (total: 4-4383): the
    // warning is suppressed as Azure Verified Modules do, since -1 is what a table following its workspace needs.
    #disable-next-line BCP328
    retentionInDays: tableRetentionInDays
    #disable-next-line BCP328
    totalRetentionInDays: tableTotalRetentionInDays
    schema: {
      name: tableName
      columns: map(alertColumns, c => {
        name: c.name
        type: tableColumnTypes[c.type]
        description: c.description
      })
    }
  }
}

resource logAnalyticsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, principalId, roleIds.logAnalyticsReader)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.logAnalyticsReader)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The operator's own identity (grantDeployerDataAccess): bootstrap and baseline read AzureActivity, doctor reads
// it, the alerts table and the Sentinel rule (an extension resource of the workspace).
resource operatorLogAnalyticsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(workspace.id, operatorPrincipalId, roleIds.logAnalyticsReader)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.logAnalyticsReader)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

@description('Workspace (customer) id, a GUID: UC_WORKSPACE_ID.')
output customerId string = workspace.properties.customerId

@description('Region of the workspace: the data collection rule must be in the same region.')
output location string = workspace.location

@description('Name of the alerts table: the DCR\'s output stream is Custom-<name>.')
output tableName string = alertsTable.name
