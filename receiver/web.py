"""The operator's HTTP API and live page (stdlib ``http.server``, one thread a request).

* ``GET /api/alarms``: the open alarms, JSON ``{"alarms": [...]}``.
* ``POST /api/alarms/<alarm_id>/ack`` (JSON body ``{"operator": "name"}``, optional):
  acknowledges it and sends the signed ``ack``; 404 if it is not open (any more).
* ``GET /``: a page that polls the API every second (no reload) and has an
  *Acknowledge* button per alarm.

It listens on loopback by default and has no login of its own: put it behind the care
centre's authenticating proxy (docs/integrators.md).
"""
from __future__ import annotations

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Protocol

from receiver.alarms import Alarm

log = logging.getLogger("homecare.receiver.web")
_ACK_PATH = re.compile(r"/api/alarms/([A-Za-z0-9._:-]{1,128})/ack\Z")
MAX_BODY = 4096

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>homecare: open alarms</title>
<style>body{font-family:sans-serif;margin:2em}td,th{padding:.3em .8em;text-align:left}
tr.gateway-silent{color:#a60}</style></head>
<body><h1>Open alarms</h1><p id="state">loading...</p>
<table><thead><tr><th>gateway</th><th>alarm</th><th>sensor</th><th>since</th><th></th></tr>
</thead><tbody id="alarms"></tbody></table>
<script>
async function ack(id, button) {
  button.disabled = true;
  await fetch('/api/alarms/' + encodeURIComponent(id) + '/ack', {method: 'POST',
    headers: {'Content-Type': 'application/json'}, body: JSON.stringify({operator: 'web'})});
  refresh();
}
function cell(row, text) { const td = row.insertCell(); td.textContent = text; return td; }
async function refresh() {
  try {
    const answer = await (await fetch('/api/alarms')).json();
    const body = document.getElementById('alarms');
    body.replaceChildren();
    for (const a of answer.alarms) {
      const row = body.insertRow();
      row.id = 'alarm-' + a.alarm_id;
      row.className = a.type.replace('.', '-');
      cell(row, a.device_id); cell(row, a.type); cell(row, a.sensor);
      cell(row, a.ts || new Date(a.opened_at * 1000).toISOString());
      const button = document.createElement('button');
      button.textContent = 'Acknowledge';
      button.className = 'ack';
      button.onclick = () => ack(a.alarm_id, button);
      cell(row, '').appendChild(button);
    }
    document.getElementById('state').textContent = answer.alarms.length + ' open';
  } catch (e) {
    document.getElementById('state').textContent = 'receiver unreachable: ' + e;
  }
}
refresh(); setInterval(refresh, 1000);
</script></body></html>
"""


class AlarmApi(Protocol):
    def open_alarms(self) -> List[Alarm]: ...

    def acknowledge(self, alarm_id: str, operator: str) -> Optional[Dict[str, Any]]: ...


def _handler(api: AlarmApi) -> type:
    class Handler(BaseHTTPRequestHandler):
        server_version = "homecare-receiver"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, value: Any) -> None:
            self._send(status, json.dumps(value).encode("utf-8"))

        def do_GET(self) -> None:
            if self.path == "/":
                self._send(200, PAGE.encode("utf-8"), "text/html; charset=utf-8")
            elif self.path == "/api/alarms":
                self._json(200, {"alarms": [a.as_json() for a in api.open_alarms()]})
            else:
                self._json(404, {"error": "no such page; try / or /api/alarms"})

        def do_POST(self) -> None:
            match = _ACK_PATH.match(self.path)
            if match is None:
                self._json(404, {"error": "POST /api/alarms/<alarm_id>/ack"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._json(413, {"error": f"the body is over {MAX_BODY} bytes"})
                return
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                operator = str(body.get("operator", "api"))[:64]
            except (ValueError, AttributeError):
                self._json(400, {"error": 'the body must be JSON like {"operator": "name"}'})
                return
            result = api.acknowledge(match.group(1), operator)
            if result is None:
                self._json(404, {"error": f"alarm {match.group(1)} is not open"})
            else:
                self._json(200, result)
    return Handler


class WebServer:
    """``start()`` serves in a thread of its own; ``port`` is the bound port."""

    def __init__(self, api: AlarmApi, host: str, port: int) -> None:
        self.httpd = ThreadingHTTPServer((host, port), _handler(api))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="receiver-web",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
