metadata description = 'Microsoft Sentinel content over the alerts table: optional onboarding of the workspace, a Scheduled analytics rule turning each alert row into a Sentinel alert and incident, and the Unusual City workbook. Deployed in the workspace\'s resource group.'

@description('Required. Name of the Log Analytics workspace (in this deployment\'s resource group).')
param workspaceName string

@description('Required. Name of the alerts table (UC_ALERTS_TABLE).')
param tableName string

@description('Required. Resource id of the Application Insights component the workbook reads detector health from.')
param appInsightsResourceId string

@description('Optional. Enable Microsoft Sentinel on the workspace. Leave false when it already is (a Sentinel workspace).')
param onboardSentinel bool = false

@description('Optional. Create the Scheduled analytics rule.')
param deployAnalyticsRule bool = true

@description('Optional. Create the workbook.')
param deployWorkbook bool = true

@description('Optional. Whether the analytics rule is enabled when created.')
param analyticsRuleEnabled bool = true

@description('Optional. Display name of the analytics rule.')
param analyticsRuleDisplayName string = 'Unusual City for an Azure Activity Logs Event'

@description('Optional. Severity of the rule; each alert takes the Severity column (UC_ALERT_SEVERITY) when it holds one of these.')
@allowed([
  'Informational'
  'Low'
  'Medium'
  'High'
])
param analyticsRuleSeverity string = 'Low'

@description('Optional. Display name of the workbook.')
param workbookDisplayName string = 'Unusual City'

@description('Optional. Azure region of the workbook resource.')
param location string = resourceGroup().location

@description('Optional. Tags for the workbook.')
param tags object = {}

// The files keep the alerts table's default name; a deployment with another UC_ALERTS_TABLE rewrites it.
var defaultTableName = loadJsonContent('../../shared/alerts/columns.json').table

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource onboarding 'Microsoft.SecurityInsights/onboardingStates@2024-03-01' = if (onboardSentinel) {
  name: 'default'
  scope: workspace
  properties: {}
}

// Runs every 15 minutes over the last 14 days (ISO 8601 below, `frequency` and `lookback` in the query; test/infra
// checks they agree). The query selects alerts by when they arrived (ingestion_time()), not by TimeGenerated, the
// detector's slot: an alert delivered hours late (a catch-up run after an outage, an outbox retry) still raises an
// incident. Sentinel filters TimeGenerated on the query period, so the period is the latest an alert may arrive:
// 14 days, the longest Sentinel allows. Each alert is raised by the run that holds its first ingestion
// (sentinel/rule.kql); redeliveries of the same AlertId within the period raise nothing.
resource analyticsRule 'Microsoft.SecurityInsights/alertRules@2024-03-01' = if (deployAnalyticsRule) {
  name: guid(workspace.id, 'unusual-city-analytics-rule')
  scope: workspace
  kind: 'Scheduled'
  dependsOn: [
    onboarding
  ]
  properties: {
    displayName: analyticsRuleDisplayName
    description: 'An Azure Activity Log operation was performed from a city that is unusual for that operation in this tenant (MITRE ATT&CK T1078.004, Valid Accounts: Cloud Accounts). Raised by the unusual-city detector; each alert lists the operation\'s known cities and every factor behind its score.'
    enabled: analyticsRuleEnabled
    severity: analyticsRuleSeverity
    query: replace(loadTextContent('../sentinel/rule.kql'), defaultTableName, tableName)
    queryFrequency: 'PT15M'
    queryPeriod: 'P14D'
    triggerOperator: 'GreaterThan'
    triggerThreshold: 0
    // The detector already limits alerts (one per caller and city episode, UC_ALERT_COOLDOWN, a daily cap):
    // rule-level suppression would hide different callers' alerts behind the first.
    suppressionEnabled: false
    suppressionDuration: 'PT1H'
    tactics: [
      'InitialAccess'
    ]
    // Rule techniques take parent technique ids; T1078.004 (Cloud Accounts) only fits a subTechniques
    // property, which the GA API versions (up to 2025-09-01) do not have. The alert rows carry
    // Techniques = T1078,T1078.004 and the description names the sub-technique.
    techniques: [
      'T1078'
    ]
    eventGroupingSettings: {
      // One Sentinel alert per alert row (per detector alert), never one per rule run.
      aggregationKind: 'AlertPerResult'
    }
    entityMappings: [
      {
        // Users: Caller is a UPN.
        entityType: 'Account'
        fieldMappings: [
          {
            identifier: 'FullName'
            columnName: 'AccountUpn'
          }
        ]
      }
      {
        // Service principals and managed identities: Caller is an object id.
        entityType: 'Account'
        fieldMappings: [
          {
            identifier: 'AadUserId'
            columnName: 'AccountObjectId'
          }
        ]
      }
      {
        entityType: 'IP'
        fieldMappings: [
          {
            identifier: 'Address'
            columnName: 'SrcIpAddr'
          }
        ]
      }
      {
        entityType: 'AzureResource'
        fieldMappings: [
          {
            identifier: 'ResourceId'
            columnName: 'ResourceId'
          }
        ]
      }
    ]
    customDetails: {
      City: 'SrcGeoCity'
      Country: 'SrcGeoCountry'
      AnomalyScore: 'AnomalyScore'
      // Display forms (sentinel/rule.kql): the raw values stay in the alert row's columns.
      Operation: 'OperationDisplay'
      CallerType: 'CallerType'
      AlertId: 'AlertId'
    }
    alertDetailsOverride: {
      // Attacker-controlled text (operation, caller) reaches people here: only the query's display columns, with
      // control, format and separator characters removed and the length bounded.
      alertDisplayNameFormat: '{{AlertName}}: {{OperationDisplay}} from {{CityDisplay}}'
      alertDescriptionFormat: '{{DescriptionDisplay}}'
      alertSeverityColumnName: 'Severity'
    }
    incidentConfiguration: {
      createIncident: true
      groupingConfiguration: {
        // One incident per caller per day: the detector already folds a caller's rare operations from one city
        // into one alert, and further cities of the same caller belong to the same investigation.
        enabled: true
        reopenClosedIncident: false
        lookbackDuration: 'P1D'
        matchingMethod: 'Selected'
        groupByEntities: [
          'Account'
        ]
        groupByAlertDetails: []
        groupByCustomDetails: []
      }
    }
  }
}

// The workbook JSON is kept as the portal's Advanced Editor shows it, with two placeholders: its own workspace
// (fallbackResourceIds) and the Application Insights component of the health section.
var workbookContent = replace(
  replace(
    replace(loadTextContent('../sentinel/workbook/workbook.json'), '__WORKSPACE_RESOURCE_ID__', workspace.id),
    '__APP_INSIGHTS_RESOURCE_ID__',
    appInsightsResourceId
  ),
  defaultTableName,
  tableName
)

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = if (deployWorkbook) {
  name: guid(resourceGroup().id, workspace.id, 'unusual-city-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: workbookDisplayName
    category: 'sentinel'
    sourceId: workspace.id
    serializedData: workbookContent
  }
}

@description('Resource id of the analytics rule (empty when not deployed).')
output analyticsRuleId string = deployAnalyticsRule ? analyticsRule.id : ''

@description('Resource id of the workbook (empty when not deployed).')
output workbookId string = deployWorkbook ? workbook.id : ''
