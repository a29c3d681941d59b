"""Reaching a Ray cluster: join one (`--address`) or start a local one; what it may grow to.

Why a module of its own: everything here talks to Ray or the network before any trial exists, and
each check exists because Ray, left alone, fails late or not at all. `ray.init` retries an address
that does not answer (or answers something else) without a deadline and deaf to Ctrl-C, so
`check_reachable` refuses a wrong `--address` in seconds, before data preparation; a local start
must not join someone else's cluster on a shared machine; workers of a local Ray must import this
checkout's `mer` (and, in tests, `tests.support`) even when it is not installed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mer
from mer.errors import ConfigError
from mer.sweep import watchdog
from mer.util import signals

log = logging.getLogger(__name__)


def connect(address: str | None, *, num_cpus: int | None = None) -> bool:
    """Connect to a cluster (`auto` or HOST:PORT) or start a local Ray; True if started here.

    A local start passes address="local": without it ray.init would join whatever cluster
    /tmp/ray points at (someone else's on a shared machine). It listens on 127.0.0.1 only, and a
    watchdog (mer.sweep.watchdog) stops its processes if this process dies without doing so.
    """
    import ray  # lazy: Ray takes seconds to import; the address checks here need none of it

    if ray.is_initialized():
        return False
    if address:
        check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=True)
        except Exception as exc:  # noqa: BLE001 - ConnectionError, Ray's AuthenticationError
            if not isinstance(exc, ConnectionError) and "auth" not in type(exc).__name__.lower():
                raise
            hint = (
                ""
                if os.environ.get("RAY_AUTH_MODE") == "token"
                else "; a cluster with token authentication also needs RAY_AUTH_MODE=token (and "
                "its token, e.g. ~/.ray/auth_token) in this shell. Do not `ray stop` a shared head"
            )
            raise ConfigError(f"--address {address}: {exc}{hint}") from None
    else:
        checkout_on_pythonpath()
        before = watchdog.children(os.getpid())
        log.info("starting a local Ray (10-30 s)")
        with _loopback_only(), _no_prestarted_workers():
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False)
        started = {p: s for p, s in watchdog.children(os.getpid()).items() if p not in before}
        watchdog.start(os.getpid(), started)  # stops them if this process dies without it
    if threading.current_thread() is threading.main_thread():
        signals.reinstall()  # ray.init replaced the SIGTERM handler (sys.exit from anywhere)
    # (from another thread ray.init replaces nothing: BackgroundStart.result reinstalls)
    res = ray.cluster_resources()
    log.info("Ray: %d node(s), %g CPU, %g GPU", alive_nodes(), res.get("CPU", 0), res.get("GPU", 0))
    return True


def _no_sigterm_note(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("SIGTERM handler is not set")


class BackgroundStart:
    """`connect` in a thread of its own, so a local Ray starts (seconds of waiting for its
    processes) while the driver imports, prepares data and plans. `result()` waits for it.

    Nothing is started in Ray's workers ahead of the trials: Ray gives each Tune trial actor a
    worker process of its own, never one that ran a task before, so warming workers with the
    trial's imports (tried: `bench.scale` start-up 16.3 s with, 12.5 s without, 2 CPUs) only
    takes CPU from the driver and the trials' own workers.

    The thread stays (idle) as long as the process: Ray starts its processes with
    PR_SET_PDEATHSIG, which kills them when the *thread* that started them ends."""

    def __init__(self, address: str | None, *, num_cpus: int | None = None):
        self._args = (address, num_cpus)
        self._ready = threading.Event()
        self._started = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mer-ray-start", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        address, num_cpus = self._args
        # ray.init warns that it set no SIGTERM handler from this thread: result() sets it
        logging.getLogger("ray._private.worker").addFilter(_no_sigterm_note)
        try:
            self._started = connect(address, num_cpus=num_cpus)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
            self._error = exc
        finally:
            self._ready.set()
        if self._started:
            threading.Event().wait()  # keep Ray's processes alive (see the class docstring)

    def done(self) -> bool:
        """The start has ended (started, joined or failed): `result()` will not wait."""
        return self._ready.is_set()

    def result(self) -> bool:
        """True when Ray was started here. ray.init sets its SIGTERM handler (exit, so that Ray
        shuts down) only from the main thread: it is set here instead, unless the program has a
        handler of its own."""
        self._ready.wait()
        if self._error is not None:
            raise self._error
        in_main = threading.current_thread() is threading.main_thread()
        if self._started and in_main:
            signals.reinstall()  # the command's own handler, when it installed one
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))
        return self._started

    def abandon(self) -> None:
        """The run stops before it needs Ray: wait for the start, shut down what it started."""
        self._ready.wait()
        if self._started:
            import ray  # lazy: Ray takes seconds to import

            ray.shutdown()


# Ray binds its servers (GCS, raylet, workers, agents) to the node's IP address, which a local
# start resolves from the network (127.0.0.1 is replaced by it) unless Ray thinks clusters are off,
# as on Windows and macOS; that switch is this variable (read by the Ray processes ray.init
# starts) and ray_constants.ENABLE_RAY_CLUSTER (read by this process when ray.init resolves it).
_LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """A local Ray started inside listens on 127.0.0.1 only: a single-machine sweep needs no
    port reachable from elsewhere (Ray 2.60 otherwise listens on every interface). Only the
    start is affected: a cluster joined with --address is not."""
    from ray._private import ray_constants  # lazy: Ray takes seconds to import

    previous_env = os.environ.get(_LOCAL_ONLY_ENV)
    previous = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[_LOCAL_ONLY_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if previous_env is None:
            os.environ.pop(_LOCAL_ONLY_ENV, None)
        else:
            os.environ[_LOCAL_ONLY_ENV] = previous_env
        if previous is not None:
            ray_constants.ENABLE_RAY_CLUSTER = previous


# Read by the raylet a local ray.init starts (Ray's system config, as RAY_<name>).
_PRESTART_ENV = "RAY_prestart_worker_first_driver"


@contextlib.contextmanager
def _no_prestarted_workers() -> Iterator[None]:
    """A local Ray started inside does not start one idle worker per CPU for the first driver:
    Tune gives each trial actor a worker process of its own, so those workers only take CPU
    while Ray, the driver and the first trials' workers start (`python -m bench.scale` plain
    start-ups, 2 CPUs: first trial after 9.5-9.9 s without them, 11.1-11.7 s with). A value
    the user set is kept."""
    if _PRESTART_ENV in os.environ:
        yield
        return
    os.environ[_PRESTART_ENV] = "0"
    try:
        yield
    finally:
        os.environ.pop(_PRESTART_ENV, None)


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A HOST:PORT address answers, and speaks gRPC as Ray's GCS does; ConfigError otherwise.

    ray.init keeps retrying an address that does not answer (or answers something else),
    without a deadline and deaf to Ctrl-C; a typo in --address must fail in seconds instead.
    `auto` is resolved as Ray does (RAY_ADDRESS, else the cluster this machine last started)
    and that address is checked. Ray Client (ray://) is refused: Tune would run the experiment
    in a remote actor, out of reach of the callbacks that file each trial's results here.
    """
    if address.startswith(("http://", "https://")):
        raise ConfigError(
            f"--address {address}: expected auto or HOST:PORT of the head node's GCS (6379 by "
            "default), not a URL; http://HOST:8265 is the dashboard, used by `ray job submit`"
        )
    if address.startswith("ray://"):
        raise ConfigError(
            f"--address {address}: Ray Client is not supported (the sweep files each trial's "
            "results from the driver's own process); run run_sweep.py on the head node "
            "(`ray attach cluster.yaml --tmux`, or `ray job submit`) with --address auto"
        )
    if address == "local":
        return
    if address == "auto":
        resolved = _resolve_auto()
        if resolved is None:
            return
        try:
            check_reachable(resolved, timeout_s)
        except ConfigError as exc:
            raise ConfigError(
                f"--address auto (resolved to {resolved} from RAY_ADDRESS or the cluster "
                f"this machine last started): {str(exc).split(': ', 1)[1]}"
            ) from None
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--address {address!r}: expected auto or HOST:PORT (e.g. 10.0.0.1:6379)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as conn:
            speaks_grpc = os.environ.get("RAY_USE_TLS", "0") != "0" or _speaks_grpc(conn)
    except OSError as exc:
        raise ConfigError(
            f"--address {address}: no Ray cluster answers there ({exc}); check the host and port "
            "(`ray status` on the head node) or start one with `ray start --head`"
        ) from None
    if not speaks_grpc:
        hint = " (8265 is Ray's dashboard, used by `ray job submit`)" if port == "8265" else ""
        raise ConfigError(
            f"--address {address}: something answers there, but not Ray{hint}; give the head "
            "node's GCS address (HOST:6379 by default; `ray status` shows it)"
        )


