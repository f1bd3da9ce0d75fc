"""The count behind intake's active-alert cap (server.max_active_alerts) on the embedded
backend: the alerts view's latest status of each alert, the same total a page reports."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from router.api.webhooks import CountsAlerts, count_firing_alerts
from router.backends.embedded import EmbeddedBackend
from router.metrics import EngineMetrics
from router.model import Status
from tests.unit.backends.test_retention import CTX, T0, alert


async def test_counts_the_latest_status_of_each_alert_like_a_page_total(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path / "router.db", CTX, EngineMetrics(CollectorRegistry()),
                              synchronous="NORMAL")
    await backend.start()
    try:
        assert isinstance(backend, CountsAlerts)
        assert await count_firing_alerts(backend) == 0
        await backend.log.append([alert(f"fp{i}", Status.FIRING, T0) for i in range(5)])
        later = T0 + timedelta(minutes=1)
        await backend.log.append([alert("fp0", Status.RESOLVED, later),
                                  alert("fp1", Status.RESOLVED, later),
                                  alert("fp5", Status.FIRING, later)])
        assert await count_firing_alerts(backend) == 4
        assert await backend.count_alerts(Status.RESOLVED.value) == 2
        page = await backend.alert_page(status=Status.FIRING.value, limit=1)
        assert page.total == 4
    finally:
        await backend.stop()
