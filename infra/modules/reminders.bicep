// !remindme's state: the `reminders` table in the bot's storage account, and the identity's
// table data access on that table only (the reminders-due queue comes with the other queues,
// from commands.json). Kept in its own module so storage.bicep stays the queues' and blobs' file.
@description('Name of the existing storage account (modules/storage.bicep).')
param storageAccountName string
@description('Table name: the registry\'s REMINDERS_TABLE.')
param tableName string = 'reminders'
@description('Principal id of the apps\' managed identity.')
param principalId string

var tableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160ff3'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}
resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}
resource table 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: tableName
}
resource tableRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(table.id, principalId, tableDataContributor)
  scope: table
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', tableDataContributor)
  }
}
output tableEndpoint string = account.properties.primaryEndpoints.table
