"""The Alertmanager v2 reads refuse what they cannot answer, as amtool expects: a token is
needed when the API has tokens, and a `filter` that is not a matcher is a 400 saying why."""

from __future__ import annotations

import pytest

from tests.conftest import RouterClient
from tests.incidentkit import AUTH, TOKEN


@pytest.mark.parametrize("path", ["/api/v2/silences", "/api/v2/alerts"])
async def test_v2_reads_need_a_token_and_a_valid_filter(router_client: RouterClient,
                                                        path: str) -> None:
    client = await router_client({"api": {"tokens": [TOKEN]}})
    assert (await client.get(path)).status == 401
    bad = await client.get(path, params={"filter": 'alertname=~"("'}, headers=AUTH)
    assert bad.status == 400
    assert "invalid regular expression" in await bad.json()
    good = await client.get(path, params={"filter": 'alertname="X"'}, headers=AUTH)
    assert good.status == 200 and await good.json() == []
