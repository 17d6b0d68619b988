// The function app on Flex Consumption: Python 3.13, one queue-triggered function per command,
// each scaling on its own (per-function scaling), optionally with always-ready instances.
// Storage by identity (no keys); secrets by Key Vault reference, resolved with the same identity.

@description('Azure region.')
param location string

@description('Function app name (globally unique: <name>.azurewebsites.net).')
param name string

@description('Tags for every resource.')
param tags object

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of that identity (DefaultAzureCredential and the host pick it by this).')
param identityClientId string

@description('Queue service endpoint, e.g. https://<account>.queue.core.windows.net/.')
param queueEndpoint string

@description('Blob service endpoint of the same account.')
param blobEndpoint string

@description('Table service endpoint of the same account (the host\'s diagnostic events, the reminders table).')
param tableEndpoint string

@description('Blob container URL for the deployment package.')
param deploymentContainerUrl string

@description('Maximum instances across the app (Flex Consumption: 40-1000).')
param maximumInstanceCount int

@description('Memory per instance in MB (512, 2048 or 4096).')
param instanceMemoryMB int

@description('Always-ready instances: [{name: "function:<function name>" | "http", instanceCount: n}].')
param alwaysReady array

@description('Key Vault secret URIs (versionless) for the secrets the app reads by reference.')
param secretUris object

@description('Reference the Honeycomb key from Key Vault (the secret must exist).')
param useHoneycomb bool

@description('Plain (non-secret) app settings shared with the listener.')
param commonSettings object

@description('Queue trigger polling ceiling (host.json extensions.queues.maxPollingInterval), hh:mm:ss.')
param queueMaxPollingInterval string

@description('Discord application public key (hex) for verifying interaction signatures; public, not a secret.')
param discordPublicKey string

@description('Further settings for the function app only (the reminders table endpoint, !mc\'s server).')
param extraSettings object = {}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy on Flex Consumption needs always-ready instances in every zone (idle cost); a queue message survives an instance loss
  name: '${name}-plan'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}

var requiredSecrets = {
  DISCORD_TOKEN: '@Microsoft.KeyVault(SecretUri=${secretUris.discordToken})'
  APPLICATIONINSIGHTS_CONNECTION_STRING: '@Microsoft.KeyVault(SecretUri=${secretUris.appInsightsConnectionString})'
}
var honeycombSecret = useHoneycomb ? { HONEYCOMB_API_KEY: '@Microsoft.KeyVault(SecretUri=${secretUris.honeycombApiKey})' } : {}
var ownSettings = {
  // Identity-based AzureWebJobsStorage: the host and the trigger use these, the code reads the queue URI.
  AzureWebJobsStorage__queueServiceUri: queueEndpoint
  AzureWebJobsStorage__blobServiceUri: blobEndpoint
  // Without it the host logs "Unable to get table reference" and drops its diagnostic events.
  AzureWebJobsStorage__tableServiceUri: tableEndpoint
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureFunctionsJobHost__extensions__queues__maxPollingInterval: queueMaxPollingInterval
  DISCORD_PUBLIC_KEY: discordPublicKey
}
var appSettings = union(commonSettings, requiredSecrets, honeycombSecret, ownSettings, extraSettings)

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17: client certificates would break Discord's interaction webhook, which authenticates by Ed25519 signature
  // checkov:skip=CKV_AZURE_221: Discord delivers interactions to /api/interactions from the internet; the queue triggers need no inbound access
  // checkov:skip=CKV_AZURE_222: same reason as CKV_AZURE_221
  // checkov:skip=CKV_AZURE_13: App Service authentication would reject Discord's unauthenticated webhook; requests are verified by signature in code
  // checkov:skip=CKV_AZURE_88: Azure Files is not used by Flex Consumption apps
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales per function from zero; instance count is not a plan setting
  // checkov:skip=CKV_AZURE_213: Flex Consumption has no App Service health check; queue triggers are retried and the host restarts failed workers
  // checkov:skip=CKV_AZURE_78: Flex Consumption rejects siteConfig.ftpsState (ARM 51021); FTP is off via the basicPublishingCredentialsPolicies 'ftp' below
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'functions' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      // No ftpsState: Flex Consumption rejects it (ARM 51021). FTP is off through the
      // basicPublishingCredentialsPolicies below; tests/infra/test_flex.py lists what Flex refuses.
      http20Enabled: true
      remoteDebuggingEnabled: false
      detailedErrorLoggingEnabled: true
      httpLoggingEnabled: true
      requestTracingEnabled: true
      appSettings: [for s in items(appSettings): { name: s.key, value: s.value }]
    }
    functionAppConfig: {
      runtime: { name: 'python', version: '3.13' }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        alwaysReady: alwaysReady
      }
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
    }
  }
}

// No basic-auth publishing: the pipeline deploys with its Entra identity.
resource ftp 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: { allow: false }
}

resource scm 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: { allow: false }
}

output name string = app.name
output hostName string = app.properties.defaultHostName
output settingNames array = [for s in items(appSettings): s.key]
