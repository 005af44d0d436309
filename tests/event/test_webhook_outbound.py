"""The outbound guard (pure rules), and the dispatcher's `send` refusing a forbidden target
before its transport is ever called. No packet goes anywhere but 127.0.0.1 here: forbidden
targets are refused before a connection is attempted, which is what the tests show."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from shelfkeeper.config import Settings
from shelfkeeper.event import webhook_dispatcher, webhook_service
from shelfkeeper.event.schemas import CloudEvent, EventType
from shelfkeeper.kit import outbound

FORBIDDEN = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "::1",
    "::",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2001:db8::1",
    "::ffff:93.184.215.14",  # IPv4-mapped: never needed to reach a public host, refused
]
PUBLIC = ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_non_public_addresses_are_forbidden(address: str) -> None:
    parsed = ipaddress.ip_address(address)
    assert not outbound.is_public(parsed)
    with pytest.raises(outbound.ForbiddenTarget):
        outbound.check_address(parsed, allow_private=False)
    outbound.check_address(parsed, allow_private=True)  # the flag lets them through


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert outbound.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "gopher://example.com/",
        "https://user:secret@example.com/hook",
        "https://user@example.com/hook",
        "https:///hook",
        "https://example.com/hook#fragment",
        "https://example.com:0/hook",
        "https://example.com:99999/hook",
        "https://exa mple.com/hook",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://017.0.0.1/",
        "http://127.1/",
        "not a url",
        "https://" + "a" * 2100 + ".com/",
    ],
)
def test_urls_that_are_not_plain_http_targets_are_invalid(url: str) -> None:
    with pytest.raises(outbound.InvalidTarget):
        outbound.parse(url)


def test_a_url_is_parsed_into_its_target() -> None:
    target = outbound.parse("HTTPS://Hooks.Example.com/in?x=1")
    assert (target.scheme, target.host, target.port, target.literal) == (
        "https",
        "hooks.example.com",
        443,
        None,
    )
    literal = outbound.parse("http://[::1]:8080/")
    assert (literal.host, literal.port, literal.literal) == (
        "::1",
        8080,
        ipaddress.ip_address("::1"),
    )


def resolver_of(*answers: str) -> outbound.Resolver:
    async def resolve(host: str, port: int) -> Sequence[str]:
        return answers

    return resolve


async def unresolvable(host: str, port: int) -> Sequence[str]:
    raise OSError("no such host")


async def test_a_name_is_refused_when_any_of_its_addresses_is_forbidden() -> None:
    target = outbound.parse("https://hooks.example.com/")
    with pytest.raises(outbound.ForbiddenTarget):
        await outbound.checked_addresses(
            target, allow_private=False, resolver=resolver_of("93.184.215.14", "10.0.0.1")
        )
    checked = await outbound.checked_addresses(
        target, allow_private=False, resolver=resolver_of("93.184.215.14", "93.184.215.14")
    )
    assert checked == [ipaddress.ip_address("93.184.215.14")]
    with pytest.raises(outbound.UnresolvableTarget):
        await outbound.checked_addresses(target, allow_private=False, resolver=unresolvable)


async def test_localhost_resolves_to_a_forbidden_address() -> None:
    target = outbound.parse("http://localhost:8080/")
    with pytest.raises(outbound.ForbiddenTarget):
        await outbound.checked_addresses(
            target, allow_private=False, resolver=outbound.system_resolver
        )


def test_retries_follow_the_schedule_with_bounded_jitter() -> None:
    schedule = [5.0, 300.0, 1800.0]
    assert webhook_service.retry_delay(schedule, 1, uniform=lambda low, high: low) == 4.0
    assert webhook_service.retry_delay(schedule, 2, uniform=lambda low, high: high) == 360.0
    assert webhook_service.retry_delay(schedule, 3, uniform=lambda low, high: 1.0) == 1800.0
    assert webhook_service.retry_delay(schedule, 4) is None  # the schedule is spent
    delays = {webhook_service.retry_delay(schedule, 2) for _ in range(50)}
    assert all(delay is not None and 240.0 <= delay <= 360.0 for delay in delays)
    assert len(delays) > 1


SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def claim_for(url: str) -> webhook_service.Claim:
    event = CloudEvent(
        id=uuid.uuid4(),
        source="/shelfkeeper/tenants/acme",
        type=EventType.ORDER_PLACED,
        time=datetime.now(UTC),
        subject="orders/1",
        data={"total": "5.00"},
        tenantid="acme",
        sequence=7,
    )
    return webhook_service.Claim(
        tenant_id="acme",
        delivery_id=uuid.uuid4(),
        endpoint_id=uuid.uuid4(),
        lease=uuid.uuid4(),
        attempt=1,
        scheduled_attempt=1,
        url=url,
        secret=SECRET,
        event=event,
    )


class RecordingTransport(httpx.AsyncBaseTransport):
    """Stands in for the network: records each request it is asked to send."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status)


