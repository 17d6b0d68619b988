// Container registry for the listener image. No admin user: the pipeline pushes with its Entra
// identity (az acr build) and the listener pulls with the apps' managed identity (AcrPull).

@description('Azure region.')
param location string

@description('Registry name (5-50 letters and digits).')
param name string

@description('Tags for every resource.')
param tags object

@description('Principal id of the apps\' managed identity (gets AcrPull).')
param principalId string

var acrPullRole = '7f951dda-4ed3-4680-a7ca-43fe172d538d'

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  // checkov:skip=CKV_AZURE_139: az acr build and Container Apps without VNet need the public endpoint; pulls and pushes need Entra tokens (no admin user, no anonymous pull)
  // checkov:skip=CKV_AZURE_163: vulnerability scanning is Defender for Containers, a subscription-level plan with its own cost: enable it there
  // checkov:skip=CKV_AZURE_164: content trust (signed images) needs the Premium SKU; images are pushed only by the OIDC pipeline
  // checkov:skip=CKV_AZURE_165: geo-replication needs Premium; one region is enough for one small image
  // checkov:skip=CKV_AZURE_166: quarantine needs Premium and a scanner to release images
  // checkov:skip=CKV_AZURE_167: retention of untagged manifests needs Premium; every image here is tagged with its commit
  // checkov:skip=CKV_AZURE_233: zone redundancy needs Premium; the running listener keeps its pulled image
  // checkov:skip=CKV_AZURE_237: dedicated data endpoints need Premium
  name: name
  location: location
  tags: tags
  sku: { name: 'Basic' }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
  }
}

resource acrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, principalId, acrPullRole)
  scope: registry
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPullRole)
  }
}

output name string = registry.name
output loginServer string = registry.properties.loginServer
