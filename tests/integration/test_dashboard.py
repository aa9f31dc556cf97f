"""`driveops-env dashboard` in a real browser (Debian's headless Chromium through Selenium): the token
gate, every tenant's rows turning healthy, a killed server's row failing within the refresh interval,
reveal and copy of a connection string, reset back to the seed, a token validated like a JWT bearer
API would, a narrow screen, no console errors; the README's screenshots come from here."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import signal
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest

from tests.browser import chromium, click, dashboard, text_of
from tests.helpers import Sandbox, make_sandbox, pid_of, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.backend_independent, pytest.mark.xdist_group("dashboard")]
INTERVAL = 0.5
# where the README's screenshots are written (scripts/update-screenshots sets it to docs/)
SHOTS = Path(os.environ.get("DRIVEOPS_SCREENSHOTS", "/tmp/driveops-dashboard-shots"))


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with make_sandbox(tmp_path_factory.mktemp("dash"), services="keycloak,postgres,redis") as sandbox:
        up = sandbox.cli("up", "--tenants", "acme,beta")
        assert up.returncode == 0, up.stderr
        try:
            yield sandbox
        finally:
            sandbox.cli("down")


@pytest.fixture(scope="module")
def url(box: Sandbox) -> Iterator[str]:
    with dashboard(box, "--interval", str(INTERVAL)) as found:
        yield found


@pytest.fixture(scope="module")
def browser(url: str) -> Iterator[Any]:
    with chromium(url.split("/?")[0]) as driver:
        yield driver


def _env(box: Sandbox, slug: str) -> dict[str, str]:
    lines = box.cli("env", "--tenant", slug, "--format", "dotnet").stdout.splitlines()
    return dict(line.split("=", 1) for line in lines)


def _status(box: Sandbox) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(box.cli("status", "--json", "--show-secrets").stdout)
    return result


def test_the_page_needs_its_token(url: str, browser: Any, box: Sandbox) -> None:
    origin, token = url.split("/?token=")
    wrong = ["/?token=nope", "/api/status", "/api/events", f"/api/status?token={token}", f"/api/events?token={token}"]
    for path in wrong:  # the token in a URL is read by the page's first load only
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(origin + path, timeout=10)  # noqa: S310 - the test's own loopback server
        assert refused.value.code == 401, path
    with urllib.request.urlopen(origin + "/", timeout=10) as bare:  # noqa: S310 - the bare page: no secret
        page = bare.read().decode()
    assert token not in page and _status(box)["tenants"]["acme"]["postgres"]["password"] not in page
    browser.get(origin + "/")
    wait_for(lambda: "open the URL" in text_of(browser, "summary"), timeout=30, what="the page to ask for its URL")


def test_every_tenant_turns_healthy_and_a_screenshot_is_taken(url: str, browser: Any) -> None:
    browser.get(url)
    wait_for(lambda: "all healthy" in text_of(browser, "summary"), timeout=30, what="the page to show health")
    assert "2 tenant(s)" in text_of(browser, "summary")
    for slug in ("acme", "beta"):
        for store in ("postgres", "redis", "keycloak"):
            assert text_of(browser, f"health-{slug}/{store}") == "healthy"
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / "dashboard-healthy.png"))


def test_reveal_and_copy_a_connection_string(url: str, browser: Any, box: Sandbox) -> None:
    browser.get(url)
    wait_for(lambda: text_of(browser, "endpoint-acme/postgres"), timeout=30)
    password = _status(box)["tenants"]["acme"]["postgres"]["password"]
    assert password not in text_of(browser, "endpoint-acme/postgres")  # masked until revealed
    click(browser, "reveal-acme/postgres")
    wait_for(lambda: password in text_of(browser, "endpoint-acme/postgres"), timeout=10, what="the revealed string")
    click(browser, "copy-acme/postgres")
    wait_for(lambda: "copied" in text_of(browser, "message"), timeout=10)
    copied = browser.execute_async_script("navigator.clipboard.readText().then(arguments[0], () => arguments[0](''))")
    dsn = _status(box)["tenants"]["acme"]["postgres"]["dsn"]
    assert copied == dsn
    with psycopg.connect(copied) as conn:  # what was copied works as is
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_reset_brings_a_tenants_data_back_to_its_seed(url: str, browser: Any, box: Sandbox) -> None:
    dsn = _status(box)["tenants"]["acme"]["postgres"]["dsn"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        seeded = conn.execute("SELECT count(*) FROM interventions").fetchone()
        conn.execute("DELETE FROM interventions")
    browser.get(url)
    wait_for(lambda: text_of(browser, "reset-acme/postgres"), timeout=30)
    click(browser, "reset-acme/postgres")
    wait_for(lambda: "reset acme/postgres: done" in text_of(browser, "message"), timeout=60, what="the reset")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM interventions").fetchone() == seeded != (0,)


def test_a_token_from_the_page_validates_like_a_jwt_bearer_api(url: str, browser: Any, box: Sandbox) -> None:
    browser.get(url)
    wait_for(lambda: text_of(browser, "token-acme"), timeout=30)
    click(browser, "token-acme")
    token = wait_for(lambda: text_of(browser, "token-value"), timeout=60, what="the token")
    dotnet = _env(box, "acme")
    authority, audience = dotnet["Keycloak__Authority"], dotnet["Keycloak__Audience"]
    key = jwt.PyJWKClient(f"{authority}/protocol/openid-connect/certs").get_signing_key_from_jwt(token).key
    claims = jwt.decode(token, key, algorithms=["RS256"], issuer=authority, audience=audience)
    assert claims["tenant_id"] == _status(box)["tenants"]["acme"]["tenant_id"]
    assert json.loads(text_of(browser, "token-claims"))["iss"] == authority  # the decoded claims shown


def test_checks_run_from_the_page(url: str, browser: Any) -> None:
    browser.get(url)
    wait_for(lambda: "all healthy" in text_of(browser, "summary"), timeout=30)
    click(browser, "run-checks")
    wait_for(lambda: "checks: done" in text_of(browser, "message"), timeout=120, what="the checks")
    assert "FAIL" not in text_of(browser, "checks") and "acme" in text_of(browser, "checks")


def test_narrow_screen_and_no_console_errors(url: str, browser: Any) -> None:
    browser.get_log("browser")  # what earlier tests logged (the 401 of the token test) is read and gone
    browser.set_window_size(390, 844)
    try:
        browser.get(url)
        wait_for(lambda: "all healthy" in text_of(browser, "summary"), timeout=30)
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1  # no sideways scrolling of the page (wide tables scroll in their box)
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
    finally:
        browser.set_window_size(1280, 900)


def test_a_killed_server_turns_its_row_red_within_the_interval(url: str, browser: Any, box: Sandbox) -> None:
    browser.get(url)
    wait_for(lambda: "all healthy" in text_of(browser, "summary"), timeout=30)
    server = json.loads((box.state_dir / f"{box.name}.json").read_text())["services"]["redis.beta"]
    os.kill(int(pid_of(server) or 0), signal.SIGKILL)
    wait_for(lambda: text_of(browser, "health-beta/redis") == "FAILING", timeout=INTERVAL * 3 + 10, what="red row")
    assert text_of(browser, "health-acme/redis") == "healthy"  # the other tenant's row stays
    click(browser, "run-checks")
    failed = wait_for(lambda: text_of(browser, "failed-check-beta"), timeout=120, what="beta marked by its check")
    assert "redis" in failed and "what to do" in failed
    assert text_of(browser, "failed-check-acme") == ""
    browser.save_screenshot(str(SHOTS / "dashboard-dead-server.png"))
    healed = box.cli("up", "--tenants", "acme,beta")
    assert healed.returncode == 0, healed.stderr
    wait_for(lambda: "all healthy" in text_of(browser, "summary"), timeout=60, what="healed")


def test_a_descriptor_is_read_only_here(box: Sandbox, tmp_path: Path) -> None:
    descriptor = tmp_path / "staging.json"
    assert box.cli("export", "-o", str(descriptor)).returncode == 0
    proc = box.popen("dashboard", "--from", str(descriptor))
    assert proc.stdout is not None
    try:
        url = proc.stdout.readline().split()[-1]
        origin, token = url.split("/?token=")
        request = urllib.request.Request(  # noqa: S310 - the test's own loopback server
            origin + "/api/actions/reset",
            data=b'{"tenant": "acme"}',
            headers={"X-Driveops-Token": token, "Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)  # noqa: S310
        assert refused.value.code == 400 and "read-only" in json.loads(refused.value.read())["error"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def test_a_taken_port_is_a_usage_error(box: Sandbox) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        result = box.cli("dashboard", "--port", str(holder.getsockname()[1]))
    assert result.returncode == 2 and "--port" in result.stderr
    beyond = box.cli("dashboard", "--port", "70000")
    assert beyond.returncode == 2 and "--port" in beyond.stderr


def _ask(
    url: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Message, str]:
    """An answer of the dashboard (status, headers, text), the session's token sent as a program does."""
    origin, token = url.split("/?token=")
    request = urllib.request.Request(  # noqa: S310 - the test's own loopback server
        origin + path, data=body, headers={"X-Driveops-Token": token, **(headers or {})}
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=60) as answer:
            return answer.status, answer.headers, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.headers, refused.read().decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


