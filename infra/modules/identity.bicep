// The one user-assigned identity both processes run as: storage, Key Vault, registry and
// App Configuration grant it exactly the roles it needs (see the modules that own each resource).

@description('Azure region.')
param location string

@description('Name of the managed identity.')
param name string

@description('Tags for every resource.')
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
