"""What Flex Consumption refuses or ignores is not in infra/: every property and app setting of the
function app is checked against Microsoft's list ("Flex Consumption plan deprecations" in the
Functions app settings reference; flex-consumption-plan.md "Deprecated properties and settings").

Some of these are hard ARM errors (51021, "The following site configuration property
(Site.SiteConfig.FtpsState) for Flex Consumption sites is invalid": Azure/azure-cli#31414,
microsoft/azure-pipelines-tasks#21032); the others are ignored or overwritten by the platform, so
setting them only claims a configuration the app does not have.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.infra.conftest import INFRA, ROOT
from tests.infra.test_contract import function_app_settings  # noqa: F401  (fixture)

# Site properties (anywhere under the site's properties, siteConfig included), lower-cased.
FLEX_INVALID_PROPERTIES = {
    "ftpsstate": "FTPS not supported (ARM 51021); FTP is off via basicPublishingCredentialsPolicies",
    "use32bitworkerprocess": "32-bit not supported",
    "isreserved": "not valid",
    "isxenon": "not valid",
    "windowsfxversion": "not valid",
    "alwayson": "not valid",
    "prewarmedinstancecount": "renamed: functionAppConfig.scaleAndConcurrency.alwaysReady",
    "functionappscalelimit": "renamed: functionAppConfig.scaleAndConcurrency.maximumInstanceCount",
    "containersize": "renamed: functionAppConfig.scaleAndConcurrency.instanceMemoryMB",
    "javaversion": "replaced by functionAppConfig.runtime.version",
    "powershellversion": "replaced by functionAppConfig.runtime.version",
    "netframeworkversion": "replaced by functionAppConfig.runtime.version",
    "linuxfxversion": "replaced by functionAppConfig.runtime",
    "vnetbackuprestoreenabled": "not used for networking in Flex Consumption",
    "vnetcontentshareenabled": "no content share in Flex Consumption",
    "vnetimagepullenabled": "not used in Flex Consumption",
    "vnetrouteallenabled": "not used for networking in Flex Consumption",
}
FLEX_INVALID_SETTINGS = {
    "ENABLE_ORYX_BUILD": "replaced by the remote build of the deployment",
    "SCM_DO_BUILD_DURING_DEPLOYMENT": "replaced by the remote build of the deployment",
    "FUNCTIONS_EXTENSION_VERSION": "set by the platform",
    "FUNCTIONS_WORKER_RUNTIME": "replaced by functionAppConfig.runtime.name",
    "FUNCTIONS_WORKER_RUNTIME_VERSION": "replaced by functionAppConfig.runtime.version",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY": "replaced by scaleAndConcurrency.triggers",
    "FUNCTIONS_WORKER_PROCESS_COUNT": "not valid",
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED": "not valid",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING": "replaced by functionAppConfig.deployment",
    "WEBSITE_CONTENTSHARE": "replaced by functionAppConfig.deployment",
    "WEBSITE_CONTENTOVERVNET": "not used for networking in Flex Consumption",
    "WEBSITE_DNS_SERVER": "DNS comes from the integrated virtual network",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT": "replaced by maximumInstanceCount",
    "WEBSITE_NODE_DEFAULT_VERSION": "replaced by functionAppConfig.runtime.version",
    "WEBSITE_RUN_FROM_PACKAGE": "not used: the package is in functionAppConfig.deployment",
    "WEBSITE_SKIP_CONTENTSHARE_VALIDATION": "no content share in Flex Consumption",
    "WEBSITE_VNET_ROUTE_ALL": "not used for networking in Flex Consumption",
}


def _keys(tree: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, key) for every object key in a parsed Bicep value."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield f"{path}.{key}".lstrip("."), str(key)
            yield from _keys(value, f"{path}.{key}")
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _keys(value, f"{path}[{i}]")


def flex_violations(site: dict[str, Any], settings: set[str]) -> list[str]:
    found = [f"{path}: {FLEX_INVALID_PROPERTIES[key.lower()]}"
             for path, key in _keys(site.get("properties", {})) if key.lower() in FLEX_INVALID_PROPERTIES]
    upper = {s.upper() for s in settings}
    found += [f"app setting {name}: {why}" for name, why in FLEX_INVALID_SETTINGS.items() if name in upper]
    return found


def _site(bicep: dict[str, Any]) -> dict[str, Any]:
    config = bicep["modules/functionapp.bicep"]["resources"]["app"]["config"]
    return dict(config.get("config", config))


def test_function_app_has_nothing_flex_consumption_refuses(
    bicep: dict[str, Any], function_app_settings: dict[str, Any]  # noqa: F811
) -> None:
    site = _site(bicep)
    assert site["properties"]["siteConfig"], "the parsed site has no siteConfig: the check would be vacuous"
    assert flex_violations(site, function_app_settings["names"]) == []


def test_the_rule_catches_what_azure_refused() -> None:
    # The property behind the reported ARM 51021, and two settings a Consumption template would carry.
    site = {"properties": {"httpsOnly": True, "siteConfig": {"minTlsVersion": "1.2", "ftpsState": "Disabled"}}}
    found = flex_violations(site, {"FUNCTIONS_WORKER_RUNTIME", "WEBSITE_RUN_FROM_PACKAGE", "DISCORD_TOKEN"})
    assert [f.split(":")[0] for f in found] == ["siteConfig.ftpsState", "app setting FUNCTIONS_WORKER_RUNTIME",
                                                 "app setting WEBSITE_RUN_FROM_PACKAGE"]


def test_ftp_stays_off_through_the_publishing_policy(bicep: dict[str, Any]) -> None:
    resources = bicep["modules/functionapp.bicep"]["resources"]
    policies = {r["config"]["name"]: r["config"]["properties"]["allow"] for r in resources.values()
                if r["type"] == "Microsoft.Web/sites/basicPublishingCredentialsPolicies"}
    assert policies == {"ftp": False, "scm": False}


@pytest.mark.parametrize("setting", ["AzureWebJobsStorage__tableServiceUri", "AzureWebJobsStorage__queueServiceUri",
                                     "AzureWebJobsStorage__blobServiceUri"])
def test_host_storage_identity_has_every_endpoint(function_app_settings: dict[str, Any],  # noqa: F811
                                                  setting: str) -> None:
    assert setting in function_app_settings["names"]


def test_identity_has_a_table_role(bicep: dict[str, Any]) -> None:
    storage = bicep["modules/storage.bicep"]
    roles = storage["variables"]["roles"]["value"]
    assert roles["tableDataContributor"] == "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"  # Storage Table Data Contributor
    on_account = [json.dumps(r["config"]["properties"]["roleDefinitionId"]) for r in storage["resources"].values()
                  if r["type"] == "Microsoft.Authorization/roleAssignments" and r["config"].get("scope") == "account"]
    assert [a for a in on_account if '"tableDataContributor"' in a]


def test_backlog_alerts_fire_in_minutes_and_each_delay_is_documented(bicep: dict[str, Any]) -> None:
    resources = bicep["modules/monitoring.bicep"]["resources"]
    docs = (ROOT / "docs/deploy.md").read_text()
    rules = {name: r["config"] for name, r in resources.items()
             if r["type"] in ("Microsoft.Insights/scheduledQueryRules", "Microsoft.Insights/metricAlerts")}
    assert {"queueWaitAlert", "unprocessedAlert"} <= set(rules)
    for name, config in rules.items():
        props = config["properties"]
        rule_name = str(config["name"]).replace("${prefix}", "<prefix>")
        assert f"`{rule_name}`" in docs, f"{name}: docs/deploy.md's alert table does not list {rule_name}"
        if resources[name]["type"] == "Microsoft.Insights/scheduledQueryRules":
            assert props["evaluationFrequency"] == "PT5M", name  # a few minutes after ingestion
    fast = [rules[n]["properties"] for n in ("queueWaitAlert", "unprocessedAlert")]
    assert all("QueueMessageCount" not in json.dumps(p) for p in fast)
    for kql in ("queue_wait.kql", "unprocessed.kql", "app_map.kql"):
        assert (INFRA / "monitoring" / kql).read_text().strip()
