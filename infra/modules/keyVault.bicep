metadata description = 'Key Vault (RBAC mode) for the MaxMind account id and licence key. The template creates no secret: operators set them with az keyvault secret set (README.md, "Deploying to Azure").'

import { roleIds } from 'roles.bicep'

@description('Required. Key Vault name (3-24 letters, digits and hyphens, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Required. Azure region.')
param location string

@description('Optional. Tags for the vault.')
param tags object = {}

@description('Required. Principal id of the detector\'s managed identity (granted Key Vault Secrets User).')
param principalId string

@description('Optional. Principal id of the person or pipeline that sets the MaxMind secrets, granted Key Vault Secrets Officer on this vault. Empty: nobody (assign the role yourself).')
param secretsOfficerPrincipalId string = ''

@description('Optional. Principal type of secretsOfficerPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param secretsOfficerPrincipalType string = 'User'

@description('Optional. Purge protection: a deleted vault (and its secrets) cannot be purged for the retention period, and its name stays taken. Cannot be turned off once on.')
param enablePurgeProtection bool = false

@description('Optional. Recover the soft-deleted vault of this name (with its secrets) instead of creating one: the redeployment after `azd down` without --purge. Fails when no such deleted vault exists.')
param recoverSoftDeleted bool = false

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    // RBAC, not access policies: access is a role assignment on this vault, reviewable like every other right.
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // The API rejects false once purge protection exists, so "off" is expressed by leaving the property out.
    enablePurgeProtection: enablePurgeProtection ? true : null
    // 'recover' brings back a soft-deleted vault of this name; 'default' creates it (and fails while a deleted one
    // holds the name: see README.md, "Deploying to Azure").
    createMode: recoverSoftDeleted ? 'recover' : 'default'
    // App Service resolves Key Vault references over the public endpoint unless the app is VNet-integrated.
    publicNetworkAccess: 'Enabled'
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roleIds.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource secretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(secretsOfficerPrincipalId)) {
  name: guid(vault.id, secretsOfficerPrincipalId, roleIds.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsOfficer)
    principalId: secretsOfficerPrincipalId
    principalType: secretsOfficerPrincipalType
  }
}

@description('Resource id of the vault.')
output resourceId string = vault.id

@description('Name of the vault: az keyvault secret set --vault-name.')
output name string = vault.name

@description('Vault URI (trailing slash): the base of the Key Vault references in app settings.')
output uri string = vault.properties.vaultUri
