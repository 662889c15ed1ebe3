"""A real Milvus standalone server for the tests, and a TCP relay that can cut it off mid-query.

The PyPI package ``milvus`` (2.3.x, the test extra) ships the Milvus standalone binary (embedded etcd,
local storage, RocksMQ) compressed inside the wheel. :func:`start_milvus_server` unpacks it into a
temporary folder, writes its config with free ports on 127.0.0.1, starts ``milvus run standalone`` in a
process group of its own (killed by the kernel if the test process dies: ``PR_SET_PDEATHSIG``) and waits
until pymilvus can list collections. :func:`milvus_server` is the session fixture: one server for the
whole session (it costs ~8 s and ~250 MB), stopped and its folder removed at the end, on failure too.

Import the fixtures in a test module: ``from milvus_server import milvus_server  # noqa: F401``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

_PR_SET_PDEATHSIG = 1
# A binary that the loader cannot run: the only reason to skip rather than fail.
_CANNOT_RUN = ("error while loading shared libraries", "exec format error", "version `GLIBC_")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # If pytest is killed (SIGKILL, OOM), its server must not outlive it.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: every socket stays bound until all are picked, so the OS cannot hand
    the same just-released port out twice (it did: two of Milvus's keys got one port and resolve() failed)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


@dataclass
class MilvusServerProcess:
    """A running Milvus standalone server.

    Attributes:
        uri: ``http://127.0.0.1:PORT`` (what ``--store`` takes).
        port: The gRPC/HTTP proxy port.
        root: Its folder (binaries, config, data, logs); removed by :meth:`stop`.
        process: The ``milvus run standalone`` process (a process group leader).
    """

    uri: str
    port: int
    root: Path
    process: subprocess.Popen[bytes]

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's stdout/stderr log."""
        try:
            text = (self.root / "logs" / "milvus-run.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 2.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``timeout_s``, then remove the folder.

        Milvus 2.3 often takes longer than 20 s to stop on SIGTERM; its data is thrown away here, so a
        short grace period is enough.
        """
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        # Any straggler in the group (there should be none) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def milvus_server_unavailable() -> str | None:
    """Why this platform cannot run the bundled binary, or ``None`` when it can."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        where = f"{sys.platform}/{platform.machine()}"
        return f"the milvus package ships a standalone binary for Linux x86-64 only, not {where}"
    return None


def start_milvus_server(root: Path, timeout_s: float = 180.0) -> MilvusServerProcess:
    """Unpack, configure and start a Milvus standalone server in ``root``; wait until it answers.

    Args:
        root: An empty folder for binaries, config, data and logs.
        timeout_s: How long to wait for the server to answer pymilvus.

    Returns:
        The running server.

    Raises:
        RuntimeError: It exited or did not answer in time (the message has the log's tail).
    """
    import milvus  # the test extra: milvus==2.3.5

    config = milvus.MilvusServerConfig(data_dir=str(root))
    # Every listening port picked by the OS now, not by scanning up from Milvus's defaults (19530, 2379,
    # ...), so a Milvus already running here, or another test session's, is never in the way.
    port_keys = [key for key in config.configurable_items if key.endswith("_port")]
    *ports, metrics_port = _free_ports(len(port_keys) + 1)
    config.update(**dict(zip(port_keys, ports, strict=True)))
    config.resolve()  # writes ROOT/configs/milvus.yaml
    milvus._initialize_data_files(str(root))  # unpacks ROOT/bin/milvus and its libraries (~250 MB)
    port = int(config.get("proxy_port"))
    env = {
        **os.environ,
        "DEPLOY_MODE": "STANDALONE",
        "METRICS_PORT": str(metrics_port),
        "MILVUS_RUN_DIR": str(root / "run"),
        "LD_LIBRARY_PATH": f"{root / 'bin'}:{os.environ.get('LD_LIBRARY_PATH', '')}",
    }
    log = open(root / "logs" / "milvus-run.log", "wb")  # noqa: SIM115 - the child writes it until stop()
    try:
        process = subprocess.Popen(
            [str(root / "bin" / "milvus"), "run", "standalone"],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    finally:
        log.close()
    server = MilvusServerProcess(f"http://127.0.0.1:{port}", port, root, process)
    try:
        _wait_until_ready(server, metrics_port, timeout_s)
    except BaseException:
        server.stop(timeout_s=5)
        raise
    return server


def _wait_until_ready(server: MilvusServerProcess, metrics_port: int, timeout_s: float) -> None:
    from pymilvus import MilvusClient

    deadline = time.monotonic() + timeout_s
    healthy = False
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"the Milvus server exited with status {server.process.returncode} while starting:\n"
                + server.log_tail()
            )
        if not healthy:
            health = f"http://127.0.0.1:{metrics_port}/healthz"
            with contextlib.suppress(OSError), urllib.request.urlopen(health, timeout=2) as resp:
                healthy = b"OK" in resp.read()
        if healthy:
            try:
                client = MilvusClient(server.uri, timeout=5)
                client.list_collections(timeout=5)
                client.close()
                return
            except Exception:  # pymilvus raises several types while the proxy comes up
                pass
        time.sleep(0.25)
    raise RuntimeError(f"the Milvus server did not answer within {timeout_s:.0f} s:\n" + server.log_tail())


@pytest.fixture(scope="session")
def milvus_server() -> Iterator[MilvusServerProcess]:
    """One Milvus standalone server on 127.0.0.1 for the whole session, in a temporary folder.

    Skips only where the bundled binary cannot run (another OS or CPU architecture, or a loader error);
    anything else that keeps it from starting is a failure.
    """
    reason = milvus_server_unavailable()
    if reason:
        pytest.skip(reason)
    try:
        import milvus  # noqa: F401
    except ImportError:
        pytest.fail("the milvus package (the Milvus standalone server) is missing: pip install -e '.[test]'")
    root = Path(tempfile.mkdtemp(prefix="sitetune-milvus-"))
    try:
        server = start_milvus_server(root)
    except RuntimeError as exc:
        shutil.rmtree(root, ignore_errors=True)
        if any(marker in str(exc) for marker in _CANNOT_RUN):
            pytest.skip(f"the bundled Milvus binary cannot run here: {exc}")
        raise
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Relay:
    """A TCP relay to a server that a test can cut, as a server that dies or a network that drops does.

    Attributes:
        target: The server's port on 127.0.0.1.
        port: The relay's own port: 0 picks a free one; pass an old relay's port to bring it "back".
    """

    target: int
    port: int = 0
    _listener: socket.socket | None = None
    _sockets: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stalled: threading.Event = field(default_factory=threading.Event)
    _closed: bool = False
    _cut_after: int | None = None
    _uploaded: int = 0

    def start(self) -> Relay:
        """Listen on 127.0.0.1 and relay every connection to the target; returns self."""
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(16)
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while data := src.recv(65536):
                if from_client:
                    if self._stalled.is_set():
                        continue  # swallowed: the server never sees the request, the client waits
                    with self._lock:
                        self._uploaded += len(data)
                        over = self._cut_after is not None and self._uploaded > self._cut_after
                    if over:
                        self.cut()  # this request never arrives whole
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_RDWR)

    def stall(self) -> None:
        """From now on, requests vanish on their way (the client waits for answers that never come)."""
        self._stalled.set()

    @property
    def uploaded(self) -> int:
        """Bytes clients sent since the relay started or :meth:`cut_after_upload` was last called."""
        with self._lock:
            return self._uploaded

    def cut_after_upload(self, nbytes: int | None) -> None:
        """Cut everything once clients have sent more than ``nbytes`` in all (``None``: never).

        The count restarts now, so pass the bytes of what should still get through.
        """
        with self._lock:
            self._uploaded = 0
            self._cut_after = nbytes

    def cut(self) -> None:
        """Close every connection and stop listening: from now on the port refuses connections."""
        with self._lock:
            self._closed = True
            for sock in [*self._sockets, *([self._listener] if self._listener else [])]:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
            self._sockets.clear()
