"""Login, roles, CSRF and security headers of /ui/, over HTTP (no browser needed)."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp.test_utils import TestClient
from yarl import URL

from tests.conftest import RouterClient

RW, RO = "rw-token-0123456789", "ro-token-0123456789"
TOKENS = {"api": {"tokens": [RW], "read_tokens": [RO]}}
TEMPLATES = Path(__file__).resolve().parents[2] / "router" / "ui" / "templates"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


async def log_in(client: TestClient, token: str = RW) -> str:
    resp = await client.post("/ui/login", data={"token": token, "name": "alice",
                                                "next": "/ui/incidents"},
                             allow_redirects=False)
    assert resp.status == 303, await resp.text()
    page = await client.get("/ui/incidents")
    assert page.status == 200
    return csrf_of(await page.text())


async def declare(client: TestClient) -> str:
    resp = await client.post("/api/v1/incidents", json={"title": "t", "severity": "SEV2"},
                             headers={"Authorization": f"Bearer {RW}"})
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["data"]["id"])


async def test_every_console_response_has_a_strict_csp(router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    for path in ("/ui/login", "/ui/alerts", "/ui/static/console.js", "/ui/nowhere"):
        resp = await client.get(path, allow_redirects=False)
        csp = resp.headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
        assert "frame-ancestors 'none'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_templates_have_no_inline_script_or_style() -> None:
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert not re.search(r"\s(style|on[a-z]+)=", text), template.name
        assert "<style" not in text, template.name


async def test_a_page_without_login_goes_to_the_login_form(router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    resp = await client.get("/ui/incidents?status=open", allow_redirects=False)
    assert resp.status == 303
    location = URL(resp.headers["Location"])
    assert (location.path, location.query["next"]) == ("/ui/login", "/ui/incidents?status=open")
    resp = await client.post("/ui/incidents/INC-20260101-1/ack", data={})
    assert resp.status == 401


async def test_a_wrong_token_is_refused(router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    resp = await client.post("/ui/login", data={"token": "nope"}, allow_redirects=False)
    assert resp.status == 401
    assert "not one of the configured API tokens" in await resp.text()
    assert "Set-Cookie" not in resp.headers


async def test_the_session_cookie_is_httponly_strict_and_secure_over_tls(
        router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    resp = await client.post("/ui/login", data={"token": RW}, allow_redirects=False)
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui/" in cookie
    assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    resp = await client.post("/ui/login", data={"token": RW}, allow_redirects=False,
                             headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in resp.headers["Set-Cookie"]
    assert RW not in resp.headers["Set-Cookie"]  # the token itself is not in the cookie


async def test_login_only_redirects_inside_the_console(router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    for target in ("//evil.example/ui/", "https://evil.example/", "/api/v1/incidents"):
        resp = await client.post("/ui/login", data={"token": RW, "next": target},
                                 allow_redirects=False)
        assert resp.headers["Location"] == "/ui/alerts", target


async def test_writes_need_the_csrf_token_and_the_write_role(
        router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    ident = await declare(client)
    csrf = await log_in(client, RO)
    resp = await client.post(f"/ui/incidents/{ident}/ack", data={"csrf": csrf})
    assert resp.status == 403
    assert "read-only" in await resp.text()
    # A read-only login may still classify (it changes nothing).
    resp = await client.post("/ui/rules/classify", data={"csrf": csrf,
                                                         "alert": "alertname=X\nseverity=page"})
    assert resp.status == 200 and "SEV1" in await resp.text()

    client.session.cookie_jar.clear()
    csrf = await log_in(client, RW)
    resp = await client.post(f"/ui/incidents/{ident}/ack", data={})
    assert resp.status == 403 and "CSRF" in await resp.text()
    resp = await client.post(f"/ui/incidents/{ident}/ack", data={"csrf": csrf + "x"})
    assert resp.status == 403
    resp = await client.post(f"/ui/incidents/{ident}/ack", data={"csrf": csrf},
                             headers={"Origin": "http://evil.example"})
    assert resp.status == 403 and "cross-origin" in (await resp.text()).lower()
    resp = await client.post(f"/ui/incidents/{ident}/ack", data={"csrf": csrf},
                             allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == f"/ui/incidents/{ident}?done=ack"


async def test_a_forged_cookie_is_no_session(router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    client.session.cookie_jar.update_cookies({"ir_console": "gAAAAA-forged"})
    resp = await client.get("/ui/alerts", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/ui/login")


async def test_a_trusted_proxy_header_logs_in(router_client: RouterClient) -> None:
    client = await router_client({"api": {"tokens": [RW], "trusted_header": "X-Forwarded-User",
                                          "trusted_header_role": "write"}})
    resp = await client.get("/ui/alerts", headers={"X-Forwarded-User": "bob"})
    assert resp.status == 200
    assert "bob · read-write" in await resp.text()
    resp = await client.get("/ui/alerts", allow_redirects=False)  # the proxy did not vouch
    assert resp.status == 303


async def test_with_no_credentials_configured_the_console_is_open_but_csrf_checked(
        router_client: RouterClient) -> None:
    client = await router_client()
    resp = await client.get("/ui/incidents")
    assert resp.status == 200
    csrf = csrf_of(await resp.text())
    resp = await client.post("/ui/incidents", data={"title": "x", "severity": "SEV3"},
                             allow_redirects=False)
    assert resp.status == 403
    resp = await client.post("/ui/incidents", data={"title": "Declared here", "severity": "SEV3",
                                                    "csrf": csrf}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    page = await client.get(resp.headers["Location"])
    assert "Declared here" in await page.text()


async def test_the_public_status_page_stays_public(router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    resp = await client.get("/status", allow_redirects=False)
    assert resp.status == 200


async def test_bad_form_input_says_what_is_wrong(router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    csrf = await log_in(client)
    resp = await client.post("/ui/incidents", data={"title": "x", "severity": "SEV9",
                                                    "csrf": csrf})
    assert resp.status == 422
    assert "severity" in await resp.text()
    resp = await client.post("/ui/rules/classify", data={"csrf": csrf, "alert": "env=prod"})
    assert resp.status == 400 and "needs a name" in await resp.text()
    resp = await client.get("/ui/incidents/INC-20990101-1")
    assert resp.status == 404 and "No incident INC-20990101-1" in await resp.text()


def test_read_tokens_alone_are_a_config_error() -> None:
    import pytest

    from router.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="read_tokens need tokens as well"):
        parse_config("api: {read_tokens: [x]}")
