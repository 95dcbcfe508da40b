"""agent.record.counters: boot and seq only ever go up, across restarts, kill -9 and damage."""
from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Tuple

import pytest

from agent.record import counters as counters_mod
from agent.record.counters import BACKUP_NAME, FILE_NAME, Counters, CountersError, write_counters
from tests.helpers import cli_env


def take(c: Counters, n: int) -> List[int]:
    return [c.next_seq() for _ in range(n)]


def test_first_start_then_restart_skips_the_rest_of_the_block(tmp_path: Path) -> None:
    with Counters(tmp_path, block=10) as c:
        assert c.boot == 1
        assert take(c, 3) == [1, 2, 3]
    with Counters(tmp_path, block=10) as c:
        assert c.boot == 2
        assert take(c, 12) == list(range(11, 23))   # 11..20, then a new block 21..
    with Counters(tmp_path, block=10) as c:
        assert c.boot == 3
        assert c.next_seq() == 31


def test_one_disk_write_per_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writes: List[Tuple[str, int]] = []
    real = counters_mod.write_durably

    def spy(path: Path, content: bytes) -> None:
        writes.append((path.name, json.loads(content)["seq_mark"]))
        real(path, content)

    monkeypatch.setattr(counters_mod, "write_durably", spy)
    with Counters(tmp_path, block=100) as c:
        assert writes == [(FILE_NAME, 101), (BACKUP_NAME, 101)]   # persisted before any seq
        take(c, 100)
        assert len(writes) == 2
        assert c.next_seq() == 101
        assert writes[2:] == [(FILE_NAME, 201), (BACKUP_NAME, 201)]


def test_files_hold_the_reserved_mark_and_boot(tmp_path: Path) -> None:
    with Counters(tmp_path, block=5) as c:
        take(c, 6)
        for name in (FILE_NAME, BACKUP_NAME):
            body = json.loads((tmp_path / name).read_text())
            assert (body["boot"], body["seq_mark"]) == (1, 11)


