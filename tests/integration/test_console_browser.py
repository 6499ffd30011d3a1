"""The contact-centre console in a real headless Chromium (Debian's package), end to end.

A plain aiokafka producer makes a customer at-risk, then that customer calls in; the
console page, connected to the API's Server-Sent Events stream, must show the alert.
The browser is driven over the Chrome DevTools Protocol with aiohttp's websocket client,
so nothing is downloaded at run time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from streams.api.auth import hash_key
from streams.api.console_page import ConsolePage
from streams.services import free_port
from tests.integration.conftest import Pipeline
from tests.integration.test_touchpoints_pipeline import produce

pytestmark = pytest.mark.integration

# Debian's package; elsewhere (Ubuntu ships Chromium as a snap only) a Chromium or Chrome
# binary named by MOMENTS_CHROMIUM
CHROMIUM = Path(os.environ.get("MOMENTS_CHROMIUM") or "/usr/bin/chromium")
DEV_KEY = "moments-dev-key"


class Page:
    """One browser tab over CDP: send commands, evaluate JavaScript, collect JS errors."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session_id: str) -> None:
        self._ws = ws
        self._session = session_id
        self._ids = iter(range(1, 1_000_000))
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.errors: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            future = self._pending.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
            elif data.get("method") == "Runtime.exceptionThrown":
                details = data["params"]["exceptionDetails"]
                self.errors.append(details.get("exception", {}).get("description", str(details)))
            elif (
                data.get("method") == "Runtime.consoleAPICalled"
                and data["params"]["type"] == "error"
            ):
                self.errors.append(json.dumps(data["params"]["args"]))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("the browser closed the DevTools socket"))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        await self._ws.send_json(
            {"id": msg_id, "method": method, "params": params, "sessionId": self._session}
        )
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def js(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} raised {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, seconds: float, what: str) -> Any:
        """Poll a JavaScript expression until it is truthy; return its value."""
        deadline = time.monotonic() + seconds
        while True:
            value = await self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                status = await self.js("document.getElementById('status')?.innerText")
                raise AssertionError(
                    f"timed out after {seconds}s waiting for {what} "
                    f"(console status: {status!r}, JS errors: {self.errors})"
                )
            await asyncio.sleep(0.2)

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


def chromium_command(profile: Path) -> list[str]:
    """The command line for Debian's Chromium; fails the test when it is not installed."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's browser package "
            "(`apt-get install chromium`; `make deps` and `make test` do it through "
            "deploy/local/install-deps.sh)",
            pytrace=False,
        )
    profile.mkdir(parents=True, exist_ok=True)
    return [
        str(CHROMIUM), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-extensions",
        "--disable-dev-shm-usage", "--mute-audio", "--hide-scrollbars",
        "--window-size=1280,900", "--lang=en-US", f"--user-data-dir={profile}",
        "--remote-debugging-port=0", "about:blank",
    ]  # fmt: skip


def devtools_endpoint(profile: Path) -> str | None:
    """The browser's DevTools websocket address, once Chromium has written it."""
    port_file = profile / "DevToolsActivePort"
    lines = port_file.read_text().splitlines() if port_file.exists() else []
    return f"ws://127.0.0.1:{lines[0]}{lines[1]}" if len(lines) >= 2 else None


@contextlib.asynccontextmanager
async def chromium(tmp: Path) -> AsyncIterator[Page]:
    """Headless Chromium from Debian's package with one blank tab, closed afterwards."""
    profile = tmp / "chromium-profile"
    command = chromium_command(profile)
    # its org.chromium.Chromium.* folders (a socket's: short), left behind otherwise
    scratch = tempfile.mkdtemp(prefix="moments-chromium-")
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TMPDIR": scratch},
    )  # fmt: skip
    stderr = bytearray()

    async def drain() -> None:  # keep the pipe empty; the tail explains a failed start
        assert proc.stderr is not None
        while chunk := await proc.stderr.read(65536):
            stderr.extend(chunk)
            del stderr[:-20000]

    drainer = asyncio.create_task(drain())
    try:
        deadline = time.monotonic() + 30
        while (endpoint := await asyncio.to_thread(devtools_endpoint, profile)) is None:
            if proc.returncode is not None or time.monotonic() > deadline:
                output = stderr.decode(errors="replace")[-3000:]
                raise RuntimeError(f"chromium did not start its DevTools endpoint:\n{output}")
            await asyncio.sleep(0.1)
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(endpoint, max_msg_size=0) as ws,
        ):
            await ws.send_json(
                {"id": 1, "method": "Target.createTarget", "params": {"url": "about:blank"}}
            )
            target = await _reply(ws, 1)
            await ws.send_json(
                {
                    "id": 2,
                    "method": "Target.attachToTarget",
                    "params": {"targetId": target["targetId"], "flatten": True},
                }
            )
            session = await _reply(ws, 2)
            page = Page(ws, session["sessionId"])
            try:
                await page.send("Page.enable")
                await page.send("Runtime.enable")
                yield page
            finally:
                await page.close()
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        drainer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drainer
        await asyncio.to_thread(shutil.rmtree, profile, True)
        await asyncio.to_thread(shutil.rmtree, scratch, True)


async def _reply(ws: aiohttp.ClientWebSocketResponse, msg_id: int) -> dict[str, Any]:
    while True:
        data = json.loads(await asyncio.wait_for(ws.receive_str(), 30))
        if data.get("id") == msg_id:
            if "error" in data:
                raise RuntimeError(str(data["error"]))
            result: dict[str, Any] = data["result"]
            return result


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _event(kind: str, customer_id: str, ts: datetime, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": f"console-{uuid.uuid4().hex}", "customer_id": customer_id,
            "ts": _iso(ts), **fields}  # fmt: skip


