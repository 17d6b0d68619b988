// !remindme's state: the `reminders` table in the bot's storage account (the reminders-due queue
// comes with the other queues, from commands.json). The identity's table access is storage.bicep's
// account-wide Storage Table Data Contributor role, which the Functions host needs anyway for its
// own diagnostic tables. Kept in its own module so storage.bicep stays the queues' and blobs' file.
@description('Name of the existing storage account (modules/storage.bicep).')
param storageAccountName string
@description('Table name: the registry\'s REMINDERS_TABLE.')
param tableName string = 'reminders'

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
output tableEndpoint string = account.properties.primaryEndpoints.table
