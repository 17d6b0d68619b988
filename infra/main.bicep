// The whole bot in one resource group: `az deployment group create -g <rg> -f infra/main.bicep
// -p infra/main.parameters.example.json` (docs/deploy.md; scripts/deploy wraps it).
// One list of commands (commands.json, checked against the registry by tests/infra) drives the
// queues; every secret lives in Key Vault and both processes read it by reference.

targetScope = 'resourceGroup'

@description('Azure region for every resource (Flex Consumption must be offered there: az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@minLength(3)
@maxLength(11)
@description('Short name prefix for resource names: lower-case letters and digits, starting with a letter (the registry and storage names allow nothing else).')
param prefix string = 'dbot'

@description('deployment.environment on every span (group telemetry by environment).')
param environmentName string = 'prod'

@description('OTEL_SERVICE_NAME: the processes report as <name>-listener and <name>-functions.')
param serviceName string = 'discord-bot'

@description('service.version on every span; the pipeline sets the commit so telemetry groups by release.')
param serviceVersion string = '0.1.0'

@description('Listener image (<registry>/discord-bot-listener:<tag>); empty on the first run, before the image exists: the listener apps are then not created.')
param listenerImage string = ''

@secure()
@description('Discord bot token, written to Key Vault as discord-token. Empty keeps the secret already in the vault (CD runs pass nothing).')
param discordToken string = ''

@secure()
@description('Honeycomb ingest key, written to Key Vault as honeycomb-api-key. Empty keeps the stored one.')
param honeycombApiKey string = ''

@description('Send traces and logs to Honeycomb: both apps reference the honeycomb-api-key secret. Honoured only when that secret exists (honeycombApiKey given now, or honeycombKeyInVault), since Container Apps refuses an app whose Key Vault reference cannot be read.')
param useHoneycomb bool = false

@description('The vault already holds honeycomb-api-key (scripts/deploy checks before every run).')
param honeycombKeyInVault bool = false

@description('Honeycomb API endpoint (EU: https://api.eu1.honeycomb.io).')
param honeycombApiEndpoint string = 'https://api.honeycomb.io'

@description('Discord application public key (hex, from the Developer Portal), for the interactions endpoint. Public, not a secret.')
param discordPublicKey string = ''

@description('Always-ready instances per function, e.g. [{"name": "function:ping", "instanceCount": 1}] ("http" for the HTTP group). Each costs a baseline charge while idle; none = every command may wait for a cold start after idle.')
param alwaysReady array = []

@minValue(40)
@maxValue(1000)
@description('Maximum function instances (Flex Consumption allows 40-1000).')
param maximumInstanceCount int = 100

@allowed([512, 2048, 4096])
@description('Memory per function instance in MB.')
param instanceMemoryMB int = 2048

@description('Queue trigger polling ceiling while an instance is warm (overrides host.json extensions.queues.maxPollingInterval, 500 ms), hh:mm:ss[.fff]. Lower = faster pickup at a human pace, more storage transactions (docs/performance.md).')
param queueMaxPollingInterval string = '00:00:00.500'

@minValue(1)
@description('Total Discord gateway shards (DISCORD_SHARD_COUNT); Discord requires more than one from 2,500 guilds.')
param shardCount int = 1

@minValue(1)
@description('Shards per listener app: ceil(shardCount / shardsPerListener) listener apps are created.')
param shardsPerListener int = 1

@description('Port of the listener\'s /healthz and /readyz (LISTENER_HEALTH_PORT).')
param listenerHealthPort int = 8080

@description('CPU cores per listener replica.')
param listenerCpu string = '0.25'

@description('Memory per listener replica.')
param listenerMemory string = '0.5Gi'

@description('Create an Azure Managed Redis (Entra auth only) and set REDIS_URL on both apps, so every process shares Discord\'s rate limits. Turn on when more than one process sends to Discord at once (several function instances in bursts, or several listener shard processes); about USD 13/month (docs/performance.md).')
param useRedis bool = false

@description('Create an App Configuration store for feature flags (free tier) and point both apps at it.')
param useAppConfiguration bool = false

@description('Email for alert notifications; empty = alerts are recorded but nobody is notified.')
param alertEmail string = ''

@minValue(1)
@maxValue(100)
@description('Error rate (percent of command invocations over 15 min) that raises an alert.')
param errorRatePercent int = 5

@minValue(1)
@description('Poisoned messages in 15 min that raise an alert.')
param poisonThreshold int = 1

@minValue(1)
@description('Commands sent to their queue that no function started within 2 minutes (15 min window) that raise an alert.')
param queueBacklogThreshold int = 3

@minValue(1)
@description('P95 queue wait (enqueue -> dequeue, from the queue.wait spans) in seconds over 5 minutes that raises an alert.')
param queueWaitSeconds int = 30

@minValue(1)
@description('Messages left in the account\'s queues (hourly capacity metric, poison queues included) that raise the slow alert.')
param queueLeftoverThreshold int = 50

@minValue(30)
@maxValue(730)
@description('Days Log Analytics keeps logs and traces.')
param logRetentionDays int = 30

@description('!mc: the Minecraft server\'s RCON address, host:port; empty = !mc says it is not configured.')
param minecraftRconAddress string = ''

@secure()
@description('!mc: the RCON password, stored as Key Vault secret minecraft-rcon-password; empty keeps the stored one.')
param minecraftRconPassword string = ''

@description('Tags for every resource.')
param tags object = { app: 'discord-functions-bot' }

var suffix = take(uniqueString(resourceGroup().id, prefix), 8)
var commands = loadJsonContent('commands.json').commands
var workQueues = [for c in commands: 'cmd-${c}']
var poisonQueues = [for c in commands: 'cmd-${c}-poison']
// Other queues the function app reads (reminders-due), each with its poison queue.
var extraQueues = loadJsonContent('commands.json').queues
var extraPoisonQueues = [for q in extraQueues: '${q}-poison']
var queueNames = concat(workQueues, poisonQueues, extraQueues, extraPoisonQueues)
var deploymentContainerName = 'app-package'
// A Key Vault reference to a missing secret fails the listener's deployment (Container Apps reads it
// at creation) and leaves the function app's setting unresolved: reference it only when it exists.
var honeycombEnabled = useHoneycomb && (!empty(honeycombApiKey) || honeycombKeyInVault)

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: { location: location, name: '${prefix}-id', tags: tags }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    name: '${prefix}st${suffix}'
    tags: tags
    queueNames: queueNames
    deploymentContainerName: deploymentContainerName
    principalId: identity.outputs.principalId
  }
}