def test_damaged_primary_recovers_from_backup(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with Counters(tmp_path, block=5) as c:
        last = take(c, 7)[-1]
    (tmp_path / FILE_NAME).write_bytes(b"\x00\x00garbage")
    with Counters(tmp_path, block=5) as c:
        assert c.boot == 2 and c.next_seq() > last
    assert "damaged" in caplog.text
    json.loads((tmp_path / FILE_NAME).read_text())   # rewritten


def test_missing_primary_recovers_from_backup(tmp_path: Path) -> None:
    with Counters(tmp_path, block=5) as c:
        last = take(c, 3)[-1]
    (tmp_path / FILE_NAME).unlink()
    with Counters(tmp_path, block=5) as c:
        assert c.boot == 2 and c.next_seq() > last


def test_both_copies_damaged_refuses_instead_of_restarting(tmp_path: Path) -> None:
    with Counters(tmp_path) as c:
        take(c, 2)
    (tmp_path / FILE_NAME).write_text("{}")
    (tmp_path / BACKUP_NAME).write_text("")
    with pytest.raises(CountersError) as info:
        Counters(tmp_path)
    message = str(info.value)
    assert "damaged" in message and "write_counters" in message and str(tmp_path) in message
    assert info.value.exit_status == 1


def test_a_changed_digit_is_detected_by_the_check(tmp_path: Path) -> None:
    with Counters(tmp_path, block=1000) as c:
        take(c, 1)
    for name in (FILE_NAME, BACKUP_NAME):
        body = json.loads((tmp_path / name).read_text())
        body["seq_mark"] = 1                      # a lower mark would mean reused numbers
        (tmp_path / name).write_text(json.dumps(body))
    with pytest.raises(CountersError, match="check value"):
        Counters(tmp_path)


def test_manual_recovery_with_write_counters(tmp_path: Path) -> None:
    write_counters(tmp_path, boot=41, seq_mark=5000)
    with Counters(tmp_path) as c:
        assert (c.boot, c.next_seq()) == (42, 5000)


def test_second_agent_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    first = Counters(tmp_path)
    with pytest.raises(CountersError, match="another homecare-agent"):
        Counters(tmp_path)
    first.close()
    with pytest.raises(CountersError, match="closed"):
        first.next_seq()
    with Counters(tmp_path) as again:
        assert again.boot == 2


def test_leftover_temp_file_is_harmless(tmp_path: Path) -> None:
    with Counters(tmp_path, block=3) as c:
        take(c, 1)
    (tmp_path / (FILE_NAME + ".tmp")).write_text("half-written")
    with Counters(tmp_path, block=3) as c:
        assert c.next_seq() == 4


def test_block_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Counters(tmp_path, block=0)


CHILD = """
import sys
from agent.record.counters import Counters
c = Counters(sys.argv[1], block=int(sys.argv[2]))
out = sys.stdout
out.write("boot %d\\n" % c.boot); out.flush()
while True:
    seq = c.next_seq()
    out.write("%d\\n" % seq); out.flush()
"""


def _parse(text: str) -> Tuple[int, List[int]]:
    boot, seqs = 0, []
    for line in text.split("\n")[:-1]:          # a line without "\n" was not finished
        if line.startswith("boot "):
            boot = int(line.split()[1])
        else:
            seqs.append(int(line))
    return boot, seqs


@pytest.mark.slow
def test_sigkill_at_random_moments_never_reuses_a_seq(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    state = tmp_path / "state"
    seen_max, last_boot, runs_with_seqs = 0, 0, 0
    runs = 32
    for run in range(runs):
        boot, seqs = _run_and_kill(state, rng)
        context = f"seed {seed}, run {run}"
        if boot:
            assert boot > last_boot, context
            last_boot = boot
        if seqs:
            runs_with_seqs += 1
            assert seqs == sorted(set(seqs)), context          # strictly increasing within a run
            assert seqs[0] > seen_max, context                 # above every earlier run's numbers
            seen_max = seqs[-1]
    assert runs_with_seqs >= runs // 2, f"seed {seed}: too few runs handed out numbers"
    with Counters(state) as c:
        assert c.boot > last_boot and c.next_seq() > seen_max


def _run_and_kill(state: Path, rng: random.Random) -> Tuple[int, List[int]]:
    """(boot or 0, seqs printed) of one child SIGKILLed at a random moment."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(state), str(rng.choice([1, 3, 7]))],
                             stdout=subprocess.PIPE, env=cli_env(), text=True)
    assert child.stdout is not None
    read = ""
    if rng.random() < 0.3:
        time.sleep(rng.uniform(0.0, 0.12))       # sometimes while it is still opening
    else:
        for _ in range(rng.randint(1, 60)):      # else after some seqs, at a random point
            line = child.stdout.readline()
            if not line:
                break
            read += line
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    read += child.stdout.read()
    child.stdout.close()
    return _parse(read)


# -- the floor from the outbox (docs/spec.md §4, version 2) --------------------------------
def test_lost_files_start_above_the_floor(tmp_path: Path) -> None:
    with Counters(tmp_path, block=10, floor=(501, 4)) as c:   # no files: not seq 1, boot 1
        assert c.boot == 5
        assert take(c, 2) == [501, 502]
    with Counters(tmp_path, block=10) as c:                    # and the files now say so
        assert c.boot == 6 and c.next_seq() == 511


def test_stale_files_are_raised_to_the_floor_and_a_lower_floor_changes_nothing(
        tmp_path: Path) -> None:
    with Counters(tmp_path, block=10) as c:
        assert (c.boot, c.next_seq()) == (1, 1)
    with Counters(tmp_path, block=10, floor=(300, 7)) as c:    # files rolled back
        assert (c.boot, c.next_seq()) == (8, 300)
    with Counters(tmp_path, block=10, floor=(5, 1)) as c:      # files ahead of the floor
        assert (c.boot, c.next_seq()) == (9, 310)


# --- an unwritable state directory (docs/spec.md §6: storage failure is not an exit) -------

def test_a_read_only_state_dir_at_start_runs_degraded_with_a_boot_no_start_can_repeat(
        small_fs) -> None:  # type: ignore[no-untyped-def]
    state = small_fs.path / "state"
    with Counters(state, block=10) as c:
        assert c.boot == 1 and take(c, 2) == [1, 2]
    small_fs.remount_ro()
    boots = set()
    for _ in range(3):             # e.g. systemd restarting the agent on the same card
        with Counters(state, block=10) as c:
            assert c.degraded is not None and "read-only" in c.degraded.lower()
            assert c.boot >= counters_mod.DEGRADED_BOOT_MIN
            assert c.boot <= 2 ** 53 - 1       # exact in every JSON implementation
            assert take(c, 3) == [11, 12, 13]  # from the stored mark: no seq of boot 1 again
            boots.add(c.boot)
    assert len(boots) == 3          # a distinct boot each time: no (boot, seq) repeats
    small_fs.remount_rw()
    with Counters(state, block=10) as c:   # the card works again: ordinary boots go on
        assert c.degraded is None and c.boot == 2 and c.next_seq() == 11


def test_a_block_that_cannot_be_saved_on_a_full_disk_keeps_counting_and_is_saved_once_it_can(
        small_fs) -> None:  # type: ignore[no-untyped-def]
    state = small_fs.path / "state"
    with Counters(state, block=3) as c:
        assert take(c, 2) == [1, 2]
        filler = small_fs.fill()
        assert take(c, 4) == [3, 4, 5, 6]      # 4.. are above the saved mark: boot 1 only
        assert c.degraded is not None
        filler.unlink()
        assert take(c, 2) == [7, 8]            # saving worked again: a block from 7
        assert c.degraded is None
    with Counters(state, block=3) as c:
        assert c.boot == 2 and c.next_seq() == 10


def test_a_card_that_fails_while_running_then_at_the_next_start(card) -> None:  # type: ignore[no-untyped-def]
    state = card.path / "state"
    with Counters(state, block=3) as c:
        assert take(c, 2) == [1, 2]
        card.fail()                            # ext4 errors=remount-ro under the agent
        assert take(c, 4) == [3, 4, 5, 6]
        assert c.boot == 1 and c.degraded is not None
    with Counters(state, block=3) as c:        # systemd restarts it on the same card
        assert c.boot >= counters_mod.DEGRADED_BOOT_MIN
        assert c.next_seq() == 4               # from the saved mark, under a boot of its own


def test_a_lock_file_on_a_read_only_card_does_not_stop_the_start(small_fs) -> None:  # type: ignore[no-untyped-def]
    state = small_fs.path / "state"
    Counters(state).close()
    small_fs.remount_ro()
    first = Counters(state)
    try:
        with pytest.raises(CountersError, match="another homecare-agent"):
            Counters(state)             # the lock still works (flock on a read-only fd)
    finally:
        first.close()
