metadata description = 'The custom role "unusual-city Service Tags Reader" (only Microsoft.Network/locations/serviceTags/read) in this subscription, assigned to the detector\'s managed identity at subscription scope: refreshServiceTags reads Microsoft\'s datacentre ranges per region with it. Subscription scope; needs Owner or User Access Administrator on the subscription to deploy.'

targetScope = 'subscription'

import { serviceTagsReaderRole } from 'roles.bicep'

@description('Required. Principal (object) id of the detector\'s managed identity.')
param principalId string

// One definition per subscription: its id is derived from the subscription, its name carries the subscription id
// (custom role names are unique in the tenant), and it can only be assigned in this subscription.
resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, serviceTagsReaderRole.seed)
  properties: {
    roleName: '${serviceTagsReaderRole.roleName} (${subscription().subscriptionId})'
    description: 'Lists the Azure Service Tags (Microsoft datacentre address ranges per region) and nothing else. Used by unusual-city\'s refreshServiceTags function.'
    type: 'CustomRole'
    permissions: [
      {
        actions: serviceTagsReaderRole.actions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

// Named from (scope, principal, role), so a redeployment finds the same assignment instead of failing on a duplicate.
resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, role.id)
  properties: {
    roleDefinitionId: role.id
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

@description('Resource id of the custom role definition.')
output roleDefinitionId string = role.id

@description('Resource id of the role assignment.')
output roleAssignmentId string = assignment.id