// !remindme's reminders table and the commandruns table (at-most-once !mc RCON commands).
module reminders 'modules/reminders.bicep' = {
  name: 'reminders'
  params: { storageAccountName: storage.outputs.name }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    prefix: prefix
    tags: tags
    retentionInDays: logRetentionDays
    alertEmail: alertEmail
    errorRatePercent: errorRatePercent
    poisonThreshold: poisonThreshold
    queueBacklogThreshold: queueBacklogThreshold
    queueWaitSeconds: queueWaitSeconds
    queueLeftoverThreshold: queueLeftoverThreshold
    storageAccountId: resourceId('Microsoft.Storage/storageAccounts', storage.outputs.name)
  }
}

module vault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    name: '${prefix}-kv-${suffix}'
    tags: tags
    principalId: identity.outputs.principalId
    discordToken: discordToken
    honeycombApiKey: honeycombApiKey
    appInsightsName: monitoring.outputs.appInsightsName
    minecraftRconPassword: minecraftRconPassword
  }
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  params: { location: location, name: '${prefix}acr${suffix}', tags: tags, principalId: identity.outputs.principalId }
}

module appConfig 'modules/appconfig.bicep' = if (useAppConfiguration) {
  name: 'appconfig'
  params: { location: location, name: '${prefix}-flags-${suffix}', tags: tags, principalId: identity.outputs.principalId }
}

