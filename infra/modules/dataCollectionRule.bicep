metadata description = 'The data collection rule (kind Direct, no data collection endpoint) through which the detector writes alerts with the Logs Ingestion API.'

import { roleIds } from 'roles.bicep'

@description('Required. Name of the data collection rule.')
param name string

@description('Required. Region: must be the workspace\'s region.')
param location string

@description('Optional. Tags for the rule.')
param tags object = {}

@description('Required. Resource id of the Log Analytics workspace holding the alerts table.')
param workspaceResourceId string

@description('Required. Name of the alerts table (already created: the DCR is rejected if its output table does not exist).')
param tableName string

@description('Required. Principal id of the detector\'s managed identity (granted Monitoring Metrics Publisher on this rule).')
param principalId string

// The same column file as the table and the code: an upload whose row shape differs from the stream
// declaration loses the extra columns silently, so they must never drift.
var alertColumns = loadJsonContent('../../shared/alerts/columns.json').columns

// columns.json type names to DCR stream declaration types (lower-case datetime, unlike table schemas).
var streamColumnTypes = {
  string: 'string'
  int: 'int'
  long: 'long'
  real: 'real'
  bool: 'boolean'
  datetime: 'datetime'
  dynamic: 'dynamic'
}

// Custom-<UC_ALERTS_TABLE>: the stream the detector uploads to.
var streamName = 'Custom-${tableName}'

resource rule 'Microsoft.Insights/dataCollectionRules@2023-03-11' = {
  name: name
  location: location
  tags: tags
  // Direct: the rule has its own logs ingestion endpoint, so no data collection endpoint resource is needed.
  kind: 'Direct'
  properties: {
    streamDeclarations: {
      '${streamName}': {
        columns: map(alertColumns, c => {
          name: c.name
          type: streamColumnTypes[c.type]
        })
      }
    }
    destinations: {
      logAnalytics: [
        {
          name: 'alertsWorkspace'
          workspaceResourceId: workspaceResourceId
        }
      ]
    }
    dataFlows: [
      {
        streams: [
          streamName
        ]
        destinations: [
          'alertsWorkspace'
        ]
        // Rows arrive in the table's exact shape: no transformation.
        transformKql: 'source'
        outputStream: streamName
      }
    ]
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(rule.id, principalId, roleIds.monitoringMetricsPublisher)
  scope: rule
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

@description('Resource id of the rule.')
output resourceId string = rule.id

@description('Immutable id (dcr-...): UC_DCR_IMMUTABLE_ID.')
output immutableId string = rule.properties.immutableId

@description('Logs ingestion endpoint of the rule: UC_INGESTION_ENDPOINT.')
output ingestionEndpoint string = rule.properties.endpoints.logsIngestion

@description('Stream the detector uploads to.')
output streamName string = streamName