def at_risk_history(customer_id: str, now: datetime) -> list[dict[str, Any]]:
    """High value (purchases well over 500 this year) and a poor experience lately:
    a very unhappy survey and a call that ended badly. None of these raises an alert."""
    return [
        _event("purchase", customer_id, now - timedelta(hours=5), order_id="o-1", amount=240.0,
               currency="EUR", categories=["electronics"]),
        _event("purchase", customer_id, now - timedelta(hours=4), order_id="o-2", amount=190.5,
               currency="EUR", categories=["home"]),
        _event("purchase", customer_id, now - timedelta(hours=3), order_id="o-3", amount=310.0,
               currency="EUR", categories=["electronics"]),
        _event("web_click", customer_id, now - timedelta(hours=2), page="/account/orders/o-3"),
        _event("call", customer_id, now - timedelta(minutes=50), status="ended",
               direction="inbound", reason="support", duration_s=740, sentiment=-0.8),
        _event("survey", customer_id, now - timedelta(minutes=30), score=1, scale="csat5"),
    ]  # fmt: skip


def records(events: list[dict[str, Any]]) -> list[tuple[bytes | None, bytes]]:
    return [(e["customer_id"].encode(), json.dumps(e).encode()) for e in events]


async def wait_until(
    check: Callable[[], Awaitable[Any]], seconds: float, what: str, interval: float = 0.3
) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(interval)


ALERTS_JS = """Array.from(document.querySelectorAll('#alerts .alert')).map(a => ({
  kind: a.dataset.kind, priority: a.dataset.priority, queue: a.dataset.queue,
  segment: a.dataset.segment, acknowledged: a.classList.contains('acknowledged'),
  customer: a.querySelector('.alert-customer').textContent,
  title: a.querySelector('.alert-kind').textContent,
  text: a.innerText,
}))"""


