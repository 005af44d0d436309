"""The Grafana dashboard and the alert rules in docs/observability.md parse, and query only
metrics the service exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
OUR_METRIC = re.compile(
    r"\b((?:http|db_pool|stock_movements|order_transitions|outbox|stock_levels|domain_sample)"
    r"_[a-z_]+)"
)


def fenced(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


async def exposed_names(client: httpx.AsyncClient) -> set[str]:
    """Every metric family and sample name `/metrics` shows."""
    text = (await client.get("/metrics")).text
    families = set(re.findall(r"^# TYPE (\S+) ", text, flags=re.MULTILINE))
    samples = set(re.findall(r"^([a-z_]+)[{ ]", text, flags=re.MULTILINE))
    # the histogram family's series, whether or not it has samples yet
    series = {f"{family}_{suffix}" for family in families for suffix in ("bucket", "count", "sum")}
    return families | samples | series


async def test_the_dashboard_is_json_and_queries_exposed_metrics(
    client: httpx.AsyncClient,
) -> None:
    [dashboard_text] = fenced("json")[1:]  # the first JSON block is the sample log line
    dashboard = json.loads(dashboard_text)
    names = await exposed_names(client)

    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(dashboard["panels"]) >= 6
    used = {name for expression in expressions for name in OUR_METRIC.findall(expression)}
    assert used >= {
        "http_requests_total",
        "http_server_errors_total",
        "http_request_duration_seconds_bucket",
        "db_pool_in_use",
        "db_pool_max_size",
        "stock_movements_total",
        "order_transitions_total",
        "outbox_unsequenced_events",
        "outbox_oldest_unsequenced_age_seconds",
        "stock_levels_low",
    }
    assert used <= names, used - names


async def test_the_alert_rules_are_yaml_and_query_exposed_metrics(
    client: httpx.AsyncClient,
) -> None:
    yaml_blocks = [yaml.safe_load(block) for block in fenced("yaml")]
    [rules] = [block for block in yaml_blocks if "groups" in block]
    names = await exposed_names(client)

    alerts = {rule["alert"]: rule["expr"] for rule in rules["groups"][0]["rules"]}
    assert {
        "ShelfkeeperHighErrorRate",
        "ShelfkeeperHighLatency",
        "ShelfkeeperOutboxLag",
        "ShelfkeeperLowStock",
    } <= alerts.keys()
    used = {name for expression in alerts.values() for name in OUR_METRIC.findall(expression)}
    assert {"outbox_oldest_unsequenced_age_seconds", "stock_levels_low"} <= used
    assert used <= names, used - names
    assert "PLACEHOLDER" not in DOC.read_text()