JSON = {"Content-Type": "application/json"}


def test_action_bodies_are_checked_as_the_cli_checks_its_arguments(url: str, box: Sandbox) -> None:
    for body in (b"{", b"[1]", b"tenant=acme", b'{"tenant": 5}', b'{"tenant": "acme", "drop": "x"}', b'"acme"'):
        status, _, text = _ask(url, "/api/actions/reset", body, JSON)
        assert status == 400, body
        assert json.loads(text)["hint"], body  # what to send instead
    status, _, text = _ask(url, "/api/actions/reset", b'{"tenant": "acme", "store": "evil"}', JSON)
    cli = box.cli("reset", "--tenant", "acme", "--only", "evil")
    assert cli.returncode == 2 and status == 400
    assert json.loads(text)["error"] in cli.stderr and "'evil'" in cli.stderr  # the CLI's message


def test_cross_site_requests_are_refused_whatever_they_carry(url: str) -> None:
    origin = url.split("/?")[0]
    evil = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}
    assert _ask(url, "/api/actions/token", b'{"tenant": "acme"}', evil)[0] == 403
    assert _ask(url, "/api/actions/token", b'{"tenant": "acme"}', {**JSON, "Origin": "null"})[0] == 403
    assert _ask(url, "/api/status", None, {"Sec-Fetch-Site": "same-site"})[0] == 403  # another port of 127.0.0.1
    assert _ask(url, "/api/actions/check", b"{}", {"Content-Type": "text/plain", "Origin": origin})[0] == 415
    status, _, text = _ask(url, "/api/actions/token", b'{"tenant": "acme"}', {**JSON, "Origin": origin})
    assert status == 200 and json.loads(text)["token"]  # the page's own request


