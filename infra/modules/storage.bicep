// Storage for the queues (one per command + its poison queue) and the function app's
// deployment package. Entra ID only: shared-key access is off, so no account key exists in any
// setting; the identity gets queue and table access on the account and blob access only on the containers
// the Functions host uses.

@description('Azure region.')
param location string

@description('Storage account name (3-24 lower-case letters and digits).')
param name string

@description('Tags for every resource.')
param tags object

@description('Queue names: cmd-<command> and cmd-<command>-poison for every command in commands.json.')
param queueNames array

@description('Blob container the Flex Consumption deployment package is uploaded to.')
param deploymentContainerName string

@description('Principal id of the apps\' managed identity.')
param principalId string

var roles = {
  queueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  blobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  tableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
}
// The Functions host keeps its locks and keys in these two containers; with the package container
// they are the only blobs the identity can touch.
var hostContainers = ['azure-webjobs-hosts', 'azure-webjobs-secrets']

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration reaches storage over its public endpoint; access is Entra ID only (shared key disabled)
  // checkov:skip=CKV_AZURE_59: same: no private endpoints in this template; every request needs an Entra token with a data role
  // checkov:skip=CKV_AZURE_206: queues hold seconds-old chat commands and a replaceable package: LRS is enough, GRS doubles the cost
  // checkov:skip=CKV_AZURE_33: queue-service classic logging needs shared-key access; request telemetry is in App Insights traces
  // checkov:skip=CKV2_AZURE_1: customer-managed keys add a Key Vault key dependency a chat bot does not need; Microsoft-managed encryption is on
  // checkov:skip=CKV2_AZURE_33: no private endpoint (see CKV_AZURE_59)
  // checkov:skip=CKV2_AZURE_40: shared-key access is disabled below (allowSharedKeyAccess: false)
  // checkov:skip=CKV2_AZURE_41: no SAS is issued: shared key is disabled, so no SAS expiration policy applies
  // checkov:skip=CKV2_AZURE_38: soft delete covers blobs; the only blob is a package the pipeline re-uploads
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: { enabled: true, keyType: 'Account' }
        file: { enabled: true, keyType: 'Account' }
        queue: { enabled: true, keyType: 'Account' }
        table: { enabled: true, keyType: 'Account' }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
    containerDeleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queue in queueNames: {
  parent: queueService
  name: queue
}]

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: { publicAccess: 'None' }
}

resource hostContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for c in hostContainers: {
  parent: blobService
  name: c
  properties: { publicAccess: 'None' }
}]

resource queueRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roles.queueDataContributor)
  scope: account
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.queueDataContributor)
  }
}

// The host writes its diagnostic events to tables (and the reminders table lives here): without
// this role it logs "Unable to get table reference" warnings and loses them.
resource tableRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roles.tableDataContributor)
  scope: account
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.tableDataContributor)
  }
}

resource deploymentBlobRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deploymentContainer.id, principalId, roles.blobDataOwner)
  scope: deploymentContainer
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataOwner)
  }
}

resource hostBlobRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (c, i) in hostContainers: {
  name: guid(hostContainer[i].id, principalId, roles.blobDataOwner)
  scope: hostContainer[i]
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataOwner)
  }
}]

output name string = account.name
output queueEndpoint string = account.properties.primaryEndpoints.queue
output blobEndpoint string = account.properties.primaryEndpoints.blob
output tableEndpoint string = account.properties.primaryEndpoints.table
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainerName}'
