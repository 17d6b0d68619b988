// Log Analytics + workspace-based Application Insights, the workbook and the alert rules.
// The queries are the write-up's questions (docs/observability.md has the same ones for Honeycomb).

@description('Azure region.')
param location string

@description('Name prefix for the monitoring resources.')
param prefix string

@description('Tags for every resource.')
param tags object

@description('Days Log Analytics keeps data (30 is the free retention).')
param retentionInDays int

@description('Email address for alerts; empty = alerts fire without a notification.')
param alertEmail string

@description('Function-side error rate (percent of invocations, 15 min window) that fires an alert.')
param errorRatePercent int

@description('Messages poisoned in 15 minutes that fire an alert.')
param poisonThreshold int

@description('Messages waiting in all queues of the account (the metric has no per-queue dimension) that fire an alert.')
param queueBacklogThreshold int

@description('Resource id of the storage account that holds the command queues.')
param storageAccountId string

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${prefix}-logs'
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: retentionInDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${prefix}-appi'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: '${prefix}-alerts'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'botalerts'
    enabled: true
    emailReceivers: [{ name: 'owner', emailAddress: alertEmail, useCommonAlertSchema: true }]
  }
}

var actions = empty(alertEmail) ? [] : [actionGroup.id]

// Every message the function side gives up on is logged as a CONSUMER span with app.poison (a bad
// envelope) or after its last retry; Storage's own queue metrics are per account, not per queue.
resource poisonAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: '${prefix}-poisoned-messages'
  location: location
  tags: tags
  properties: {
    displayName: 'Commands sent to a poison queue'
    description: 'Messages moved to cmd-<command>-poison in the last 15 minutes, by command. Read them with az storage message peek.'
    severity: 2
    enabled: true
    scopes: [appInsights.id]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: loadTextContent('../monitoring/poisoned.kql')
          timeAggregation: 'Total'
          metricMeasureColumn: 'poisoned'
          dimensions: [{ name: 'command', operator: 'Include', values: ['*'] }]
          operator: 'GreaterThanOrEqual'
          threshold: poisonThreshold
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    actions: { actionGroups: actions }
  }
}

resource errorRateAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: '${prefix}-error-rate'
  location: location
  tags: tags
  properties: {
    displayName: 'Command error rate'
    description: 'Percent of command invocations that failed in the last 15 minutes, by command.'
    severity: 2
    enabled: true
    scopes: [appInsights.id]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: loadTextContent('../monitoring/error_rate.kql')
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'error_percent'
          dimensions: [{ name: 'command', operator: 'Include', values: ['*'] }]
          operator: 'GreaterThan'
          threshold: errorRatePercent
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    actions: { actionGroups: actions }
  }
}

resource backlogAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${prefix}-queue-backlog'
  location: 'global'
  tags: tags
  properties: {
    description: 'Messages waiting in the account\'s queues (poison queues included): nothing drains them, so a growing count means poisoned or stuck commands.'
    severity: 3
    enabled: true
    scopes: ['${storageAccountId}/queueServices/default']
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'backlog'
          metricNamespace: 'Microsoft.Storage/storageAccounts/queueServices'
          metricName: 'QueueMessageCount'
          operator: 'GreaterThan'
          threshold: queueBacklogThreshold
          timeAggregation: 'Average'
        }
      ]
    }
    actions: [for id in actions: { actionGroupId: id }]
  }
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, prefix, 'bot-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Discord bot: commands, cold starts, errors, rate limits'
    category: 'workbook'
    sourceId: appInsights.id
    serializedData: loadTextContent('../monitoring/workbook.json')
  }
}

output appInsightsId string = appInsights.id
output appInsightsName string = appInsights.name
output workspaceId string = workspace.id
output workspaceCustomerId string = workspace.properties.customerId
output workspaceName string = workspace.name