def test_every_answer_is_not_stored_and_cannot_be_framed(url: str) -> None:
    origin, token = url.split("/?token=")
    first = _ask(url, "/?token=" + token)
    assert first[0] == 200 and first[1]["Set-Cookie"] is None and token in first[2]  # for the page's script
    answers = [first, _ask(url, "/"), _ask(url, "/api/status"), _ask(origin + "/?token=nope", "/api/status")]
    answers.append(_ask(url, "/api/status", None, {"Sec-Fetch-Site": "cross-site"}))
    answers.append(_ask(url, "/api/actions/check", b"{}" * 40000, JSON))
    assert [a[0] for a in answers] == [200, 200, 200, 401, 403, 413]
    for _, headers, _ in answers:
        assert headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert "default-src 'none'" in headers["Content-Security-Policy"]


def test_the_token_leaves_the_url_for_the_tabs_own_storage(url: str, browser: Any) -> None:
    token = url.split("/?token=")[1]
    browser.get(url)
    wait_for(lambda: "all healthy" in text_of(browser, "summary"), timeout=30, what="the page over its header")
    assert "token" not in browser.current_url and browser.current_url.endswith("/")
    assert browser.get_cookies() == []  # a cookie would go to every port of 127.0.0.1
    assert browser.execute_script("return sessionStorage.getItem('driveops-token')") == token
    browser.refresh()
    wait_for(lambda: "all healthy" in text_of(browser, "summary"), timeout=30, what="the page after a reload")


def test_another_site_can_neither_frame_the_page_nor_post_to_it(url: str, browser: Any, tmp_path: Path) -> None:
    origin = url.split("/?")[0]
    browser.get(url)
    (tmp_path / "frame.html").write_text(f'<iframe src="{origin}/"></iframe>')
    form = f'<form method="post" enctype="text/plain" action="{origin}/api/actions/token">'
    field = '<input name=\'{"tenant": "acme", "x": "\' value=\'"}\'>'
    (tmp_path / "post.html").write_text(f"{form}{field}</form><script>document.forms[0].submit()</script>")
    with _static_site(tmp_path) as site:
        browser.get_log("browser")
        browser.get(site + "/frame.html")
        refused = wait_for(
            lambda: [e for e in browser.get_log("browser") if "frame-ancestors" in e["message"]], timeout=30
        )
        assert refused, "the frame was shown"
        browser.get(site + "/post.html")
        body = wait_for(lambda: _body(browser), timeout=30, what="the answer")
        assert body == "403: a cross-site request is refused"  # no token was handed out


def _body(browser: Any) -> str:
    """The page's text ("" while the form's navigation replaces the page under the read)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return str(browser.find_element("tag name", "body").text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


@contextlib.contextmanager
def _static_site(folder: Path) -> Iterator[str]:
    """Another site's pages, served on another port of 127.0.0.1."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_dead_keycloak_is_said_as_such_by_token_on_the_cli_and_the_page(url: str, box: Sandbox) -> None:
    box.kill_server("keycloak")
    try:
        cli = box.cli("token", "--tenant", "acme")
        assert cli.returncode == 1 and "does not answer" in cli.stderr and "driveops-env status" in cli.stderr
        assert "user name and password" not in cli.stderr
        status, _, text = _ask(url, "/api/actions/token", b'{"tenant": "acme"}', JSON)
        said = json.loads(text)
        assert status == 409 and "does not answer" in said["error"] and "status" in said["hint"]
    finally:
        healed = box.cli("up", "--tenants", "acme,beta")
        assert healed.returncode == 0, healed.stderr