async def test_console_shows_a_live_retention_alert(pipeline: Pipeline, tmp_path: Path) -> None:
    bootstrap = pipeline.services.kafka_bootstrap
    topic = pipeline.topic("touchpoints")
    pipeline.start_worker(MOMENTS_CURRENCY="EUR")  # the value is shown in it
    api = pipeline.start_api()
    run = uuid.uuid4().hex[:6]
    customer = f"console-{run}-ada"
    hostile = f'<img src=x onerror="window.__pwned=1">{run}'
    store = pipeline.store()

    async with chromium(tmp_path) as page:
        await page.send("Page.navigate", url=f"{api.url}/console?api_key={DEV_KEY}")
        await page.wait_for(
            "document.getElementById('status')?.dataset.state === 'live'", 20, "a live stream"
        )
        # The key went into the page, not the address bar.
        assert "api_key" not in await page.js("location.href")
        assert await page.js("document.querySelectorAll('#alerts .alert').length") == 0

        # Some other screens' worth of alerts first: a cancellation call (from a customer id
        # that is HTML, which must come out as text) and two negative social mentions.
        now = datetime.now(UTC)
        await produce(bootstrap, topic, records([
            _event("call", hostile, now - timedelta(minutes=3), status="started",
                   direction="inbound", reason="cancel", queue="retention", agent_id="agent-7"),
            _event("social_mention", f"console-{run}-bo", now - timedelta(minutes=2),
                   platform="x", sentiment=-0.9, reach=20),
            _event("social_mention", f"console-{run}-cy", now - timedelta(minutes=1),
                   platform="x", sentiment=-0.7, reach=2400),
        ]))  # fmt: skip
        await page.wait_for(
            "document.querySelectorAll('#alerts .alert').length >= 3", 20, "the first alerts"
        )

        # Make the customer at-risk, and check the store agrees before they call.
        await produce(bootstrap, topic, records(at_risk_history(customer, now)))

        async def at_risk() -> bool:
            features = await store.read(customer)
            return features is not None and features.events >= 6 and features.segment == "at_risk"

        try:
            await wait_until(at_risk, 30, f"{customer} to be at_risk")
            features = await store.read(customer)
        finally:
            await store.close()
        assert features is not None and features.value >= 500 and features.segment == "at_risk"

        call = _event("call", customer, datetime.now(UTC), status="started", direction="inbound",
                      reason="billing", queue="retention", agent_id="agent-42",
                      timezone="Asia/Kolkata")  # fmt: skip
        await produce(bootstrap, topic, records([call]))
        await page.wait_for(
            "document.querySelector('#alerts .alert[data-kind=\"retention_call\"]') !== null",
            20,
            "the retention_call alert",
        )
        alerts = await page.js(ALERTS_JS)

        newest = alerts[0]  # newest first
        assert newest["kind"] == "retention_call", alerts
        assert newest["title"] == "Retention call"
        assert newest["customer"] == customer
        assert newest["priority"] == "1"
        assert (
            await page.js(
                "document.querySelector('.alert[data-kind=\"retention_call\"] .alert-value')"
                ".textContent"
            )
            == f"{features.value:,.0f} EUR"
        )
        local = await page.js(
            "document.querySelector('.alert[data-kind=\"retention_call\"] .alert-local-time')"
            ".textContent"
        )
        kolkata = datetime.now(ZoneInfo("Asia/Kolkata"))  # the customer's time, told by the call
        assert local.endswith("Asia/Kolkata"), local
        found = re.match(r"(\d{1,2}):(\d{2})\s*([AP]M)?", local)  # the browser's own format
        assert found is not None, local
        hour, minute = int(found[1]) % (12 if found[3] else 24), int(found[2])
        hour += 12 if found[3] == "PM" else 0
        near = [(t.hour, t.minute) for t in (kolkata, kolkata - timedelta(minutes=1))]
        assert (hour, minute) in near, (local, near)
        assert newest["queue"] == "retention"
        assert newest["segment"] == "at_risk"
        assert "At risk" in newest["text"] and "agent-42" in newest["text"]
        assert "Acknowledge their recent experience first" in newest["text"]
        assert "Segment · at_risk" in newest["text"]  # the reason
        assert not newest["acknowledged"]

        # Every other alert is there too, with the priorities the rules give them.
        seen = {(a["kind"], a["customer"]): a for a in alerts}
        assert seen[("save_desk", hostile)]["priority"] == "1"
        assert seen[("service_recovery", f"console-{run}-cy")]["priority"] == "2"
        assert seen[("service_recovery", f"console-{run}-bo")]["priority"] == "3"
        # Untrusted text stays text: no element was injected and nothing ran.
        assert await page.js("window.__pwned === undefined")
        assert await page.js("document.querySelector('#alerts img') === null")
        assert await page.js("document.getElementById('open-count').textContent") == str(
            len(alerts)
        )

        await asyncio.sleep(2)  # let the arrival highlight fade before the picture
        await page.screenshot(tmp_path / "console.png")

        # Acknowledge dims the alert on this screen and lowers the open count.
        await page.js("document.querySelector('.alert[data-kind=\"retention_call\"] .alert-ack')"
                      ".click()")  # fmt: skip
        acknowledged = await page.js(ALERTS_JS)
        assert acknowledged[0]["acknowledged"] and "Acknowledged" in acknowledged[0]["text"]
        assert await page.js("document.getElementById('open-count').textContent") == str(
            len(alerts) - 1
        )
        await page.screenshot(tmp_path / "console-acknowledged.png")

        # Another tab remembered a thousand older acknowledgements meanwhile: the next one
        # here keeps this tab's newer one, the oldest go (it went first, as read last).
        first_ack = await page.js(
            "document.querySelector('.alert[data-kind=\"retention_call\"]').dataset.interventionId"
        )
        await page.js(
            "localStorage.setItem('moments.console.acknowledged', JSON.stringify("
            "Array.from({length: 1000}, (_, i) => ['other-tab-' + i, 1000 + i]))) || true"
        )
        await page.js("document.querySelector('.alert[data-kind=\"save_desk\"] .alert-ack')"
                      ".click()")  # fmt: skip
        remembered = await page.js(
            "JSON.parse(localStorage.getItem('moments.console.acknowledged')).map(e => e[0])"
        )
        assert len(remembered) == 1000 and first_ack in remembered
        assert "other-tab-0" not in remembered and "other-tab-999" in remembered

        # Erasing a customer takes their alert off the screen at once.
        erased = f"console-{run}-bo"
        async with aiohttp.ClientSession() as http:
            gone = await http.delete(f"{api.url}/v1/customers/{erased}",
                                     headers={"Authorization": f"Bearer {DEV_KEY}"})  # fmt: skip
            assert gone.status == 200, await gone.text()
        await page.wait_for(
            f"document.querySelectorAll('#alerts .alert').length === {len(alerts) - 1}",
            20,
            "the erased customer's alert to go",
        )
        remaining = await page.js(ALERTS_JS)
        assert erased not in {a["customer"] for a in remaining}
        assert {a["customer"] for a in remaining} == {a["customer"] for a in alerts} - {erased}
        assert await page.js("document.getElementById('open-count').textContent") == str(
            len(alerts) - 3  # less the two acknowledged and the erased one
        )
        # Following another queue starts the screen over: only that queue's alerts (the
        # cards of the last connection stayed, and were never told of erasures).
        await page.js("document.getElementById('queue').value = 'social'; "
                      "document.getElementById('connect').requestSubmit()")  # fmt: skip
        await page.wait_for(
            "document.querySelectorAll('#alerts .alert').length === 1", 20, "the social queue"
        )
        social = await page.js(ALERTS_JS)
        assert [(a["kind"], a["customer"]) for a in social] == [
            ("service_recovery", f"console-{run}-cy")
        ]
        assert page.errors == [], page.errors

        # A wrong key is reported as such, and the console stops retrying it.
        await page.send("Page.navigate", url=f"{api.url}/console?api_key=not-a-key")
        await page.wait_for(
            "document.getElementById('status')?.dataset.state === 'error'", 20, "a rejected key"
        )
        assert await page.js("document.getElementById('status').innerText") == "Key rejected"
        assert await page.js(ALERTS_JS) == []  # no stream: no card could be told of erasures


def scripted_alert(n: int) -> bytes:
    return json.dumps({
        "intervention_id": f"iv-{n}", "customer_id": f"c-{n}", "customer_ref": f"ref-{n}",
        "ts": _iso(datetime.now(UTC)),
        "kind": "constructor" if n == 349 else "retention_call", "priority": 2, "queue": "q1",
        "agent_id": None, "trigger_event_id": None, "reasons": [],
        "suggested_action": "Call them.", "context": {"segment": "__proto__"},
    }).encode()  # fmt: skip


ERASURES = (b'event: erasure\ndata: {"customer_ref": "ref-200"}\n\n'
            b'event: erasure\ndata: {"customer_id": "c-250"}\n\n'
            b'event: erasure\ndata: {"customer_id": "c-300", "customer_ref": "ref-300"}\n\n'
            b'event: erasure\ndata: {"customer_ref": "ref-unknown"}\n\n')  # fmt: skip
