"""A small reverse proxy for the tests: counts requests, adds latency, checks a bearer token,
and injects faults (a frozen server, lost responses, 500s, a blip of refused connections)."""

import http.client
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}
LOG_BATCH = "/api/2.0/mlflow/runs/log-batch"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts/"
"""Prefix of the proxied artifact paths, which name a run: counted as one kind by `by_kind`."""

FREEZE = "freeze"
"""Hold requests until the fault ends, then forward them (a SIGSTOPped server resumed later)."""
DROP = "drop"
"""Forward the request, then close the connection without answering (a lost response)."""
FAIL = "fail"
"""Answer HTTP 500 without forwarding."""
REFUSE = "refuse"
"""Close the connection without reading or forwarding the request (a network blip)."""


@dataclass
class Fault:
    """A fault applied to requests for `path` until `until` (monotonic) or `count` requests."""

    kind: str
    path: str
    until: float | None
    count: int | None
    released: threading.Event

    def active(self) -> bool:
        """Tell whether the fault still applies (call with the proxy's lock held)."""
        if self.count is not None:
            return self.count > 0
        return self.until is None or time.monotonic() < self.until


class Proxy:
    """Forward HTTP requests from 127.0.0.1:<port> to `upstream`.

    `delay` seconds are added to every request; with `token`, requests without
    `Authorization: Bearer <token>` get a 401 like a real authenticating gateway; with
    `fail_status`, every request is answered with that status (a failing gateway). `inject`
    adds a fault for a while or for a number of requests. On a given `port`, a proxy can stand
    for a server that comes up later, or again after `kill`.
    """

    def __init__(
        self,
        upstream: str,
        *,
        delay: float = 0.0,
        token: str | None = None,
        fail_status: int | None = None,
        tls: tuple[Path, Path] | None = None,
        port: int = 0,
    ) -> None:
        self.upstream = urlsplit(upstream)
        self.delay = delay
        self.token = token
        self.fail_status = fail_status
        self.requests: Counter[str] = Counter()
        self.response_bytes: Counter[str] = Counter()
        """Bytes of the response bodies, by path."""
        self.rejected = 0
        self.faulted: Counter[str] = Counter()
        self._fault: Fault | None = None
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        scheme = "http"
        if tls is not None:  # (key, certificate)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile=tls[1], keyfile=tls[0])
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "Proxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def kill(self) -> None:
        """Stop at once like a SIGKILLed server: refuse new connections, cut the open ones."""
        self.__exit__()
        with self._lock:
            open_connections = list(self._connections)
        for connection in open_connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:  # closed meanwhile
                pass

    @property
    def total(self) -> int:
        """Return how many requests were forwarded."""
        with self._lock:
            return sum(self.requests.values())

    def counts(self) -> tuple[Counter[str], Counter[str]]:
        """Return a copy of the requests and of the response bytes forwarded so far, by kind."""
        with self._lock:
            return by_kind(self.requests), by_kind(self.response_bytes)

    def inject(
        self,
        kind: str,
        *,
        seconds: float | None = None,
        count: int | None = None,
        path: str = LOG_BATCH,
    ) -> None:
        """Apply fault `kind` to requests for `path` for `seconds`, or to the next `count`."""
        until = None if seconds is None else time.monotonic() + seconds
        fault = Fault(kind, path, until, count, threading.Event())
        with self._lock:
            self._fault = fault
        if seconds is not None:
            threading.Timer(seconds, fault.released.set).start()

    def heal(self) -> None:
        """End the fault; frozen requests go on to the server."""
        with self._lock:
            fault, self._fault = self._fault, None
        if fault is not None:
            fault.released.set()

    def _take_fault(self, path: str) -> Fault | None:
        """Return the fault that applies to one request for `path`, counting it."""
        with self._lock:
            fault = self._fault
            if fault is None or fault.path != path or not fault.active():
                return None
            if fault.count is not None:
                fault.count -= 1
            self.faulted[fault.kind] += 1
            return fault

    def authorized(self, authorization: str | None) -> bool:
        """Tell whether a request with this Authorization header may pass (`token`, if any)."""
        return self.token is None or authorization == f"Bearer {self.token}"

    def answer(
        self, method: str, path: str, headers: Any, body: bytes | None, query: dict[str, list[str]]
    ) -> Any:
        """Return (status, JSON payload or raw bytes) of a request served here, or None."""
        return None

    def forwarded(self, path: str, body: bytes | None) -> bytes | None:
        """Return the body a request for `path` goes upstream with (this one: unchanged)."""
        return body

    def returned(self, path: str, data: bytes) -> bytes:
        """Return the response body a request for `path` gets (this one: the upstream's)."""
        return data

    def reset(self) -> None:
        """Forget the counts."""
        with self._lock:
            self.requests.clear()
            self.response_bytes.clear()
            self.rejected = 0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # Headers and body leave in two writes: without this, Nagle's algorithm holds
                # the body until the client's delayed ACK (40 ms) of the headers.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with proxy._lock:
                    proxy._connections.add(self.connection)

            def finish(self) -> None:
                with proxy._lock:
                    proxy._connections.discard(self.connection)
                super().finish()

            def _forward(self) -> None:
                fault = proxy._take_fault(urlsplit(self.path).path)
                if fault is not None and fault.kind == REFUSE:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                url = urlsplit(self.path)
                own = proxy.answer(self.command, url.path, self.headers, body, parse_qs(url.query))
                if own is not None:
                    status, payload = own
                    raw = isinstance(payload, bytes)
                    data = payload if raw else json.dumps(payload).encode()
                    self.send_response(status)
                    kind = "application/octet-stream" if raw else "application/json"
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if not proxy.authorized(self.headers.get("Authorization")):
                    with proxy._lock:
                        proxy.rejected += 1
                    payload = b'{"error_code": "UNAUTHENTICATED", "message": "bad bearer token"}'
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                with proxy._lock:
                    proxy.requests[urlsplit(self.path).path] += 1
                if fault is not None and fault.kind == FREEZE:
                    fault.released.wait()
                status = proxy.fail_status or (500 if fault and fault.kind == FAIL else None)
                if status is not None:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if proxy.delay:
                    time.sleep(proxy.delay)
                connection = http.client.HTTPConnection(
                    proxy.upstream.hostname, proxy.upstream.port, timeout=120
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                body = proxy.forwarded(urlsplit(self.path).path, body)
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = proxy.returned(urlsplit(self.path).path, response.read())
                if fault is not None and fault.kind == DROP:
                    connection.close()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                connection.close()
                with proxy._lock:
                    proxy.response_bytes[urlsplit(self.path).path] += len(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

        return Handler


def by_kind(counts: Counter[str]) -> Counter[str]:
    """Return `counts` by request kind: the path, with every artifact path as one kind."""
    kinds: Counter[str] = Counter()
    for path, count in counts.items():
        kinds[ARTIFACTS if path.startswith(ARTIFACTS) else path] += count
    return kinds


CONTROL = "/__proxy__/"
"""Paths a `ControlledProxy` answers itself: its counts, their reset, its added latency."""


class ControlledProxy(Proxy):
    """A proxy that a `ProxyProcess` in another process reads and steers over HTTP."""

    def answer(
        self, method: str, path: str, headers: Any, body: bytes | None, query: dict[str, list[str]]
    ) -> Any:
        """Answer the control paths; forward the rest."""
        if not path.startswith(CONTROL):
            return None
        command = path.removeprefix(CONTROL)
        if command == "delay":
            self.delay = float(query["seconds"][0])
        elif command == "reset":
            self.reset()
        requests, answered = self.counts()
        return 200, {"requests": dict(requests), "answered": dict(answered)}


class ProxyProcess:
    """A counting `Proxy` in a process of its own: its threads never wait for the interpreter
    lock of the process it measures (a benchmark's pipeline runs in that one)."""

    def __init__(self, upstream: str) -> None:
        self._upstream = upstream
        self._process: subprocess.Popen[str] | None = None
        self._delay = 0.0
        self.url = ""

    def __enter__(self) -> "ProxyProcess":
        command = [sys.executable, "-m", "testsupport.proxy", self._upstream]
        root = Path(__file__).resolve().parents[1]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=root)
        assert self._process.stdout is not None
        self.url = self._process.stdout.readline().strip()
        if not self.url:
            raise RuntimeError(f"the proxy process for {self._upstream} did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)

    def _control(self, command: str) -> dict[str, dict[str, int]]:
        with urllib.request.urlopen(f"{self.url}{CONTROL}{command}", timeout=30) as response:
            return json.load(response)  # type: ignore[no-any-return]

    @property
    def total(self) -> int:
        """Return how many requests were forwarded."""
        return sum(self._control("counts")["requests"].values())

    def counts(self) -> tuple[Counter[str], Counter[str]]:
        """Return the requests and the response bytes forwarded so far, by kind."""
        counts = self._control("counts")
        return Counter(counts["requests"]), Counter(counts["answered"])

    def reset(self) -> None:
        """Forget the counts."""
        self._control("reset")

    @property
    def delay(self) -> float:
        """Seconds added to every request."""
        return self._delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        self._control(f"delay?seconds={seconds}")
        self._delay = seconds


def serve(upstream: str) -> None:
    """Serve a `ControlledProxy` for `upstream` until the process is terminated; print its URL."""
    with ControlledProxy(upstream) as proxy:
        print(proxy.url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    serve(sys.argv[1])
