"""Shared fixtures. Only this file touches gpiozero's class-level pin factory.

Broker fixtures (``test_pki``, ``broker``, ``shared_broker``, ``fault_proxy``) start the
real mosquitto from tests/broker.py; a failing test gets the broker log tail in its report.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from tests.broker import MosquittoBroker, TestPKI, make_test_pki
from tests.faultproxy import FaultProxy


@pytest.fixture
def mock_factory() -> Iterator[object]:
    """A fresh gpiozero MockFactory, installed as the default and reset afterwards."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    previous = Device.pin_factory
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        factory.close()
        Device.pin_factory = previous


# --------------------------------------------------------------------------- real broker
# Helpers live in tests/broker.py and tests/faultproxy.py; these fixtures only manage
# their life cycle. Tests that use them are marked @pytest.mark.broker.

@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """A throw-away CA, localhost server cert, client cert and an unrelated CA (session-wide)."""
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def broker(tmp_path: Path, test_pki: TestPKI) -> Iterator[MosquittoBroker]:
    """A fresh private mosquitto (plain + TLS listeners, users, ACL), killed afterwards."""
    with MosquittoBroker(tmp_path / "broker", test_pki) as b:
        yield b


@pytest.fixture(scope="session")
def shared_broker(tmp_path_factory: pytest.TempPathFactory, test_pki: TestPKI) -> Iterator[MosquittoBroker]:
    """One mosquitto for the whole session: for tests that never stop it or rely on it being empty.

    Use distinct topics per test (e.g. include the test name); retained messages persist
    for the session.
    """
    with MosquittoBroker(tmp_path_factory.mktemp("shared-broker"), test_pki) as b:
        yield b


@pytest.fixture
def fault_proxy(broker: MosquittoBroker) -> Iterator[FaultProxy]:
    """A FaultProxy in ``pass`` mode in front of ``broker``'s PLAIN listener."""
    with FaultProxy(broker.host, broker.plain_port) as proxy:
        yield proxy


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:  # type: ignore[type-arg]
    """On a failure, add each broker's log tail to the report (shown under the traceback)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed:
        return
    for name, value in sorted(getattr(item, "funcargs", {}).items()):
        if isinstance(value, MosquittoBroker):
            lines = int(os.environ.get("BROKER_LOG_LINES", "40"))
            report.sections.append(("mosquitto log tail ({}: {})".format(name, value.log_file),
                                    value.log_tail(lines)))


# --------------------------------------------------------------------------- RabbitMQ
# The second broker of the interop tests (tests/rabbitmq.py): a private node with the
# MQTT plugin, started once per session (about 10 s) and stopped with its epmd at the end.
import tempfile  # noqa: E402

from tests.rabbitmq import RabbitMQBroker, available as rabbitmq_available  # noqa: E402


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMQBroker]:
    """A private RabbitMQ 3.10 node with rabbitmq_mqtt (MQTT 3.1.1) and users
    ``device``/``consumer``; skipped where RabbitMQ is not installed."""
    why_not = rabbitmq_available()
    if why_not is not None:
        pytest.skip(why_not)
    # not under pytest's tmp: that is private to root, and the server runs as "rabbitmq"
    node = RabbitMQBroker(tempfile.mkdtemp(prefix="homecare-rabbitmq-"))
    try:
        node.start()
        yield node
    finally:
        node.stop()
        node.remove()


# --------------------------------------------------------------------------- PostgreSQL
# The receiver's database (tests/postgres.py): a private server started once per session.
from tests.postgres import PostgresServer, available as postgres_available  # noqa: E402


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL on a free loopback port; skipped where it is not installed."""
    why_not = postgres_available()
    if why_not is not None:
        pytest.skip(why_not)
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- failing storage
# Real file systems that fail as in the field (tests/storage_mounts.py); skipped, with the
# reason, where the machine cannot mount.
from tests.storage_mounts import Ext4Card, SmallTmpfs, mount_or_skip  # noqa: E402


@pytest.fixture
def card(tmp_path: Path) -> Iterator[Ext4Card]:
    """A loop-mounted ext4 card that turns read-only on ``card.fail()``."""
    mounted = mount_or_skip(lambda: Ext4Card(tmp_path))
    try:
        yield mounted
    finally:
        mounted.close()


@pytest.fixture
def small_fs_kb() -> int:
    """The size of ``small_fs``; a test module that needs another size overrides this fixture."""
    return 512


@pytest.fixture
def small_fs(tmp_path: Path, small_fs_kb: int) -> Iterator[SmallTmpfs]:
    """A small tmpfs to fill up (``small_fs.fill()``) or remount read-only."""
    mounted = mount_or_skip(lambda: SmallTmpfs(tmp_path, size_kb=small_fs_kb))
    try:
        yield mounted
    finally:
        mounted.close()