def _resolve_auto() -> str | None:
    """The address `ray.init(address="auto")` would use; None when Ray leaves it open."""
    try:
        # lazy: Ray takes seconds to import
        from ray._private.services import get_ray_address_from_environment
    except ImportError:  # another Ray layout: leave it to ray.init
        return None
    try:
        resolved = get_ray_address_from_environment("auto", None)
    except ConnectionError as exc:
        raise ConfigError(f"--address auto: {exc}") from None
    return None if not resolved or resolved in ("auto", "local") else resolved


# HTTP/2 connection preface and an empty SETTINGS frame: a gRPC server (Ray's GCS and Ray
# Client both are) answers with a SETTINGS frame of its own; an HTTP/1 server does not.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _speaks_grpc(conn: Any) -> bool:
    """Whether the server on `conn` answers the HTTP/2 preface with a SETTINGS frame."""
    try:
        conn.sendall(_H2_PREFACE)
        head = b""
        while len(head) < 9:
            chunk = conn.recv(9 - len(head))
            if not chunk:
                return False
            head += chunk
    except OSError:  # timeout or reset: not a gRPC server
        return False
    return head[3] == 0x04  # frame type SETTINGS


def checkout_on_pythonpath() -> None:
    """Workers of a local Ray import `mer` as the driver does, also from an uninstalled checkout
    (they inherit the environment of the Ray processes ray.init starts)."""
    root = str(Path(mer.__file__).resolve().parents[1])
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *parts])


def alive_nodes() -> int:
    """Nodes of the connected cluster that are up."""
    import ray  # lazy: Ray takes seconds to import

    return sum(1 for n in ray.nodes() if n.get("Alive"))


def autoscaler_ceiling() -> dict[str, float]:
    """The most CPUs/GPUs the cluster's autoscaler may bring up (its node types x max_workers);
    empty without an autoscaler (a local Ray, `ray start` by hand). Ray Train and Data read the
    same (private) state."""
    try:
        from ray._private.state import state  # lazy: Ray takes seconds to import

        found = state.get_max_resources_from_cluster_config() or {}
        return {k: float(v) for k, v in found.items()}
    except Exception:  # noqa: BLE001 - no autoscaler state, or another Ray layout
        return {}
