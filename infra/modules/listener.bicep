// The gateway listener on Azure Container Apps: one always-on app per shard range (min = max = 1
// replica: two replicas of one shard would answer every command twice), no ingress, probes on the
// listener's health endpoints, and a manual job that registers the slash commands.

@description('Azure region.')
param location string

@description('Name prefix for the Container Apps resources.')
param prefix string

@description('Tags for every resource.')
param tags object

@description('Log Analytics workspace name (receives the container logs).')
param workspaceName string

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of that identity.')
param identityClientId string

@description('Registry login server the image is pulled from with the identity.')
param registryServer string

@description('Listener image, e.g. <registry>.azurecr.io/discord-bot-listener:<commit>.')
param image string

@description('Queue service endpoint for identity-based storage access.')
param queueEndpoint string

@description('Key Vault secret URIs (versionless) the apps read by reference.')
param secretUris object

@description('Reference the Honeycomb key from Key Vault (the secret must exist).')
param useHoneycomb bool

@description('Plain (non-secret) settings shared with the function app.')
param commonSettings object

@description('Total Discord shards (DISCORD_SHARD_COUNT).')
param shardCount int

@description('Shards per listener app; ceil(shardCount / shardsPerListener) apps are created.')
param shardsPerListener int

@description('Port of the listener\'s /healthz and /readyz (LISTENER_HEALTH_PORT).')
param healthPort int

@description('CPU cores per listener replica (Consumption profile: 0.25 with 0.5Gi memory is the smallest).')
param cpu string

@description('Memory per listener replica, e.g. 0.5Gi.')
param memory string

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource environment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: '${prefix}-cae'
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: workspace.properties.customerId
        sharedKey: workspace.listKeys().primarySharedKey
      }
    }
    workloadProfiles: [{ name: 'Consumption', workloadProfileType: 'Consumption' }]
  }
}

// Environment variable -> Container Apps secret name (each secret is a Key Vault reference below).
var requiredSecrets = {
  DISCORD_TOKEN: 'discord-token'
  // checkov:skip=CKV_SECRET_6: a secret's name, not its value
  APPLICATIONINSIGHTS_CONNECTION_STRING: 'appinsights-connection-string'
}
var honeycombSecret = useHoneycomb ? { HONEYCOMB_API_KEY: 'honeycomb-api-key' } : {}
var secretNames = union(requiredSecrets, honeycombSecret)
var secretUrisByName = {
  'discord-token': secretUris.discordToken
  'appinsights-connection-string': secretUris.appInsightsConnectionString
  'honeycomb-api-key': secretUris.honeycombApiKey
}
var secrets = [for s in items(secretNames): { name: s.value, keyVaultUrl: secretUrisByName[s.value], identity: identityId }]
var secretEnv = [for s in items(secretNames): { name: s.key, secretRef: s.value }]
var ownSettings = {
  AzureWebJobsStorage__queueServiceUri: queueEndpoint
  LISTENER_HEALTH_HOST: '0.0.0.0' // probes come from outside the container
  LISTENER_HEALTH_PORT: string(healthPort)
  DISCORD_SHARD_COUNT: string(shardCount)
}
var plainSettings = union(commonSettings, ownSettings)
var plainEnv = [for s in items(plainSettings): { name: s.key, value: s.value }]

var listenerCount = (shardCount + shardsPerListener - 1) / shardsPerListener
// Shard ids of listener i as an inclusive range, "0-3" (the last range may be shorter).
var shardIds = [for i in range(0, listenerCount): '${i * shardsPerListener}-${min((i + 1) * shardsPerListener, shardCount) - 1}']

resource listeners 'Microsoft.App/containerApps@2024-03-01' = [for (ids, i) in shardIds: {
  name: '${prefix}-listener-${i}'
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    environmentId: environment.id
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      secrets: secrets
      registries: [{ server: registryServer, identity: identityId }]
    }
    template: {
      containers: [
        {
          name: 'listener'
          image: image
          resources: { cpu: json(cpu), memory: memory }
          env: concat(plainEnv, secretEnv, [{ name: 'DISCORD_SHARD_IDS', value: ids }])
          probes: [
            {
              type: 'Startup'
              httpGet: { path: '/healthz', port: healthPort }
              periodSeconds: 2
              failureThreshold: 30
            }
            {
              type: 'Liveness'
              httpGet: { path: '/healthz', port: healthPort }
              periodSeconds: 30
              failureThreshold: 3
            }
            {
              type: 'Readiness'
              httpGet: { path: '/readyz', port: healthPort }
              periodSeconds: 10
              failureThreshold: 3
            }
          ]
        }
      ]
      scale: { minReplicas: 1, maxReplicas: 1 }
    }
  }
}]

// `az containerapp job start -n <prefix>-sync-commands` at each release: the token stays in Azure.
resource syncCommands 'Microsoft.App/jobs@2024-03-01' = {
  name: '${prefix}-sync-commands'
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    environmentId: environment.id
    workloadProfileName: 'Consumption'
    configuration: {
      triggerType: 'Manual'
      replicaTimeout: 300
      replicaRetryLimit: 1
      manualTriggerConfig: { parallelism: 1, replicaCompletionCount: 1 }
      secrets: [{ name: 'discord-token', keyVaultUrl: secretUris.discordToken, identity: identityId }]
      registries: [{ server: registryServer, identity: identityId }]
    }
    template: {
      containers: [
        {
          name: 'sync-commands'
          image: image
          command: ['python', '-m', 'gateway_listener.sync_commands']
          resources: { cpu: json(cpu), memory: memory }
          env: [
            { name: 'DISCORD_TOKEN', secretRef: 'discord-token' }
            { name: 'AZURE_CLIENT_ID', value: identityClientId }
          ]
        }
      ]
    }
  }
}

output names array = [for (ids, i) in shardIds: listeners[i].name]
output shardIds array = shardIds
output syncJobName string = syncCommands.name