@pytest.mark.parametrize(
    ("url", "answers"),
    [
        ("http://127.0.0.1:9/hook", ()),
        ("http://10.0.0.1/hook", ()),
        ("http://169.254.169.254/latest/meta-data/", ()),
        ("http://[::1]/hook", ()),
        ("http://[::ffff:127.0.0.1]/hook", ()),
        ("https://internal.example/hook", ("127.0.0.1",)),
        ("https://rebind.example/hook", ("93.184.215.14", "169.254.169.254")),
        ("https://v6.example/hook", ("fc00::1",)),
    ],
)
async def test_delivery_to_a_forbidden_target_is_refused_before_any_connection(
    url: str, answers: tuple[str, ...]
) -> None:
    transport = RecordingTransport()
    async with httpx.AsyncClient(transport=transport) as client:
        outcome, label = await webhook_dispatcher.send(
            client,
            claim_for(url),
            allow_private=False,
            resolver=resolver_of(*answers),
            timeout_seconds=2,
        )
    assert transport.requests == []  # the transport was never called
    assert label == "refused"
    assert outcome.error is not None
    assert outcome.error.startswith("refused: ")
    assert not outcome.succeeded


async def test_delivery_connects_to_the_checked_address_with_the_url_s_host() -> None:
    transport = RecordingTransport()
    claim = claim_for("https://hooks.example.com:8443/in?x=1")
    async with webhook_dispatcher.new_client(
        Settings(webhook_timeout_seconds=2), transport=transport
    ) as client:
        outcome, label = await webhook_dispatcher.send(
            client,
            claim,
            allow_private=False,
            resolver=resolver_of("93.184.215.14"),
            timeout_seconds=2,
        )
    assert (label, outcome.status_code, outcome.error) == ("delivered", 204, None)
    [request] = transport.requests
    # The resolved, checked address is connected to: no second lookup can change it.
    assert request.url.host == "93.184.215.14"
    assert request.url.port == 8443
    assert request.url.raw_path == b"/in?x=1"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    payload = Webhook(SECRET).verify(request.content, dict(request.headers))
    assert payload == claim.event.model_dump(mode="json")
    assert request.headers["webhook-id"] == str(claim.event.id)


async def test_a_redirect_is_a_failure_and_is_not_followed() -> None:
    transport = RecordingTransport(status=302)
    async with webhook_dispatcher.new_client(
        Settings(webhook_timeout_seconds=2), transport=transport
    ) as client:
        outcome, label = await webhook_dispatcher.send(
            client,
            claim_for("https://hooks.example.com/"),
            allow_private=False,
            resolver=resolver_of("93.184.215.14"),
            timeout_seconds=2,
        )
    assert (label, outcome.status_code, outcome.error) == ("http_error", 302, "HTTP 302")
    assert len(transport.requests) == 1