# three cards fewer: the newest alert pushes out none
KEPT = [f"iv-{n}" for n in range(350, 49, -1) if n not in (200, 250, 300)]


def scripted_sse(alerts: range) -> bytes:
    return b"".join(
        b"id: 0-%d\nevent: intervention\ndata: %s\n\n" % (n, scripted_alert(n)) for n in alerts
    )


async def console_page(request: web.Request) -> web.Response:
    """The console, as the API serves it."""
    page = ConsolePage.load()
    return web.Response(text=page.html, content_type="text/html", headers=page.headers)


@contextlib.asynccontextmanager
async def console_on_script(tmp: Path, script: bytes) -> AsyncIterator[Page]:
    """The console in Chromium, connected (with key k1) to a stream that sends ``script``
    and then stays open."""
    closing = asyncio.Event()

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(script)
        await closing.wait()
        return response

    app = web.Application()
    app.router.add_get("/console", console_page)
    app.router.add_get("/v1/alerts/stream", stream)
    async with TestServer(app) as server, chromium(tmp) as page:
        try:
            url = f"http://{server.host}:{server.port}/console?api_key=k1"
            await page.send("Page.navigate", url=url)
            yield page
        finally:
            closing.set()  # the stream held open ends


async def test_the_console_opens_its_stream_with_a_key_bound_to_its_own_origin(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """A key bound to the console's origin works there: the page sends its origin in the
    Referer of its own requests (never the key: it leaves the address bar first)."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    pipeline.start_api(
        port=port,
        MOMENTS_API_KEYS=f"desk:profile-read:{hash_key('desk-key')}@{origin}",
        MOMENTS_API_CORS_ORIGINS=origin,
    )
    async with chromium(tmp_path) as page:
        await page.send("Page.navigate", url=f"{origin}/console?api_key=desk-key")
        state = "document.getElementById('status')?.dataset.state"
        await page.wait_for(f"['live', 'error'].includes({state})", 20, "the stream to answer")
        assert await page.js(state) == "live", await page.js(
            "document.getElementById('hint').textContent"
        )
        assert page.errors == [], page.errors


async def test_console_resumes_without_repeats_and_tells_of_a_gap(tmp_path: Path) -> None:
    """Against a scripted stream (no Kafka): alerts sent again on a resumption are not
    shown again though their cards were dropped, a gap is told, erased customers' cards
    go whether the erasure names them by ref or by id, the key goes in the Authorization
    header (never the URL) and the position in Last-Event-ID, retries after an HTTP
    error keep the queue and key of the last Connect (not what was typed since) and wait
    as long as the server's Retry-After says, an
    acknowledgement keeps another tab's and shows its own time after a reload."""
    asked: list[dict[str, str]] = []
    closing = asyncio.Event()
    scripts: list[bytes | int] = [
        b"retry: 200\n\n" + scripted_sse(range(350)),  # 300 cards are kept: 0 to 49 go
        # a resumption that lacked a partition's position: 0 to 49 again, then 350 is new;
        # customers erased meanwhile: one told by ref alone (how a resumed screen is told),
        # one by id alone (by an older API process), one by both
        ERASURES
        + b"event: gap\ndata: {}\n\n"
        + scripted_sse(range(50))
        + scripted_sse(range(350, 351))
        # other queues' alerts passed it by: where the stream is now, to resume from
        + b"id: 0-360\nevent: position\ndata: {}\n\n",
        503,  # the console's resumption
        503,  # and its retry, after the server's Retry-After
    ]

    async def stream(request: web.Request) -> web.StreamResponse:
        asked.append({**request.query, "header": request.headers.get("Last-Event-ID", ""),
                      "auth": request.headers.get("Authorization", "")})  # fmt: skip
        script = scripts.pop(0) if scripts else None
        if isinstance(script, int):
            return web.json_response({"error": "down", "message": "down"}, status=script,
                                     headers={"Retry-After": "3"})  # fmt: skip
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(script or scripted_sse(range(351)))
        if script is None:  # the retry, and later the reload: held open
            await closing.wait()
        return response

    app = web.Application()
    app.router.add_get("/console", console_page)
    app.router.add_get("/v1/alerts/stream", stream)
    async with TestServer(app) as server, chromium(tmp_path) as page:
        try:
            await scripted_session(page, f"http://{server.host}:{server.port}", asked)
        finally:
            closing.set()  # the streams held open end


async def scripted_session(page: Page, base: str, asked: list[dict[str, str]]) -> None:
    """What the console does with the scripted stream (see the test above)."""
    cards = "Array.from(document.querySelectorAll('#alerts .alert'), a => a.dataset.interventionId)"
    url = f"{base}/console?api_key=k1&queue=q1"
    await page.send("Page.navigate", url=url)
    await page.wait_for("document.getElementById('gap-notice')?.hidden === false", 20, "the gap")
    await page.wait_for(
        "document.querySelector('#alerts .alert')?.dataset.interventionId === 'iv-350'",
        20, "the new alert",
    )  # fmt: skip
    assert asked[1]["header"] == "0-349"
    # the key goes in a header, never in the URL (which proxies log): the link's key too;
    # the second stream has ended, so its resumption (200 ms on) may have been asked too
    sent = [(a["auth"], "api_key" in a) for a in asked]
    assert len(sent) >= 2 and set(sent) == {("Bearer k1", False)}, asked
    assert await page.js(cards) == KEPT
    # another tab of this browser (another queue) acknowledged an alert meanwhile
    store = "'moments.console.acknowledged'"
    await page.js(f"localStorage.setItem({store}, JSON.stringify([['iv-other-tab', 1]]))")
    await page.js("document.querySelector('#alerts .alert .alert-ack').click()")
    kept = await page.js(f"JSON.parse(localStorage.getItem({store})).map(e => e[0])")
    assert kept == ["iv-other-tab", "iv-350"], kept  # its acknowledgement is not lost
    label = "document.querySelector('#alerts .alert .alert-ack').textContent"
    acknowledged = await page.js(label)

    # The stream fails with a 503; meanwhile the agent types without pressing Connect.
    await page.wait_for(
        "document.getElementById('status-text').textContent.startsWith('Offline')",
        20, "the retry to be scheduled",
    )  # fmt: skip
    # when the server said to come back (3 s), not the console's first wait of 2 s
    status = await page.js("document.getElementById('status-text').textContent")
    assert status == "Offline · retrying in 3 s", status
    await page.js("document.getElementById('queue').value = 'typed'; "
                  "document.getElementById('api-key').value = 'typed-key'")  # fmt: skip
    await page.wait_for("document.getElementById('status').dataset.state === 'live'", 20,
                        "the retry")  # fmt: skip
    retry = asked[4]
    assert (retry["auth"], retry["queue"], retry["header"]) == ("Bearer k1", "q1", "0-360")
    assert "api_key" not in retry and "last_event_id" not in retry
    assert await page.js(cards) == KEPT

    await asyncio.sleep(1.2)  # so that the reload's time differs from the acknowledgement's
    await page.js("document.getElementById('hide-acked').click()")  # kept over the reload
    await page.send("Page.navigate", url=url)
    await page.wait_for(
        "document.querySelector('#alerts .alert')?.dataset.interventionId === 'iv-350'",
        20, "the alerts after the reload",
    )  # fmt: skip
    assert acknowledged.startswith("Acknowledged ") and await page.js(label) == acknowledged
    hidden = "document.getElementById('hide-acked').checked && document.body.classList"
    assert await page.js(f"{hidden}.contains('hide-acked')") is True
    first = "document.querySelector('#alerts .alert')"
    assert await page.js(f"getComputedStyle({first}).display") == "none"  # acknowledged
    # a kind or segment named like an object's own property is a name like any other
    card = "document.querySelector('[data-intervention-id=\"iv-349\"]')"
    assert await page.js(f"{card}.querySelector('.alert-kind').textContent") == "Constructor"
    assert "object" not in await page.js(f"{card}.querySelector('.seg').textContent")

    # a link's key and queue serve the visit, not kept over what the agent chose (a link
    # from anywhere could set them); Connect keeps them
    assert not await page.js("Object.values(localStorage).includes('k1')")
    await page.js("document.getElementById('connect').requestSubmit()")
    assert await page.js("Object.values(localStorage).includes('k1')")
    await page.wait_for("document.querySelectorAll('#alerts .alert').length > 0", 20, "alerts")
    # Disconnect forgets the key this browser kept (a desk may be shared), and the cards:
    # with no stream, no erasure could reach them
    await page.js("document.getElementById('disconnect-btn').click()")
    assert not await page.js("Object.values(localStorage).includes('k1')")
    assert await page.js("document.getElementById('api-key').value") == ""
    assert await page.js(cards) == []
    assert page.errors == [], page.errors


async def test_console_shows_alerts_newest_first_whatever_order_they_come_in(
    tmp_path: Path,
) -> None:
    """Alerts of several partitions (or a backlog sent on resuming) can come out of order:
    the cards stand newest first by the alert's time, not by arrival."""
    now = datetime.now(UTC)

    def sent(event_id: str, name: str, seconds: int) -> bytes:
        alert = json.dumps({
            "intervention_id": name, "customer_id": f"c-{name}", "customer_ref": f"r-{name}",
            "ts": _iso(now + timedelta(seconds=seconds)), "kind": "retention_call",
            "priority": 2, "queue": "q1", "agent_id": None, "trigger_event_id": None,
            "reasons": [], "suggested_action": "Call them.", "context": {},
        }).encode()  # fmt: skip
        return b"id: %s\nevent: intervention\ndata: %s\n\n" % (event_id.encode(), alert)

    script = (b"retry: 200\n\n" + sent("0-1", "second", 2) + sent("0-1.1-1", "first", 1)
              + sent("0-2.1-1", "third", 3))  # fmt: skip
    cards = "Array.from(document.querySelectorAll('#alerts .alert'), a => a.dataset.interventionId)"
    async with console_on_script(tmp_path, script) as page:
        await page.wait_for("document.querySelectorAll('#alerts .alert').length === 3", 20,
                            "the three alerts")  # fmt: skip
        assert await page.js(cards) == ["third", "second", "first"]
        assert page.errors == [], page.errors


async def test_a_do_not_call_marks_the_customers_earlier_alerts_whatever_order_they_come_in(
    tmp_path: Path,
) -> None:
    """A customer withdrew consent to calls after their call-back: that card says "Do not
    call", though the do-not-call came first. Another customer's card, the customer's
    public reply, and the call-backs raised after it (one in the same batch, of the same
    time, comes after it) do not; an acknowledged card stays plain to see."""
    now = datetime.now(UTC)

    def sent(event_id: str, name: str, ref: str, kind: str, seconds: int) -> bytes:
        alert = json.dumps({
            "intervention_id": name, "customer_id": f"c-{ref}", "customer_ref": ref,
            "ts": _iso(now + timedelta(seconds=seconds)), "kind": kind, "priority": 1,
            "queue": None, "agent_id": None, "trigger_event_id": None,
            "reasons": ["consent_withdrawn:call"] if kind == "do_not_call" else [],
            "suggested_action": "Call them back.", "context": {},
        }).encode()  # fmt: skip
        return b"id: %s\nevent: intervention\ndata: %s\n\n" % (event_id.encode(), alert)

    script = (b"retry: 200\n\n"
              + sent("0-1", "a-call", "ref-a", "save_desk", 1)
              + sent("0-1.1-1", "a-reply", "ref-a", "service_recovery", 1)  # not a call
              + sent("0-2", "b-call", "ref-b", "retention_call", 1)
              + sent("0-2.1-1", "a-stop", "ref-a", "do_not_call", 3)
              + sent("0-2.1-2", "a-early", "ref-a", "retention_call", 2)  # late to arrive
              + sent("0-2.1-3", "a-same", "ref-a", "vip_attention", 3)  # on the line, after
              + sent("0-2.1-4", "a-again", "ref-a", "save_desk", 5))  # fmt: skip
    stopped = ("Array.from(document.querySelectorAll('#alerts .alert.call-stopped'), "
               "a => [a.dataset.interventionId, "
               "a.querySelector('[data-testid=alert-do-not-call]').textContent])")  # fmt: skip
    async with console_on_script(tmp_path, script) as page:
        await page.wait_for("document.querySelectorAll('#alerts .alert').length === 7", 20,
                            "the seven alerts")  # fmt: skip
        assert await page.js(stopped) == [["a-early", "Do not call"], ["a-call", "Do not call"]]
        card = "document.querySelector('[data-intervention-id=\"a-call\"]')"
        await page.js(f"{card}.querySelector('.alert-ack').click()")
        assert await page.js(f"getComputedStyle({card}).opacity") == "1"
        details = f"getComputedStyle({card}.querySelector('.details')).display"
        assert await page.js(details) != "none"  # why it was raised, and what was to be done
        await page.js("document.getElementById('hide-acked').click()")  # hides the others
        assert await page.js(f"getComputedStyle({card}).display") != "none"
        other = "document.querySelector('[data-intervention-id=\"b-call\"]')"
        await page.js(f"{other}.querySelector('.alert-ack').click()")
        assert await page.js(f"getComputedStyle({other}).display") == "none"
        kind = "document.querySelector('[data-intervention-id=\"a-stop\"] .alert-kind')"
        assert await page.js(f"{kind}.textContent") == "Do not call"
        assert page.errors == [], page.errors


def _alert_sse(n: int, **fields: Any) -> bytes:
    alert = {
        "intervention_id": f"iv-{n}", "customer_id": f"c-{n}", "customer_ref": f"ref-{n}",
        "ts": _iso(datetime(2026, 12, 5, 9, 0, tzinfo=UTC) + timedelta(seconds=n)),
        "kind": "retention_call", "priority": 1, "queue": "q1", "agent_id": None,
        "trigger_event_id": None, "reasons": [], "suggested_action": "Call them.",
        "context": {}, **fields,
    }  # fmt: skip
    return b"id: 0-%d\nevent: intervention\ndata: %s\n\n" % (n, json.dumps(alert).encode())


async def test_a_full_screen_drops_acknowledged_cards_first_and_long_words_wrap(
    tmp_path: Path,
) -> None:
    """Past 300 cards the oldest went, open or not, without a word; one unbroken word (a
    ticket URL) in an alert widened the page past the screen; acknowledging from the
    keyboard dropped the focus to the page, and every button read just "Acknowledge"."""
    long_word = "https://tickets.example.com/" + "x" * 2_000
    script = (b"retry: 200\n\n" + _alert_sse(0, suggested_action=long_word)
              + b"".join(_alert_sse(n) for n in range(1, 302)))  # fmt: skip
    cards = "Array.from(document.querySelectorAll('#alerts .alert'), a => a.dataset.interventionId)"
    notice = "document.getElementById('gap-notice')?.hidden"
    async with console_on_script(tmp_path, script) as page:
        await page.wait_for("document.querySelectorAll('#alerts .alert').length === 300", 20,
                            "a full screen")  # fmt: skip
        # acknowledged in this browser before (the store of acknowledgements): iv-5, iv-6
        await page.js("localStorage.setItem('moments.console.acknowledged', "
                      "JSON.stringify([['iv-5', 1], ['iv-6', 1]]))")  # fmt: skip
        link = await page.js("location.origin") + "/console?api_key=k1"  # as it was opened
        await page.send("Page.navigate", url=link)
        await page.wait_for("document.querySelectorAll('#alerts .alert').length === 300 && "
                            "document.querySelectorAll('#alerts .acknowledged').length === 0",
                            20, "the screen again")  # fmt: skip
        shown = await page.js(cards)
        assert "iv-0" in shown and "iv-1" in shown and "iv-5" not in shown and "iv-6" not in shown
        assert await page.js(notice) is True  # no open card was dropped
        assert await page.js("document.documentElement.scrollWidth <= window.innerWidth")
        # from the keyboard: the focus moves on to an open card's button, each named
        first = "document.querySelector('#alerts .alert .alert-ack')"
        assert "c-301" in await page.js(f"{first}.getAttribute('aria-label')")
        await page.js(f"{first}.focus(); {first}.click()")
        focused = await page.js("document.activeElement.getAttribute('aria-label') || ''")
        assert focused.startswith("Acknowledge") and "c-300" in focused, focused
        assert page.errors == [], page.errors
    more = script + _alert_sse(302) + _alert_sse(303) + _alert_sse(304)  # all open now
    async with console_on_script(tmp_path / "again", more) as page:
        await page.wait_for(f"{notice} === false", 20, "the notice of open cards dropped")
        text = await page.js("document.getElementById('gap-text').textContent")
        assert "keeps 300 cards" in text, text


async def test_a_gap_told_stays_told_when_the_backlog_after_it_fills_the_screen(
    tmp_path: Path,
) -> None:
    """After a gap the backlog came at once, and the first card it pushed off the screen
    replaced the notice of alerts never shown with one of old cards taken off."""
    gap = b'event: gap\ndata: {"missed": [{"partition": 0, "after": 1, "before": 900}]}\n\n'
    script = (b"retry: 200\n\n" + gap
              + b"".join(_alert_sse(n) for n in range(1000, 1301)))  # fmt: skip
    async with console_on_script(tmp_path, script) as page:
        await page.wait_for("document.querySelectorAll('#alerts .alert').length === 300", 20,
                            "a full screen")  # fmt: skip
        text = await page.js("document.getElementById('gap-text').textContent")
        assert "while this screen was away" in text, text
        # dismissed, it goes (and the next card pushed off is told as such)
        await page.js("document.getElementById('gap-dismiss').click()")
        assert await page.js("document.getElementById('gap-notice').hidden") is True
        assert page.errors == [], page.errors


async def test_the_times_moving_on_put_no_new_nodes_into_the_live_list(tmp_path: Path) -> None:
    """Every 15 s each card's "time ago" and the customer's time were written anew, even
    unchanged, as new nodes in the list a screen reader announces additions of."""
    script = b"retry: 200\n\n" + b"".join(
        _alert_sse(n, context={"timezone": "Europe/Paris"}) for n in range(5)
    )
    async with console_on_script(tmp_path, script) as page:
        await page.wait_for("document.querySelectorAll('#alerts .alert').length === 5", 20, "5")
        await page.js(
            "window.__added = 0; new MutationObserver((ms) => { for (const m of ms)"
            " window.__added += m.addedNodes.length; }).observe("
            "document.getElementById('alerts'), {subtree: true, childList: true}); 1"
        )
        await asyncio.sleep(16)  # one tick of the page's clock
        assert await page.js("window.__added") == 0
        assert await page.js("document.getElementById('alerts').getAttribute('aria-relevant')") == (
            "additions"
        )
        ago = await page.js("document.querySelector('#alerts .ago').textContent")
        assert ago.endswith("ago"), ago
        assert page.errors == [], page.errors


async def test_a_silent_stream_is_opened_anew_and_resumes_where_it_was(tmp_path: Path) -> None:
    """A stream that stays open but carries nothing (a proxy or a server gone without
    closing the connection) kept the console "Live" and deaf for the rest of the shift:
    the browser never drops it, and the server's keep-alive was a comment a page never
    sees. The console takes every event a quiet stream brings (`position`, the
    keep-alive) as a sign of life, and opens one silent for longer than
    ``?stalled_after_s=`` (45 s unless a link says) anew, resuming from its last id."""
    asked: list[dict[str, str]] = []
    closing = asyncio.Event()

    async def stream(request: web.Request) -> web.StreamResponse:
        asked.append({**request.query, "header": request.headers.get("Last-Event-ID", ""),
                      "auth": request.headers.get("Authorization", "")})  # fmt: skip
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if len(asked) == 1:
            await response.write(b"retry: 200\n\n" + _alert_sse(1))
            for _ in range(8):  # quiet for 4 s, twice as long as the console waits: kept
                await asyncio.sleep(0.5)
                await response.write(b"id: 0-1\nevent: position\ndata: {}\n\n")
            # then stalled: open, and silent
        else:
            await response.write(b"retry: 200\n\n" + _alert_sse(2))
        await closing.wait()
        return response

    app = web.Application()
    app.router.add_get("/console", console_page)
    app.router.add_get("/v1/alerts/stream", stream)
    cards = "Array.from(document.querySelectorAll('#alerts .alert'), a => a.dataset.interventionId)"
    state = "document.getElementById('status').dataset.state"
    async with TestServer(app) as server, chromium(tmp_path) as page:
        try:
            url = f"http://{server.host}:{server.port}/console?api_key=k1&stalled_after_s=2"
            await page.send("Page.navigate", url=url)
            await page.wait_for(f"{cards}.length === 1 && {state} === 'live'", 20, "the alert")
            await asyncio.sleep(3.5)  # the keep-alives keep it
            assert len(asked) == 1 and await page.js(state) == "live"
            await page.wait_for(f"{cards}.length === 2", 20, "the alert after the stall")
            assert await page.js(cards) == ["iv-2", "iv-1"]
            assert await page.js(state) == "live"
            assert (asked[1]["header"], asked[1]["auth"]) == ("0-1", "Bearer k1")
            assert not {"api_key", "last_event_id"} & asked[1].keys()
            assert page.errors == [], page.errors
        finally:
            closing.set()


async def test_a_key_refused_or_unsendable_stops_the_retries(tmp_path: Path) -> None:
    """A key the server refuses for its scope (403) is told with the server's message and
    not tried again; one no header can hold (the console sends the key in a header now,
    not the URL) is rejected without asking. One with inner spaces, which a header holds
    and the server accepts, is sent (the console refused it)."""
    asked: list[str] = []

    async def stream(request: web.Request) -> web.Response:
        asked.append(request.headers.get("Authorization", ""))
        return web.json_response({"error": "forbidden", "message": "k1 may not read profiles"},
                                 status=403)  # fmt: skip

    app = web.Application()
    app.router.add_get("/console", console_page)
    app.router.add_get("/v1/alerts/stream", stream)
    status = "document.getElementById('status-text')?.textContent"
    hint = "document.getElementById('hint').textContent"
    async with TestServer(app) as server, chromium(tmp_path) as page:
        await page.send(
            "Page.navigate", url=f"http://{server.host}:{server.port}/console?api_key=k1"
        )
        await page.wait_for(f"{status} === 'Key lacks access'", 20, "the refusal")
        assert await page.js(hint) == "k1 may not read profiles"
        await asyncio.sleep(3)  # longer than the first retry's wait
        assert asked == ["Bearer k1"]
        await page.js("document.getElementById('api-key').value = 'k\u2013y'; "
                      "document.getElementById('connect').requestSubmit()")  # fmt: skip
        await page.wait_for(f"{status} === 'Key rejected'", 20, "the key rejected")
        assert asked == ["Bearer k1"]
        await page.js("document.getElementById('api-key').value = ' correct horse staple '; "
                      "document.getElementById('connect').requestSubmit()")  # fmt: skip
        await page.wait_for(f"{status} === 'Key lacks access'", 20, "the spaced key sent")
        assert asked == ["Bearer k1", "Bearer correct horse staple"]
        assert page.errors == [], page.errors


async def test_a_card_stays_within_the_screen_however_long_its_texts(tmp_path: Path) -> None:
    """An alert's texts have no bound (a producer with access to `interventions` writes
    what it likes): a 20,000-character suggested action made its card some 9,000 px tall,
    every other alert below the fold. Each text scrolls within its card now, all there."""
    long_action = "Call them back about their last order. " * 500
    script = b"retry: 200\n\n" + _alert_sse(
        1, suggested_action=long_action, kind="k" * 3000, customer_id="c " * 3000,
        reasons=[f"reason-{n}:{'why ' * 20}" for n in range(300)],
        context={"recent_touchpoints": [f"2026-12-05 09:{n % 60:02d} call" for n in range(500)],
                 "segment": "s " * 3000},
    ) + _alert_sse(2)  # fmt: skip
    card = "document.querySelector('[data-intervention-id=\"iv-1\"]')"
    action = f"{card}.querySelector('.alert-action')"
    async with console_on_script(tmp_path, script) as page:
        await page.wait_for("document.querySelectorAll('#alerts .alert').length === 2", 20,
                            "the alerts")  # fmt: skip
        height = await page.js(f"{card}.getBoundingClientRect().height")
        assert height < 900, height  # the window's height
        assert await page.js(f"{action}.scrollHeight > {action}.clientHeight")  # it scrolls
        assert long_action.strip() in await page.js(f"{action}.textContent")
        assert await page.js("document.documentElement.scrollWidth <= window.innerWidth")
        assert page.errors == [], page.errors


class StallingProxy:
    """A TCP proxy in front of the API; :meth:`stall` makes the alert streams open now
    carry nothing more, their connections held open (a load balancer whose API node died
    without a FIN or RST, or a middlebox that froze), while new connections pass."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.streams = 0  # alert streams asked for through it
        self._stalled: list[asyncio.Event] = []
        self._connections: list[tuple[asyncio.Event, bytearray]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> StallingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def stall(self) -> None:
        for stalled, asked in self._connections:
            if b"/v1/alerts/stream" in asked:
                stalled.set()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        stalled, asked = asyncio.Event(), bytearray()
        self._connections.append((stalled, asked))
        try:
            await asyncio.gather(self._pipe(reader, up_writer, stalled, asked),
                                 self._pipe(up_reader, writer, stalled))  # fmt: skip
        finally:
            for w in (writer, up_writer):
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    stalled: asyncio.Event, asked: bytearray | None = None) -> None:  # fmt: skip
        while (data := await reader.read(65536)) and not stalled.is_set():
            if asked is not None:
                self.streams += data.count(b"GET /v1/alerts/stream")
                asked.extend(data[:4096])
            writer.write(data)
            await writer.drain()
        if stalled.is_set():
            await asyncio.Event().wait()  # passes nothing more, closes nothing


async def test_the_console_resumes_a_stream_a_proxy_stalled(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """The stall end to end: a proxy between the console and the API stops carrying the
    stream, the connection left open; an alert raised then reaches the screen through a
    stream the console opens anew (before, after 90 s it still said "Live · all queues",
    with no card)."""
    api = pipeline.start_api()
    state = "document.getElementById('status')?.dataset.state"
    async with StallingProxy(api.port) as proxy, chromium(tmp_path) as page:
        url = f"http://127.0.0.1:{proxy.port}/console?api_key={DEV_KEY}&stalled_after_s=3"
        await page.send("Page.navigate", url=url)
        await page.wait_for(f"{state} === 'live'", 20, "a live stream")
        proxy.stall()
        streams = proxy.streams
        alert = {"intervention_id": "stalled-1", "customer_id": "stalled-c",
                 "ts": _iso(datetime.now(UTC)), "kind": "save_desk", "priority": 1,
                 "trigger_event_id": None, "reasons": [], "suggested_action": "Call now.",
                 "queue": None}  # fmt: skip
        await produce(pipeline.services.kafka_bootstrap, pipeline.topic("interventions"),
                      [(b"stalled-c", json.dumps(alert).encode())])  # fmt: skip
        await page.wait_for(
            "document.querySelector('[data-intervention-id=\"stalled-1\"]') !== null",
            30, "the alert raised after the stall",
        )  # fmt: skip
        assert proxy.streams > streams
        await page.wait_for(f"{state} === 'live'", 10, "the stream live again")
        assert page.errors == [], page.errors
