"""``zoolite serve``: a folder written by ``zoolite export --web``, served on this machine only.

The page runs LiteRT.js's multithreaded WebAssembly build, which needs SharedArrayBuffer,
which browsers grant only to a *cross-origin isolated* page: every response therefore
carries ``Cross-Origin-Opener-Policy: same-origin`` and ``Cross-Origin-Embedder-Policy:
require-corp`` (and ``Cross-Origin-Resource-Policy: same-origin``). The server binds
127.0.0.1 only, logs nothing and prints nothing: the caller learns the URL through
``on_ready``.
"""

from __future__ import annotations

import errno
import functools
import http.server
import threading
from pathlib import Path
from typing import Callable

from zoolite.errors import ZooliteError

HOST = "127.0.0.1"

# What the page loads; the wasm type matters (WebAssembly.instantiateStreaming insists on it).
MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".tflite": "application/octet-stream",
    ".txt": "text/plain; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}

ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}

    def end_headers(self):
        for name, value in ISOLATION_HEADERS.items():
            self.send_header(name, value)
        # The model and runtime change between exports to the same folder: always revalidate.
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format, *args):  # quiet: no line per request on stderr
        pass

    def handle(self):
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError):  # the browser went away mid-response
            pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False  # a port in use must fail, not be shared

    def handle_error(self, request, client_address):  # no tracebacks on stderr for dropped clients
        pass


def make_server(directory: str | Path, port: int = 8000) -> http.server.ThreadingHTTPServer:
    """A bound (not yet serving) server for ``directory``; ``port`` 0 picks a free port."""
    root = Path(directory)
    if not (root / "index.html").is_file():
        raise ZooliteError(f"{directory}: no index.html; pass a folder written by `zoolite export --web`")
    handler = functools.partial(_Handler, directory=str(root.resolve()))
    try:
        return _Server((HOST, port), handler)
    except OSError as e:
        if e.errno in (errno.EADDRINUSE, errno.EACCES) or isinstance(e, PermissionError):
            reason = "already in use" if e.errno == errno.EADDRINUSE else "not allowed"
            raise ZooliteError(f"--port {port}: {reason}; pick another port") from None
        raise ZooliteError(f"--port {port}: cannot listen on {HOST} ({e.strerror or e}); pick another port") from None
    except OverflowError:  # port > 65535
        raise ZooliteError(f"--port {port}: not a valid port; pick one in 1-65535 (0: any free port)") from None


def url_of(server: http.server.HTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"


def serve(directory: str | Path, port: int = 8000, *, on_ready: Callable[[str], None] | None = None,
          stop: threading.Event | None = None) -> None:
    """Serve ``directory`` on 127.0.0.1:``port`` until Ctrl-C (which returns normally) or ``stop`` is set.

    ``on_ready(url)`` is called once the socket listens, with the real port when ``port`` is 0.
    ``stop`` lets a caller that runs this in a thread (tests, benchmarks) end it cleanly.
    Raises ZooliteError when the folder has no index.html or the port cannot be used.
    """
    server = make_server(directory, port)
    if stop is not None:
        threading.Thread(target=lambda: (stop.wait(), server.shutdown()), daemon=True).start()
    try:
        if on_ready is not None:
            on_ready(url_of(server))
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

