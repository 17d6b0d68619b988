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

@description('Commands sent that no function started within 2 minutes (15 min window) that fire an alert.')
param queueBacklogThreshold int

@description('P95 queue wait in seconds (5 min window) that fires an alert.')
param queueWaitSeconds int

@description('Messages left in all queues of the account (hourly capacity metric, no per-queue dimension) that fire the slow alert.')
param queueLeftoverThreshold int

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

// Backlog, fast: from our own spans (App Insights ingestion takes a few minutes; the rules run every
// 5 minutes). docs/deploy.md "Alerts" has each rule's delay and how to check it.
resource queueWaitAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: '${prefix}-queue-wait'
  location: location
  tags: tags
  properties: {
    displayName: 'Commands waiting in their queue'
    description: 'P95 of queue.wait (enqueue -> dequeue) over the last 5 minutes, by command: functions are slow to pick messages up.'
    severity: 2
    enabled: true
    scopes: [appInsights.id]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: loadTextContent('../monitoring/queue_wait.kql')
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'wait_p95_s'
          dimensions: [{ name: 'command', operator: 'Include', values: ['*'] }]
          operator: 'GreaterThan'
          threshold: queueWaitSeconds
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    actions: { actionGroups: actions }
  }
}

resource unprocessedAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: '${prefix}-queue-backlog'
  location: location
  tags: tags
  properties: {
    displayName: 'Commands nobody picked up'
    description: 'Commands the listener sent in the last 15 minutes that no function started within 2 minutes, by command: nothing drains the queue.'
    severity: 2
    enabled: true
    scopes: [appInsights.id]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: loadTextContent('../monitoring/unprocessed.kql')
          timeAggregation: 'Total'
          metricMeasureColumn: 'unprocessed'
          dimensions: [{ name: 'command', operator: 'Include', values: ['*'] }]
          operator: 'GreaterThanOrEqual'
          threshold: queueBacklogThreshold
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    actions: { actionGroups: actions }
  }
}

// Slow safety net: QueueMessageCount is a capacity metric Azure samples once an hour, so this fires
// an hour or two late. It catches what the span-based rules cannot see (messages nobody sent through
// the listener, poison queues filling up unnoticed).
resource leftoverAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${prefix}-queue-leftover'
  location: 'global'
  tags: tags
  properties: {
    description: 'Messages left in the account\'s queues (poison queues included), hourly capacity metric: fires 1-2 hours late; the queue-wait and backlog rules are the fast ones.'
    severity: 3
    enabled: true
    scopes: ['${storageAccountId}/queueServices/default']
    evaluationFrequency: 'PT1H'
    windowSize: 'PT6H'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'leftover'
          metricNamespace: 'Microsoft.Storage/storageAccounts/queueServices'
          metricName: 'QueueMessageCount'
          operator: 'GreaterThan'
          threshold: queueLeftoverThreshold
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