module redis 'modules/redis.bicep' = if (useRedis) {
  name: 'redis'
  params: { location: location, name: '${prefix}-redis-${suffix}', tags: tags, principalId: identity.outputs.principalId }
}

var secretUris = {
  minecraftRconPassword: vault.outputs.minecraftRconPasswordUri
  discordToken: vault.outputs.discordTokenUri
  honeycombApiKey: vault.outputs.honeycombApiKeyUri
  appInsightsConnectionString: vault.outputs.appInsightsConnectionStringUri
}

// Plain settings both processes get; secrets are added by each module as references.
var baseSettings = {
  AZURE_CLIENT_ID: identity.outputs.clientId
  OTEL_SERVICE_NAME: serviceName
  DEPLOYMENT_ENVIRONMENT: environmentName
  SERVICE_VERSION: serviceVersion
  HONEYCOMB_API_ENDPOINT: honeycombApiEndpoint
}
var appConfigSettings = useAppConfiguration ? { AZURE_APPCONFIG_ENDPOINT: appConfig.outputs.endpoint } : {}
var redisSettings = useRedis ? { REDIS_URL: redis.outputs.url } : {}
var commonSettings = union(baseSettings, appConfigSettings, redisSettings)
// !mc's Minecraft server: function app only (!remindme's table endpoint is a functionapp.bicep setting).
var minecraftSettings = empty(minecraftRconAddress) ? {} : {
  MINECRAFT_RCON_ADDRESS: minecraftRconAddress
  MINECRAFT_RCON_PASSWORD: '@Microsoft.KeyVault(SecretUri=${secretUris.minecraftRconPassword})'
}

module functions 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    name: '${prefix}-func-${suffix}'
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    queueEndpoint: storage.outputs.queueEndpoint
    blobEndpoint: storage.outputs.blobEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    alwaysReady: alwaysReady
    secretUris: secretUris
    useHoneycomb: honeycombEnabled
    commonSettings: commonSettings
    extraSettings: minecraftSettings
    queueMaxPollingInterval: queueMaxPollingInterval
    discordPublicKey: discordPublicKey
  }
}

module listener 'modules/listener.bicep' = if (!empty(listenerImage)) {
  name: 'listener'
  params: {
    location: location
    prefix: prefix
    tags: tags
    workspaceName: monitoring.outputs.workspaceName
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    registryServer: registry.outputs.loginServer
    image: listenerImage
    queueEndpoint: storage.outputs.queueEndpoint
    secretUris: secretUris
    useHoneycomb: honeycombEnabled
    commonSettings: commonSettings
    shardCount: shardCount
    shardsPerListener: shardsPerListener
    healthPort: listenerHealthPort
    cpu: listenerCpu
    memory: listenerMemory
  }
}

@description('Function app name (az functionapp deployment ... -n).')
output functionAppName string = functions.outputs.name

@description('Listener app names, one per shard range (empty until listenerImage is set).')
output listenerAppNames array = empty(listenerImage) ? [] : listener.outputs.names

@description('Container Apps job that registers the slash commands.')
output syncCommandsJobName string = empty(listenerImage) ? '' : listener.outputs.syncJobName

@description('Queue service endpoint of the command queues.')
output queueEndpoint string = storage.outputs.queueEndpoint

@description('Registry the listener image is pushed to.')
output registryName string = registry.outputs.name

@description('Registry login server, for the image name.')
output registryServer string = registry.outputs.loginServer

@description('Whether the apps send to Honeycomb (useHoneycomb and the key exists).')
output honeycombEnabled bool = honeycombEnabled

@description('Key Vault holding discord-token and honeycomb-api-key.')
output keyVaultName string = vault.outputs.name

@description('Application Insights resource id (APPLICATIONINSIGHTS_RESOURCE_ID for python -m ops.markers).')
output appInsightsId string = monitoring.outputs.appInsightsId
