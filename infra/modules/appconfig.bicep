// Optional App Configuration store for feature flags (shared/flags.py reads it with the managed
// identity when AZURE_APPCONFIG_ENDPOINT is set). Local auth off: Entra ID only.

@description('Azure region.')
param location string

@description('App Configuration store name.')
param name string

@description('Tags for every resource.')
param tags object

@description('Principal id of the apps\' managed identity (gets App Configuration Data Reader).')
param principalId string

var dataReaderRole = '516239f1-63e1-4d78-a4de-a74fb236a071'

resource store 'Microsoft.AppConfiguration/configurationStores@2023-03-01' = {
  // checkov:skip=CKV_AZURE_185: Free tier has no purge protection; flags are re-creatable from feature_flags.example.json
  // checkov:skip=CKV_AZURE_186: Free tier has no geo-replication; flags fall back to their defaults when the store is unreachable
  // checkov:skip=CKV_AZURE_187: Free tier has no private endpoints; access is Entra only (local auth disabled)
  // checkov:skip=CKV_AZURE_188: Free tier has no customer-managed keys; flags are not sensitive
  name: name
  location: location
  tags: tags
  sku: { name: 'free' }
  properties: {
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(store.id, principalId, dataReaderRole)
  scope: store
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', dataReaderRole)
  }
}

output endpoint string = store.properties.endpoint
