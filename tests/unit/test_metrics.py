"""/metrics carries the process and Python runtime metrics on the router's own registry."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RouterClient


async def test_process_and_python_metrics_are_served(router_client: RouterClient) -> None:
    client = await router_client()
    text = await (await client.get("/metrics")).text()
    samples = {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["process_resident_memory_bytes"].value > 0
    assert samples["process_cpu_seconds_total"].value >= 0
    assert samples["process_open_fds"].value > 0
    assert samples["process_start_time_seconds"].value > 0
    assert samples["python_info"].labels["implementation"] == "CPython"
    assert "python_gc_objects_collected_total" in samples
    # Still the router's own metrics next to them.
    assert "incident_router_alerts_received_total" in samples


async def test_two_apps_in_one_process_each_serve_them(router_client: RouterClient) -> None:
    # The collectors are shared between registries: building a second app must not fail.
    first, second = await router_client(), await router_client()
    for client in (first, second):
        assert "process_resident_memory_bytes" in await (await client.get("/metrics")).text()
