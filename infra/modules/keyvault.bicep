// Key Vault (RBAC) for the secrets both processes read by reference: the Discord token, the
// Honeycomb ingest key and the App Insights connection string. A secret passed to the deployment
// (secure parameter) is written here; an empty one leaves what the vault already holds.

@description('Azure region.')
param location string

@description('Key Vault name (3-24 letters, digits and hyphens).')
param name string

@description('Tags for every resource.')
param tags object

@description('Principal id of the apps\' managed identity (gets Key Vault Secrets User).')
param principalId string

@secure()
@description('Discord bot token to store as secret discord-token; empty keeps the stored one.')
param discordToken string

@secure()
@description('Honeycomb ingest key to store as secret honeycomb-api-key; empty keeps the stored one.')
param honeycombApiKey string

@description('Application Insights resource whose connection string is stored as secret appinsights-connection-string.')
param appInsightsName string

@secure()
@description('!mc\'s RCON password to store as secret minecraft-rcon-password; empty keeps the stored one.')
param minecraftRconPassword string = ''

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

var secretsUserRole = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: Flex Consumption and Container Apps without VNet integration reach the vault over its public endpoint; access is Entra RBAC only
  // checkov:skip=CKV_AZURE_189: same reason as CKV_AZURE_109 (no private endpoint in this template)
  // checkov:skip=CKV2_AZURE_32: same reason as CKV_AZURE_109 (no private endpoint in this template)
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

resource discordTokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(discordToken)) {
  // checkov:skip=CKV_AZURE_114: contentType is set below; checkov does not read the properties of a conditional resource
  // checkov:skip=CKV_AZURE_41: a bot token does not expire; an expiry date would stop the bot silently (rotate it in the Discord portal and set it again)
  parent: vault
  name: 'discord-token'
  properties: { value: discordToken, contentType: 'text/plain' }
}

resource honeycombSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(honeycombApiKey)) {
  // checkov:skip=CKV_AZURE_114: contentType is set below; checkov does not read the properties of a conditional resource
  // checkov:skip=CKV_AZURE_41: Honeycomb ingest keys do not expire; an expiry date would silently stop telemetry
  parent: vault
  name: 'honeycomb-api-key'
  properties: { value: honeycombApiKey, contentType: 'text/plain' }
}

resource appInsightsSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: rewritten from the App Insights resource at every deployment; it does not expire
  parent: vault
  name: 'appinsights-connection-string'
  properties: { value: appInsights.properties.ConnectionString, contentType: 'text/plain' }
}

resource minecraftRconSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(minecraftRconPassword)) {
  // checkov:skip=CKV_AZURE_114: contentType is set below; checkov does not read the properties of a conditional resource
  // checkov:skip=CKV_AZURE_41: an RCON password does not expire by itself; rotate it on the server and set it again
  parent: vault
  name: 'minecraft-rcon-password'
  properties: { value: minecraftRconPassword, contentType: 'text/plain' }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, secretsUserRole)
  scope: vault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUserRole)
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
output discordTokenUri string = '${vault.properties.vaultUri}secrets/discord-token'
output honeycombApiKeyUri string = '${vault.properties.vaultUri}secrets/honeycomb-api-key'
output appInsightsConnectionStringUri string = '${vault.properties.vaultUri}secrets/appinsights-connection-string'
output minecraftRconPasswordUri string = '${vault.properties.vaultUri}secrets/minecraft-rcon-password'
