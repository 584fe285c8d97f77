metadata description = 'Read access for an operator\'s own identity on the detector\'s resource group (grantDeployerDataAccess): what `unusual-city doctor` reads through Azure Resource Manager (the data collection rule, Application Insights and its last run, the detector identity\'s role assignments). The data roles (tables, GeoIP blob, workspace) are granted by the storage and workspace modules.'

import { roleIds } from 'roles.bicep'

@description('Required. Principal id of the operator (the person or pipeline deploying).')
param operatorPrincipalId string

@description('Optional. Principal type of operatorPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

// Monitoring Reader: read-only (*/read and log queries), on this resource group only.
resource monitoringReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, operatorPrincipalId, roleIds.monitoringReader)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.monitoringReader)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

@description('Resource id of the role assignment.')
output roleAssignmentId string = monitoringReader.id
