// Optional Azure Managed Redis: the bot's Discord rate limits shared by every process (REDIS_URL,
// docs/DESIGN.md "Rate limits across processes"). Microsoft Entra authentication only (access keys
// disabled); the identity both processes run as is its one user (the "default" access policy).
// Turn it on (main.bicep useRedis) once more than one process sends to Discord at a time in
// earnest: a burst spreads over several function instances, or the listener runs as several
// shard processes. Cost: Balanced_B0, about USD 13 a month (docs/performance.md).

@description('Azure region.')
param location string

@description('Name of the Azure Managed Redis instance.')
param name string

@description('Tags for every resource.')
param tags object

@description('Object id of the managed identity both processes run as: the only Redis user.')
param principalId string

@description('Azure Managed Redis SKU (Balanced_B0 is the smallest; the limiter needs a few hundred operations per second).')
param skuName string = 'Balanced_B0'

resource redis 'Microsoft.Cache/redisEnterprise@2024-09-01-preview' = {
  name: name
  location: location
  tags: tags
  sku: { name: skuName }
  properties: {
    minimumTlsVersion: '1.2'
  }
}

resource database 'Microsoft.Cache/redisEnterprise/databases@2024-09-01-preview' = {
  parent: redis
  name: 'default'
  properties: {
    clientProtocol: 'Encrypted'
    port: 10000
    clusteringPolicy: 'EnterpriseCluster' // one endpoint; the limiter's keys share one hash tag
    evictionPolicy: 'NoEviction'
    accessKeysAuthentication: 'Disabled'
  }
}

resource botUser 'Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments@2024-09-01-preview' = {
  parent: database
  name: 'botidentity'
  properties: {
    accessPolicyName: 'default'
    user: { objectId: principalId }
  }
}

@description('REDIS_URL for both processes: TLS, no password (the client signs in with a Microsoft Entra token).')
output url string = 'rediss://${redis.properties.hostName}:10000'
