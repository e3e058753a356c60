"""Starting and stopping the viser server, with the port fallback the CLI promises."""

from __future__ import annotations

import contextlib
import io
import signal
import sys
import threading
from typing import Iterator, TextIO

import viser

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def start_server(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    label: str = "recon",
    out: TextIO | None = None,
) -> viser.ViserServer:
    """Start viser on host:port; if the port is taken, on the next free one (port 0: any).

    viser itself walks up from a busy port; we say so (on `out`, default stderr) and print the
    URL in one line instead of viser's banner, so `recon run --viewer` output stays readable.
    """
    out = out if out is not None else sys.stderr
    # viser prints a rich panel unconditionally; swallow it and print our own line.
    with contextlib.redirect_stdout(io.StringIO()):
        server = viser.ViserServer(host=host, port=port, label=label, verbose=False)
    actual = server.get_port()
    if port != 0 and actual != port:  # 0 asks the OS for any free port
        print(f"recon viewer: port {port} is busy, using {actual} instead", file=out)
    print(f"recon viewer: {viewer_url(server)}", file=out, flush=True)
    return server


def viewer_url(server: viser.ViserServer) -> str:
    """The http URL a browser opens (0.0.0.0 means every interface; localhost reaches it)."""
    host = server.get_host()
    if host in ("0.0.0.0", "::", ""):
        host = "localhost"
    return f"http://{host}:{server.get_port()}"


def server_thread(server: viser.ViserServer) -> threading.Thread | None:
    """The thread running viser's event loop (for tests that check it stops)."""
    return server._websock_server._server_thread  # viser has no public accessor


def stop_server(server: viser.ViserServer) -> None:
    """Stop viser and wait for its event-loop thread, so nothing is left running."""
    with contextlib.redirect_stdout(io.StringIO()):  # viser's thread prints "Server stopped"
        server.stop()
        thread = server_thread(server)
        if thread is not None:
            thread.join(timeout=5.0)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Within the block, Ctrl-C, SIGTERM and SIGHUP (a closed terminal) set `stop` instead of
    killing the process, so the caller can stop the server cleanly; the old handlers come back
    afterwards. SIGINT is handled explicitly because a process started in the background inherits
    it ignored, and Python then installs no KeyboardInterrupt handler. A no-op off the main
    thread, where Python cannot install handlers."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def wait_until_stopped(stop: threading.Event) -> None:
    """Block until `stop` is set, Ctrl-C, SIGTERM or SIGHUP."""
    with stop_on_signals(stop):
        try:
            while not stop.wait(timeout=0.5):
                pass
        except KeyboardInterrupt:
            pass
