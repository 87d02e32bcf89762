"""A threaded HTTP server on 127.0.0.1 at a free port: the base of the tests' stand-ins for
services outside the machine (a teacher API, an OpenAI-compatible completions server).

    class MyServer(LocalServer):
        def _handler(self) -> type[BaseHTTPRequestHandler]: ...
    with MyServer() as server:      # (a subclass calls self._listen() in its __init__)
        post(server.url + "/chat/completions", ...)
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class LocalServer:
    """Listens once `_listen()` is called (port known at once), serves inside `with`."""

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def _listen(self) -> None:
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self):  # noqa: ANN204 (the subclass)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
