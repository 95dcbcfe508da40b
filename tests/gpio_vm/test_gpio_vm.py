"""The whole agent on a real Linux GPIO chip: gpio-sim inside a qemu guest.

One boot per module (``vm`` fixture): the guest driver (guest_driver.py) runs
``homecare-agent run`` with ``gpio.backend: lgpio`` on the sim chip, flips the lines on a
timeline and reports what the broker received and when each event was committed. The
tests below only read that report. ``make test-gpio`` (docs/development.md) builds or
reuses the image and sets ``HOMECARE_GPIO_VM_IMAGE``; without it the module is skipped.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from tests.gpio_vm.conftest import SUMMARY_KEY
from tests.gpio_vm.run_vm import boot
from tests.helpers import assert_unique_boot_seq

IMAGE = os.environ.get("HOMECARE_GPIO_VM_IMAGE")
if not IMAGE:
    pytest.skip("real-GPIO VM tests run under `make test-gpio` (HOMECARE_GPIO_VM_IMAGE unset)",
                allow_module_level=True)

pytestmark = pytest.mark.timeout(2400)

#: the SOS button's press window (docs/spec.md §3): no press may commit sooner
SOS_DEBOUNCE_S = 0.030


class Report:
    def __init__(self, raw: Dict[str, Any]) -> None:
        self.raw = raw
        self.records: List[Dict[str, Any]] = raw["records"]
        self.cases = {r["name"]: r for r in self.records if r["kind"] == "case"}
        self.msgs = [r for r in self.records if r["kind"] == "msg"]
        self.commits = [r for r in self.records if r["kind"] == "commit"]

    def one(self, kind: str) -> Dict[str, Any]:
        found = [r for r in self.records if r["kind"] == kind]
        assert found, f"the guest reported no {kind!r} record; serial log: {self.raw['log']}"
        return found[-1]

    def case(self, name: str) -> Dict[str, Any]:
        case = self.cases.get(name)
        assert case is not None, f"case {name} did not report; serial log: {self.raw['log']}"
        assert "error" not in case["info"], case["info"]
        return case

    def received(self, name: str, sensor: Optional[str] = None) -> List[Dict[str, Any]]:
        """Claims of the events the broker received while case ``name`` ran."""
        case = self.case(name)
        return [m["claims"] for m in self.msgs if case["t0"] <= m["at"] < case["t1"]
                and (sensor is None or m["claims"]["sensor"] == sensor)]


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


@pytest.fixture(scope="module")
def vm(request: pytest.FixtureRequest) -> Iterator[Report]:
    assert IMAGE is not None
    log = Path(os.environ.get("HOMECARE_GPIO_VM_LOG", "")) if os.environ.get("HOMECARE_GPIO_VM_LOG") \
        else None
    report = Report(boot(Path(IMAGE), log))
    request.config.stash[SUMMARY_KEY] = summary(report)
    yield report


def summary(report: Report) -> List[str]:
    raw = report.raw
    lines = [f"gpio VM {raw['arch']} ({raw['kernel']}): prepare {raw['prepare_s']} s, "
             f"boot to power-off {raw['boot_s']} s; serial log {raw['log']}"]
    timing = report.cases.get("timing", {}).get("info", {})
    for what in ("press", "release"):
        got = timing.get(f"{what}_s") or []
        if got:
            lines.append(f"gpio VM flip -> committed, {what}: p50 {percentile(got, 50) * 1000:.1f} ms, "
                         f"p99 {percentile(got, 99) * 1000:.1f} ms, max {max(got) * 1000:.1f} ms "
                         f"(n={len(got)}, {SOS_DEBOUNCE_S * 1000:.0f} ms of it the debounce window)")
    if timing:
        lines.append(f"gpio VM edges lost in the timing series: {timing.get('lost')} "
                     f"of {2 * timing.get('presses', 0)}")
    burst = report.cases.get("burst_1khz", {}).get("info", {})
    if burst.get("edges"):
        lines.append(f"gpio VM burst: {burst['edges']} edges in {burst['s']:.2f} s "
                     f"({burst['edges'] / burst['s']:.0f}/s), re-read repairs during it: "
                     f"{burst.get('repair_warnings')}, heartbeat: {burst.get('heartbeat_data')}")
    return lines


def test_guest_ran_every_case(vm: Report) -> None:
    assert vm.raw["exit"] and "HCVM-EXIT 0" in vm.raw["exit"], \
        f"guest did not finish cleanly ({vm.raw['exit']}); serial log: {vm.raw['log']}"
    assert not [r for r in vm.records if r["kind"] in ("fatal", "garbled")]
    assert vm.one("started")["ok"]
    assert set(vm.cases) == {"glitch_10ms", "sos_50ms", "sos_35ms", "outputs", "door_rattle",
                             "burst_1khz", "smoke_pulsed", "timing", "sigterm"}


def test_lgpio_on_a_board_without_pi_revision_is_refused(vm: Report) -> None:
    """docs/spec.md §2: without the override the agent stops at start, saying what to set."""
    refusal = vm.one("refusal")
    assert refusal["rc"] == 1
    assert "no Raspberry Pi revision code" in refusal["output"]
    assert "gpio.board_revision" in refusal["output"] and "gpio.chip" in refusal["output"]


@pytest.mark.parametrize("case", ["sos_50ms", "sos_35ms"])
def test_short_sos_press_is_one_pressed_and_one_released(vm: Report, case: str) -> None:
    got = vm.received(case, "sos")
    assert [c["type"] for c in got] == ["sos.pressed", "sos.released"], got
    held_ms = got[1]["data"]["held_ms"]
    flipped_ms = vm.case(case)["info"]["held_s"] * 1000
    # held_ms runs from accepted press to accepted release: the flip's length, give or take
    # the callback latency of each edge under emulation
    assert abs(held_ms - flipped_ms) <= 20, (held_ms, flipped_ms)


def test_10ms_glitch_gives_nothing(vm: Report) -> None:
    assert vm.received("glitch_10ms", "sos") == []


def test_rattling_door_gives_no_door_event(vm: Report) -> None:
    got = vm.received("door_rattle", "front_door")
    assert not [c for c in got if c["type"].startswith("door.")], got
    # 21 edges within 10 s is flapping by the door's default (16): reported, not hidden
    assert {c["type"] for c in got} <= {"sensor.flapping"}


def test_burst_ends_in_the_right_state_through_the_reread(vm: Report) -> None:
    """Edges flipped faster than the kernel's handler reports them: whatever was lost, the
    agent ends in the line's real level (open), and every repair is counted."""
    info = vm.case("burst_1khz")["info"]
    got = [c for c in vm.received("burst_1khz", "back_door") if c["type"].startswith("door.")]
    assert got and got[-1]["type"] == "door.opened", got
    assert info["opened_after_s"] is not None
    heartbeat = info["heartbeat_data"]
    assert heartbeat is not None, "the heartbeat never reached the broker"
    # the heartbeat counts every lost edge the periodic re-read found, up to that moment
    assert heartbeat["repaired_edges"] == info["repairs_total"]


