"""The browser-facing rules: same-origin use of the cookie, JSON bodies, the login redirect, headers, device links."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path

import aiohttp
import pytest

from server.origins import Origin, OriginPolicy, cross_origin_reason, forwarded_client, parse_origin
from server.pages import safe_next
from server.rollcall.keys import ROLLCALLS
from server.web_security import content_security_policy
from tests.server.conftest import WebPlatform, WebPlatformFactory

TEMPLATES = Path(__file__).resolve().parents[2] / "web" / "templates"
EVIL_PORT = "http://127.0.0.1:1"  # another port of the same host: same-site, not same-origin
ROLLCALL_FORM = {"sites": "jiangbei", "mode": "all", "window": "30", "grace": "0", "title": "CSRF"}


@pytest.fixture
async def web(make_web_platform: WebPlatformFactory) -> WebPlatform:
    return await make_web_platform()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # No cookie jar: each request carries exactly the cookie the test gives it.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


# ------------------------------------------------------- the login redirect ---


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x", "///evil.example", "/\\evil.example", "/\\\\evil.example", "\\\\evil.example",
        "/\t/evil.example/phish", "/%09/evil.example/phish".replace("%09", "\t"), "/\n/evil.example", "/\r\n/evil.example",
        "/\r/evil.example", "\t//evil.example", " //evil.example", "https://evil.example", "http:evil.example",
        "HTTPS://evil.example/", "javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,x", "evil.example",
        "", "/x\x00y", "/\x7f/evil.example", "/\u3000/evil.example", "/\u2028/evil.example", "/rooms/\u4f1a",
        "/" + "a" * 5000, "//", "\\/evil.example", "/\\/evil.example",
    ],
)
def test_a_login_redirect_goes_nowhere_but_a_path_here(target: str) -> None:
    assert safe_next(target) == "/"


@pytest.mark.parametrize(
    "target",
    ["/", "/rooms/consultation", "/rooms/consultation?layout=3x3", "/command/directives/d1/print",
     "/login?next=%2Frooms%2Fx", "/%09/x", "/rollcalls/abc#top", "/a:b"],
)
def test_a_path_on_this_server_is_kept(target: str) -> None:
    assert safe_next(target) == target


async def test_the_reported_open_redirect_lands_on_the_home_page(web: WebPlatform, http: aiohttp.ClientSession) -> None:
    async with http.get(web.url + "/login?next=/%09/evil.example/phish") as response:
        html = await response.text()
    assert 'name="next" value="/"' in html
    form = {"username": "mayor", "password": "demomayor", "next": "/\t/evil.example/phish"}
    async with http.post(web.url + "/login", data=form, allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/"


# ----------------------------------------------------------------- origins ---


def test_origins_compare_normalised() -> None:
    assert parse_origin("HTTP://Example.COM") == Origin("http", "example.com", 80)
    assert parse_origin("https://example.com:443") == parse_origin("https://example.com")
    assert parse_origin("http://[::1]:8080") == Origin("http", "::1", 8080)
    for bad in ("null", "", "example.com", "ftp://x", "http://x/path", "http://u:p@x", "http://x:99999", "http://x?q"):
        assert parse_origin(bad) is None, bad


def test_the_rule_for_each_kind_of_client() -> None:
    own = parse_origin("http://127.0.0.1:8080")
    policy = OriginPolicy(["https://wall.example"])

    def reason(origin: str | None, site: str | None, cookie: bool) -> str | None:
        return cross_origin_reason(origin, site, has_cookie=cookie, own=own, policy=policy)

    assert reason("http://127.0.0.1:8080", "same-origin", True) is None
    assert reason("https://wall.example", "cross-site", True) is None  # configured
    assert reason("http://127.0.0.1:9999", "same-site", True) is not None  # another port of the same host
    assert reason("http://localhost:8080", "cross-site", True) is not None
    assert reason("https://127.0.0.1:8080", "cross-site", True) is not None  # another scheme
    assert reason("http://127.0.0.1:8080", "cross-site", True) is None  # the Origin itself decides
    assert reason("null", "same-origin", True) is None  # a same-origin form under Referrer-Policy: no-referrer
    assert reason("null", "cross-site", True) is not None  # a sandboxed frame elsewhere
    assert reason("null", "cross-site", False) is not None  # ... logging the victim in as someone else
    assert reason(None, "same-site", False) is not None
    assert reason(None, None, False) is None  # a non-browser client: a token, or a login
    assert reason(None, None, True) is not None  # the cookie without any proof of where it comes from
    assert reason("http://127.0.0.1:8080/evil", None, True) is not None  # malformed


def test_a_public_host_and_forwarded_clients() -> None:
    policy = OriginPolicy([], public_host="cmd.example", port=8080)
    inside = parse_origin("http://10.0.0.5:8080")
    assert policy.allows(Origin("https", "cmd.example", 443), inside)
    assert policy.allows(Origin("https", "cmd.example", 8080), inside)
    assert not policy.allows(Origin("https", "evil.example", 443), inside)
    proxies = [__import__("ipaddress").ip_network("10.0.0.0/8")]
    assert forwarded_client("203.0.113.9, 10.0.0.2", proxies) == "203.0.113.9"
    assert forwarded_client("6.6.6.6, 203.0.113.9, 10.0.0.2", proxies) == "203.0.113.9"  # the client may lie leftwards
    assert forwarded_client("10.0.0.3, 10.0.0.2", proxies) is None
    assert forwarded_client("nonsense", proxies) is None


@pytest.mark.parametrize("path", ["/ws", "/command/ws"])
async def test_a_cross_origin_websocket_with_the_cookie_is_refused(web: WebPlatform, http: aiohttp.ClientSession, path: str) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(web.url + path, origin=EVIL_PORT, headers=web.cookie())
    assert refused.value.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as unproven:
        await http.ws_connect(web.url + path, headers=web.cookie())  # the cookie, and no Origin at all
    assert unproven.value.status == 403
    ws = await http.ws_connect(web.url + path, origin=web.url, headers=web.cookie())  # the page's own
    await ws.close()


async def test_the_consoles_own_socket_issues_a_directive(web: WebPlatform, http: aiohttp.ClientSession) -> None:
    ws = await http.ws_connect(web.url + "/command/ws", origin=web.url, headers=web.cookie())
    await ws.send_str(json.dumps({"type": "directive_issue", "id": "1", "cls": "reference", "title": "t", "body": "",
                                  "sites": ["jiangbei"], "subtrees": []}))
    reply = json.loads((await ws.receive(timeout=10)).data)
    while reply.get("id") != "1":  # the live event may come first
        reply = json.loads((await ws.receive(timeout=10)).data)
    assert reply["type"] == "command_ok", reply
    await ws.close()


async def test_a_cross_origin_form_cannot_start_a_roll_call(web: WebPlatform, http: aiohttp.ClientSession) -> None:
    for headers in ({"Origin": EVIL_PORT, "Sec-Fetch-Site": "same-site"}, {"Origin": "null", "Sec-Fetch-Site": "cross-site"}, {}):
        async with http.post(web.url + "/rollcalls", data=ROLLCALL_FORM, headers={**web.cookie("chief"), **headers},
                             allow_redirects=False) as response:
            assert response.status == 403, headers
            assert (await response.text()).startswith("cross_origin:")
    assert await web.app[ROLLCALLS].history() == []


async def test_the_pages_own_form_starts_a_roll_call(web: WebPlatform, http: aiohttp.ClientSession) -> None:
    # Chromium sends `Origin: null` on a same-origin form post under `Referrer-Policy: no-referrer`.
    for headers in ({"Origin": web.url}, {"Origin": "null", "Sec-Fetch-Site": "same-origin"}):
        async with http.post(web.url + "/rollcalls", data=ROLLCALL_FORM, headers={**web.cookie("chief"), **headers},
                             allow_redirects=False) as response:
            assert response.status == 303, await response.text()
    assert len(await web.app[ROLLCALLS].history()) == 2


async def test_the_json_api_takes_json_only(web: WebPlatform, http: aiohttp.ClientSession) -> None:
    token = web.token("chief-desk", site="command_centre", grants=("moderate",))
    body = json.dumps({"sites": ["jiangbei"], "mode": "all", "window": 30, "grace": 0})
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx"):
        async with http.post(f"{web.url}/api/rollcalls?token={token}", data=body, headers={"Content-Type": kind}) as response:
            assert response.status == 415, kind
    async with http.post(f"{web.url}/api/rollcalls?token={token}", data=body, headers={"Content-Type": "text/plain", **web.cookie("chief"),
                                                                                        "Origin": web.url}) as response:
        assert response.status == 415
    async with http.post(f"{web.url}/api/rollcalls?token={token}", data=body,
                         headers={"Content-Type": "application/json; charset=utf-8"}) as response:
        assert response.status == 201


async def test_login_from_another_origin_is_refused(web: WebPlatform, http: aiohttp.ClientSession) -> None:
    form = {"username": "mayor", "password": "demomayor", "next": "/"}
    for headers in ({"Origin": "http://evil.example"}, {"Origin": EVIL_PORT, "Sec-Fetch-Site": "same-site"},
                    {"Origin": "null", "Sec-Fetch-Site": "cross-site"}):
        async with http.post(web.url + "/login", data=form, headers=headers, allow_redirects=False) as response:
            assert response.status == 403
            assert "Set-Cookie" not in response.headers
    async with http.post(web.url + "/login", data=form, headers={"Origin": web.url}, allow_redirects=False) as response:
        assert response.status == 303 and "cp_session=" in response.headers["Set-Cookie"]


async def test_allowed_origins_and_a_trusted_proxy(make_web_platform: WebPlatformFactory, http: aiohttp.ClientSession) -> None:
    web = await make_web_platform(allowed_origins=("https://ops.example",), trusted_proxies=("127.0.0.1",))
    ws = await http.ws_connect(web.url + "/command/ws", origin="https://ops.example", headers=web.cookie())
    await ws.close()
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "cmd.example", "X-Forwarded-For": "203.0.113.7"}
    ws = await http.ws_connect(web.url + "/ws", origin="https://cmd.example", headers={**web.cookie(), **proxied})
    await ws.close()
    form = {"username": "mayor", "password": "demomayor", "next": "/"}
    async with http.post(web.url + "/login", data=form, headers={"Origin": "https://cmd.example", **proxied},
                         allow_redirects=False) as response:
        assert response.status == 303
        assert SimpleCookie(response.headers["Set-Cookie"])["cp_session"]["secure"]  # TLS ended at the proxy
    untrusted = await make_web_platform()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(untrusted.url + "/ws", origin="https://cmd.example", headers={**untrusted.cookie(), **proxied})
    assert refused.value.status == 403


async def test_the_cookie_is_secure_when_configured(make_web_platform: WebPlatformFactory, http: aiohttp.ClientSession) -> None:
    form = {"username": "mayor", "password": "demomayor", "next": "/"}
    for secure in (False, True):
        web = await make_web_platform(secure_cookies=secure)
        async with http.post(web.url + "/login", data=form, allow_redirects=False) as response:
            morsel = SimpleCookie(response.headers["Set-Cookie"])["cp_session"]
            assert bool(morsel["secure"]) is secure
            assert morsel["httponly"] and morsel["samesite"] == "Lax"


async def test_whip_stays_open_to_any_origin(web: WebPlatform, http: aiohttp.ClientSession) -> None:
    async with http.post(web.url + "/whip/consultation", data="v=0\r\n",
                         headers={"Content-Type": "application/sdp", "Origin": "http://evil.example"}) as response:
        assert response.status == 401  # no token: refused for that, not for the origin
        assert response.headers["Access-Control-Allow-Origin"] == "*"


# ----------------------------------------------------------------- headers ---


def test_no_template_has_inline_script_handlers_or_style() -> None:
    for template in sorted(TEMPLATES.glob("*.html")):
        text = template.read_text(encoding="utf-8")
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag or 'type="application/json"' in tag, f"{template.name}: inline script {tag}"
        assert not re.search(r"\son[a-z]+\s*=", text), f"{template.name}: an inline event handler"
        assert not re.search(r"\sstyle\s*=", text) and "<style" not in text, f"{template.name}: inline style"
        assert "javascript:" not in text, template.name


def test_the_policy_allows_what_the_pages_need() -> None:
    policy = dict(d.split(" ", 1) for d in content_security_policy("http", "127.0.0.1:8080").split("; "))
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert policy["connect-src"] == "'self' ws://127.0.0.1:8080"
    assert set(policy["img-src"].split()) == {"'self'", "data:", "blob:"}
    assert "blob:" in policy["media-src"]
    assert content_security_policy("https", "cmd.example").endswith("connect-src 'self' wss://cmd.example")
    for host in ("evil; script-src *", "evil;script-src", "evil'", "a/b", "user@evil"):
        assert content_security_policy("http", host).endswith("connect-src 'self'"), host  # a Host header cannot inject


async def test_every_page_carries_the_security_headers(web: WebPlatform, http: aiohttp.ClientSession) -> None:
    token = web.token("chief-desk", site="command_centre", grants=("moderate",))
    body = json.dumps({"sites": ["jiangbei"], "mode": "all", "window": 30, "grace": 0})
    async with http.post(f"{web.url}/api/rollcalls?token={token}", data=body, headers={"Content-Type": "application/json"}) as response:
        rid = (await response.json())["id"]
    samples = {"room": "consultation", "rid": rid, "site": "jiangbei", "sid": "daily", "name": "x" * 64, "directive": "d-x",
               "verb": "close"}
    paths = {"/static/page.js", "/no-such-page", "/rooms/nowhere"}
    for resource in web.app.router.resources():  # every GET route there is, whoever added it
        if any(route.method == "GET" for route in resource) and "/static" not in resource.canonical:
            paths.add(re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: samples.get(m.group(1), "x"), resource.canonical))
    assert len(paths) > 20
    for path in sorted(paths):
        async with http.get(web.url + path, headers=web.cookie("chief"), allow_redirects=False) as response:
            headers = response.headers
            csp = headers.get("Content-Security-Policy", "")
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp, path
            assert headers.get("Referrer-Policy") == "no-referrer", path
            assert headers.get("X-Content-Type-Options") == "nosniff", path
            assert headers.get("X-Frame-Options") == "DENY", path
            if response.content_type == "text/html" and response.status == 200:
                html = await response.text()
                assert not re.search(r"<script(?![^>]*\b(src=|type=\"application/json\"))[^>]*>", html), path
                assert not re.search(r"\son[a-z]+=", html) and "<style" not in html, path


# ------------------------------------------------------------ device links ---


async def test_a_device_link_becomes_a_cookie_and_a_clean_address(web: WebPlatform, http: aiohttp.ClientSession) -> None:
    token = web.token("wall-3", site="command_centre", grants=("subscribe",))
    navigation = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate"}
    async with http.get(f"{web.url}/wall/consultation?token={token}&layout=3x3", headers=navigation, allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/wall/consultation?layout=3x3"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        morsel = SimpleCookie(response.headers["Set-Cookie"])["cp_session"]
        assert morsel.value == token and morsel["httponly"] and morsel["samesite"] == "Lax" and morsel["path"] == "/"
        assert 590 <= int(morsel["max-age"]) <= 600  # the token's own remaining lifetime (600 s)
    cookie = {"Cookie": f"cp_session={token}"}
    async with http.get(f"{web.url}/wall/consultation?layout=3x3", headers={**navigation, **cookie}, allow_redirects=False) as response:
        assert response.status == 200
        data = _page_data(await response.text())
    assert data["me"]["identity"] == "wall-3" and data["me"]["kind"] == "device" and data["token"] is None
    ws = await http.ws_connect(web.url + "/ws", origin=web.url, headers=cookie)  # hello without a token: the cookie's device
    await ws.send_str(json.dumps({"type": "hello", "id": "1", "version": 1, "room": "consultation"}))
    welcome = json.loads((await ws.receive(timeout=10)).data)
    assert welcome["type"] == "welcome", welcome
    await ws.close()


async def test_a_bad_or_foreign_device_link_is_refused_as_before(web: WebPlatform, http: aiohttp.ClientSession) -> None:
    navigation = {"Accept": "text/html", "Sec-Fetch-Dest": "document"}
    async with http.get(f"{web.url}/rooms/consultation?token=bad", headers=navigation, allow_redirects=False) as response:
        assert response.status == 401 and "Set-Cookie" not in response.headers
    other = web.token("x", room="command")
    async with http.get(f"{web.url}/rooms/consultation?token={other}", headers=navigation, allow_redirects=False) as response:
        assert response.status == 403 and "Set-Cookie" not in response.headers


async def test_a_script_or_a_non_browser_client_gets_the_page_itself(web: WebPlatform, http: aiohttp.ClientSession) -> None:
    token = web.token("wall-4", site="command_centre", grants=("subscribe",))
    for headers in ({}, {"Accept": "*/*"}, {"Accept": "text/html", "Sec-Fetch-Dest": "empty"}):
        async with http.get(f"{web.url}/rooms/consultation?token={token}", headers=headers, allow_redirects=False) as response:
            assert response.status == 200 and "Set-Cookie" not in response.headers
            assert _page_data(await response.text())["token"] == token


async def test_logging_out_a_device_drops_the_cookie_and_keeps_the_link(web: WebPlatform, http: aiohttp.ClientSession) -> None:
    token = web.token("phone-9", site="mobile01")
    async with http.post(web.url + "/logout", headers={"Cookie": f"cp_session={token}", "Origin": web.url},
                         allow_redirects=False) as response:
        assert response.status == 303
    web.services.tokens.verify_device_token(token)  # not revoked: the link still works where it is meant to


def _page_data(html: str) -> dict[str, object]:
    match = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S)
    assert match is not None
    data = json.loads(match.group(1))
    assert isinstance(data, dict)
    return data
