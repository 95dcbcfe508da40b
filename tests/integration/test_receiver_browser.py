"""The receiver's web page in a real browser: Debian's chromium, headless, via selenium
and Debian's chromedriver (no browser download). An SOS appears without a reload;
clicking Acknowledge sends a signed ack to the gateway's commands topic."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from agent.remote.keys import load_command_verifier
from agent.remote.policy import CommandPolicy, SeenCommands
from tests.broker import Subscriber, free_port
from tests.postgres import PostgresServer
from tests.receiver.fleet import FleetBroker, Gateway, ReceiverProcess, write_setup

pytestmark = [pytest.mark.broker, pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("chromium / chromium-driver not installed (apt-get install chromium "
                    "chromium-driver)")
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_sos_appears_live_and_the_button_sends_a_signed_ack(
        tmp_path: Path, test_pki: Any, postgres: PostgresServer, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    broker = FleetBroker(tmp_path / "broker", test_pki).start()
    gw = Gateway("gw-0001", tmp_path / "gw")
    port = free_port()
    setup = write_setup(tmp_path / "rx", broker, postgres, postgres.database(), [gw],
                        http_ports=[port])
    receiver = ReceiverProcess(setup["configs"]["r1"]).start()
    try:
        receiver.wait_ready()
        gw.connect(broker)
        wait = WebDriverWait(browser, 15, poll_frequency=0.05)
        browser.get(f"http://127.0.0.1:{port}/")
        wait.until(lambda d: d.find_element(By.ID, "state").text == "0 open")
        browser.execute_script("window.loadedOnce = 'yes'")   # gone if the page reloads
        with Subscriber(broker, "homecare/+/commands", user="fleet") as commands:
            gw.send("sos.pressed", "sos", critical=True, data={"state": "pressed"})
            sos = gw.sent[-1]
            row = wait.until(lambda d: d.find_element(By.ID, "alarm-" + sos["jti"]))
            assert "sos.pressed" in row.text and "gw-0001" in row.text
            assert browser.execute_script("return window.loadedOnce") == "yes"
            row.find_element(By.CSS_SELECTOR, "button.ack").click()
            received = commands.wait_for(1, timeout=10)[0]
            assert received.topic == "homecare/gw-0001/commands"
            policy = CommandPolicy(device_id="gw-0001", algorithm="EdDSA",
                                   verify_signature=load_command_verifier(
                                       "EdDSA", setup["centre_public"]), seen=SeenCommands())
            decision = policy.check(received.payload, now_epoch=time.time())
            assert decision.accepted and (decision.cmd, decision.in_reply_to) == \
                ("ack", sos["jti"]), decision.reason
            wait.until(lambda d: d.find_element(By.ID, "state").text == "0 open")
            assert browser.execute_script("return window.loadedOnce") == "yes"
    finally:
        receiver.stop()
        gw.close()
        broker.kill()
