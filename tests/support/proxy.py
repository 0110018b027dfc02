"""A small reverse proxy for the tests: counts requests, adds latency, checks a bearer token."""

import http.client
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


class Proxy:
    """Forward HTTP requests from 127.0.0.1:<port> to `upstream`.

    `delay` seconds are added to every request; with `token`, requests without
    `Authorization: Bearer <token>` get a 401 like a real authenticating gateway; with
    `fail_status`, every request is answered with that status (a failing gateway).
    """

    def __init__(
        self,
        upstream: str,
        *,
        delay: float = 0.0,
        token: str | None = None,
        fail_status: int | None = None,
    ) -> None:
        self.upstream = urlsplit(upstream)
        self.delay = delay
        self.token = token
        self.fail_status = fail_status
        self.requests: Counter[str] = Counter()
        self.rejected = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "Proxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def total(self) -> int:
        """Return how many requests were forwarded."""
        with self._lock:
            return sum(self.requests.values())

    def reset(self) -> None:
        """Forget the counts."""
        with self._lock:
            self.requests.clear()
            self.rejected = 0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if (
                    proxy.token is not None
                    and self.headers.get("Authorization") != f"Bearer {proxy.token}"
                ):
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
                if proxy.fail_status is not None:
                    self.send_response(proxy.fail_status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if proxy.delay:
                    time.sleep(proxy.delay)
                connection = http.client.HTTPConnection(
                    proxy.upstream.hostname, proxy.upstream.port, timeout=120
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                connection.close()

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

        return Handler
