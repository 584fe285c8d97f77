metadata description = 'The detector\'s user-assigned managed identity: the one principal every role assignment names.'

@description('Required. Name of the user-assigned managed identity.')
param name string

@description('Required. Azure region.')
param location string

@description('Optional. Tags for the identity.')
param tags object = {}

// User-assigned rather than system-assigned: its principal exists before the Function App, so the role
// assignments and Key Vault access are in place when the app starts (no first-run permission failures), and it
// survives re-creating the app.
resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

@description('Resource id: the Function App\'s identity, Key Vault reference identity and deployment-storage identity.')
output resourceId string = identity.id

@description('Principal (object) id: the principal of every role assignment.')
output principalId string = identity.properties.principalId

@description('Client id: AZURE_CLIENT_ID, AzureWebJobsStorage__clientId and the App Insights authentication string.')
output clientId string = identity.properties.clientId

@description('Name of the identity.')
output name string = identity.name