def test_led_and_buzzer_read_back_on_their_lines(vm: Report) -> None:
    """docs/spec.md §11 via agent/feedback.py: pending fast blink and a chirp, sent slow
    blink, steady LED and a silent buzzer after an ``ack`` signed with the cloud key."""
    info = vm.case("outputs")["info"]
    pending, sent, acked = info["pending"], info["sent"], info["acked"]
    assert pending["led_rises"] >= 5, pending           # 0.1 s / 0.1 s for 1.6 s
    assert pending["buzzer_rises"] == 3, pending        # the chirp: three beeps
    assert 1 <= sent["led_rises"] <= 3 and 0.15 <= sent["led_on"] <= 0.35, sent   # 0.5 / 1.5 s
    assert info["ack_done"]
    assert acked["led_on"] == 1.0 and acked["buzzer_on"] == 0.0, acked


def test_smoke_pulsed_pattern_is_recognised(vm: Report) -> None:
    got = vm.received("smoke_pulsed", "smoke")
    assert [c["type"] for c in got] == ["smoke.alarm", "smoke.cleared"], got
    assert got[0]["data"]["pattern"] == "pulsed" and got[0]["prio"] == "critical"


def test_flip_to_commit_latency_and_nothing_lost(vm: Report) -> None:
    info = vm.case("timing")["info"]
    assert info["presses"] >= 100 and info["lost"] == 0
    assert len(info["press_s"]) == len(info["release_s"]) == info["presses"]
    # the debounce window holds on the real path: nothing commits before it closed
    assert min(info["press_s"]) >= SOS_DEBOUNCE_S and min(info["release_s"]) >= SOS_DEBOUNCE_S
    assert percentile(info["press_s"], 99) < 1.0   # emulated: generous, but not unbounded
    got = vm.received("timing", "sos_timing")
    assert [c["type"] for c in got] == ["sos.pressed", "sos.released"] * info["presses"]


def test_sigterm_exits_cleanly_and_releases_the_lines(vm: Report) -> None:
    info = vm.case("sigterm")["info"]
    assert info["rc"] == 0 and info["s"] < 10
    assert set(info["lines"].values()) == {"free"}, info["lines"]


def test_broker_received_every_committed_event_once_per_seq(vm: Report) -> None:
    claims = [m["claims"] for m in vm.msgs]
    assert_unique_boot_seq(claims)
    received = {c["jti"] for c in claims}
    sigterm_at = vm.case("sigterm")["t0"]
    missing = [c for c in vm.commits if c["jti"] not in received and c["at"] < sigterm_at]
    assert not missing, missing
