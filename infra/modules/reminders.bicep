// Two tables in the bot's storage account: !remindme's `reminders` (the reminders-due queue comes
// with the other queues, from commands.json), and `commandruns`, where a command claims a side
// effect (an !mc RCON command) per Discord message/interaction id, so that a redelivered message
// does it once (function_runtime/once.py). The identity's table access is storage.bicep's
// account-wide Storage Table Data Contributor role, which the Functions host needs anyway for its
// own diagnostic tables. Kept in its own module so storage.bicep stays the queues' and blobs' file.
@description('Name of the existing storage account (modules/storage.bicep).')
param storageAccountName string
@description('Table name: the registry\'s REMINDERS_TABLE.')
param tableName string = 'reminders'
@description('Table name: the registry\'s COMMAND_RUNS_TABLE, at-most-once claims of command side effects (RCON commands) keyed by Discord message/interaction id.')
param commandRunsTableName string = 'commandruns'

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
resource commandRunsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: commandRunsTableName
}
output tableEndpoint string = account.properties.primaryEndpoints.table
