"""agent.delivery.endpoints: host:port values, the rotation, and the back-off per round
(docs/spec.md §12.1, §6), on a virtual clock."""
from __future__ import annotations

from typing import List, Tuple

import pytest

from agent.delivery.endpoints import Endpoint, EndpointRotation, parse_endpoint
from agent.delivery.link import LinkSettings
from agent.delivery.window import BackoffSettings, ReconnectBackoff

A, B, C = Endpoint("node1.example.org", 8883), Endpoint("node2.example.org", 8884), \
    Endpoint("::1", 8883)


@pytest.mark.parametrize("text, expected", [
    ("node1.example.org", ("node1.example.org", 8883)),
    ("node2.example.org:8884", ("node2.example.org", 8884)),
    ("10.0.0.5:1883", ("10.0.0.5", 1883)),
    ("[::1]:1884", ("::1", 1884)),
    ("[2001:db8::1]", ("2001:db8::1", 8883)),
    ("::1", ("::1", 8883)),             # a bare IPv6 address: a host without a port
])
def test_an_entry_is_a_host_and_an_optional_port(text: str, expected: Tuple[str, int]) -> None:
    e = parse_endpoint(text, 8883)
    assert (e.host, e.port) == expected


@pytest.mark.parametrize("text, phrase", [
    ("node:0", "not a port"),
    ("node:65536", "not a port"),
    ("node:88a", "not a port"),
    ("node:", "not a port"),
    (":8883", "no host name"),
    ("[::1", "without ']'"),
    ("[node1]:8883", "not an IPv6 address"),
    ("[::1]8883", "only ':port' may follow"),
    ("2001:db8::zz:8883", "neither a host name nor an IPv6 address"),
])
def test_a_bad_entry_says_how_to_write_it(text: str, phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase):
        parse_endpoint(text, 8883)


def test_an_endpoint_prints_as_the_config_writes_it() -> None:
    assert [str(e) for e in (A, B, C)] == ["node1.example.org:8883", "node2.example.org:8884",
                                           "[::1]:8883"]
    with pytest.raises(ValueError, match="without brackets"):
        Endpoint("[::1]", 8883)
    with pytest.raises(ValueError, match="outside 1-65535"):
        Endpoint("node", 0)


def test_the_rotation_goes_to_the_next_entry_and_wraps_around() -> None:
    r = EndpointRotation([A, B, C])
    assert r.current == A
    assert [r.advance() for _ in range(4)] == [B, C, A, B]
    assert EndpointRotation([A]).advance() == A
    with pytest.raises(ValueError, match="at least one"):
        EndpointRotation([])


def test_link_settings_list_every_endpoint_once() -> None:
    s = LinkSettings(host=A.host, port=A.port, client_id="gw", topic_prefix="homecare/gw",
                     more_endpoints=(B,))
    assert s.endpoints == (A, B)
    with pytest.raises(ValueError, match="repeat"):
        LinkSettings(host=A.host, port=A.port, client_id="gw", topic_prefix="homecare/gw",
                     more_endpoints=(B, A))


# --- the rotation together with the back-off, as the publisher drives them -----------------

def dial(rotation: EndpointRotation, backoff: ReconnectBackoff, now: float,
         up: Tuple[Endpoint, ...]) -> Tuple[Endpoint, float]:
    """One attempt at ``now`` (the publisher's loop): returns where it went and the wait."""
    assert backoff.due(now)
    where = rotation.current
    backoff.attempt_started(now)
    if where in up:
        backoff.connected(now)
        wait = backoff.session_ended(now + 1.0)    # dropped after 1 s: an unhealthy session
    else:
        wait = backoff.attempt_failed(now)
    rotation.advance()
    return where, wait


def test_the_back_off_grows_only_after_a_full_round_failed() -> None:
    rotation = EndpointRotation([A, B, C])
    backoff = ReconnectBackoff(BackoffSettings(base_s=0.5, max_s=60.0), lambda: 1.0, round_size=3)
    now, tried, waits = 0.0, [], []
    for _ in range(9):
        where, wait = dial(rotation, backoff, now, up=())
        tried.append(where)
        waits.append(wait)
        now = backoff.next_deadline() or now
    assert tried == [A, B, C] * 3
    assert waits == [0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    # one endpoint: a round is one try, as before (docs/spec.md §6)
    single = ReconnectBackoff(BackoffSettings(base_s=0.5), lambda: 1.0)
    assert [single.attempt_failed(0.0) for _ in range(3)] == [0.5, 1.0, 2.0]


def test_the_next_endpoint_is_one_back_off_step_away_and_a_puback_resets_the_round() -> None:
    rotation = EndpointRotation([A, B])
    backoff = ReconnectBackoff(BackoffSettings(base_s=0.5, max_s=60.0), lambda: 1.0, round_size=2)
    now = 0.0
    log: List[Tuple[Endpoint, float]] = []
    for _ in range(4):                           # both down: 0.5, 0.5, then 1, 1
        log.append(dial(rotation, backoff, now, up=()))
        now = backoff.next_deadline() or now
    assert log == [(A, 0.5), (B, 0.5), (A, 1.0), (B, 1.0)]
    # B comes back; A is still down: A fails once more (the round's step), then B works
    where, wait = dial(rotation, backoff, now, up=(B,))
    assert (where, wait) == (A, 2.0)
    now = backoff.next_deadline() or now
    assert rotation.current == B
    backoff.attempt_started(now)
    backoff.connected(now)
    backoff.acked(now + 0.1)                     # a PUBACK: the broker works
    assert backoff.session_ended(now + 1.0) == 0.5   # lost: the next endpoint at the base step
    rotation.advance()
    assert rotation.current == A


def test_a_critical_event_dials_the_next_endpoint_in_the_normal_order() -> None:
    rotation = EndpointRotation([A, B])
    backoff = ReconnectBackoff(BackoffSettings(base_s=0.5, max_s=60.0), lambda: 1.0, round_size=2)
    now = 0.0
    for _ in range(16):                          # both down long enough for a 60 s wait
        dial(rotation, backoff, now, up=())
        now = backoff.next_deadline() or now
    assert backoff.last_wait_s == 60.0 and rotation.current == A
    now -= 55.0                                  # 5 s into the wait
    assert backoff.critical(now)
    assert backoff.due(now)
    assert dial(rotation, backoff, now, up=())[0] == A     # A, as the order had it
    # the next cut comes 5 s after the last (docs/spec.md §6), and dials B
    assert backoff.critical(now + 1.0) and backoff.next_deadline() == now + 5.0
    assert dial(rotation, backoff, now + 5.0, up=())[0] == B
