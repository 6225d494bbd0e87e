"""Groups of independent work as Ray tasks, on a local Ray or a cluster: ``fn(group_id, members)``.

:func:`run_groups` runs one Ray task per group, each calling ``fn(group_id, members, progress=...,
log=..., status=...)``; the callbacks' calls come back through a small actor and reach the driver's
callbacks (a progress bar, a log, a status line). A group that fails is reported by number, with its
worker's exception in one line, once the other groups have finished, so their work is kept. ``fn`` must
be picklable (a module-level function or a ``functools.partial`` of one); what it writes must go to
storage every node sees.

Ray is imported only here and only when asked for, so that it stays an optional extra (``robo[ray]``).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

LOCAL = "local"  # start a new Ray on this machine (ray.init(address="local"))
# ray.init blocks for minutes retrying an address where nothing listens; a plain TCP connect says so
# in seconds.
CONNECT_TIMEOUT_S = 5.0
POLL_S = 0.5  # how often the driver refreshes its progress
FLUSH_S = 1.0  # how often a task reports its steps to the driver

GroupFn = Callable[..., Any]  # fn(group_id, members, *, progress, log, status) -> result


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray-address needs Ray, which is not installed: pip install 'robo[ray]'") \
            from None
    return ray


@contextlib.contextmanager
def connect(address: str, log: Callable[[str], None] = print) -> Iterator[Any]:
    """Connect to the Ray at ``address`` ("local" starts one here) for the ``with`` block; yields ``ray``.

    A Ray this process is already connected to is used as it is and left running.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
    if address == LOCAL:
        kwargs["include_dashboard"] = False  # nothing here looks at it; it costs start-up time
    elif address != "auto":
        check_reachable(address)
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise RuntimeError(f"Ray at {address!r}: {first_line(exc)}") from exc
    try:
        resources = ray.cluster_resources()
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        where = "a local Ray" if address == LOCAL else f"Ray at {address}"
        log(f"{where}: {nodes} node(s), {resources.get('CPU', 0):.0f} CPUs, "
            f"{resources.get('GPU', 0):.0f} GPUs")
        yield ray
    finally:
        ray.shutdown()  # a local Ray stops; a cluster stays up, this driver disconnects


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail in seconds, naming ``address``, when nothing accepts a TCP connection there."""
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"Ray address {address!r}: expected 'local', 'auto', HOST:PORT or ray://HOST:PORT")
    host = host.strip("[]")  # [::1]:6379
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise RuntimeError(f"Ray address {address!r}: nothing answers at {host}:{port} ({reason}); start "
                           f"the cluster with 'ray start --head' or give its head node's address") from None


def run_groups(fn: GroupFn, groups: list[tuple[int, list[int]]], *, num_cpus: int = 1, num_gpus: float = 0,
               what: str = "groups", describe: Callable[[int, list[int]], str] | None = None,
               hint: str = "", progress: Callable[[int], None] | None = None,
               log: Callable[[str], None] = print, status: Callable[[str], None] | None = None
               ) -> dict[int, Any]:
    """Run ``fn`` for each of ``groups`` ([(group id, members)]) as a Ray task; ``{group id: result}``.

    Needs a connected Ray (:func:`connect`). Each task asks for ``num_cpus`` CPUs (and torch uses that
    many threads) and ``num_gpus`` GPUs. When groups fail, one ``RuntimeError`` line names each
    (``describe(g, members)``, default "group g") with its cause, followed by ``hint``.
    """
    ray = import_ray()
    if not groups:
        return {}
    reporter = ray.remote(num_cpus=0)(Reporter).remote()
    task = ray.remote(_group_task).options(num_cpus=num_cpus, num_gpus=num_gpus)
    refs = {task.remote(fn, g, members, num_cpus, reporter): g for g, members in groups}
    members_of = dict(groups)
    results: dict[int, Any] = {}
    failures: dict[int, str] = {}
    latest: dict[int, str] = {}
    waiting = list(refs)

    def relay() -> None:
        steps, messages, statuses = ray.get(reporter.drain.remote())
        if progress is not None and steps:
            progress(steps)
        for message in messages:
            log(message)
        for g, line in statuses.items():
            latest.pop(g, None)
            latest[g] = line  # newest last
        if status is not None:
            done = len(results) + len(failures)
            running = [line for g, line in latest.items() if g not in results and g not in failures]
            # One line for a cluster running hundreds of groups: the count and the newest report.
            status(f"{done}/{len(groups)} groups done" + (f"; {running[-1]}" if running else ""))

    try:
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1, timeout=POLL_S)
            for ref in ready:
                g = refs[ref]
                try:
                    results[g] = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    failures[g] = _cause(exc)
                    log(f"group {g}: failed: {failures[g]}")
            relay()
    finally:
        for ref in waiting:  # interrupted: stop the rest
            ray.cancel(ref, force=True)
    if failures:
        name = describe or (lambda g, members: f"group {g}")
        listed = "; ".join(f"{name(g, members_of[g])}: {why}" for g, why in sorted(failures.items()))
        raise RuntimeError(f"{len(failures)} of {len(groups)} {what} failed on Ray: {listed}."
                           + (f" {hint}" if hint else ""))
    return results


class Reporter:
    """A Ray actor that gathers the tasks' step counts, status lines and messages for the driver."""

    def __init__(self) -> None:
        self.steps = 0
        self.messages: list[str] = []
        self.statuses: dict[int, str] = {}

    def report(self, group: int, steps: int, status: str | None, messages: list[str]) -> None:
        self.steps += steps
        self.messages.extend(messages)
        if status is not None:
            self.statuses[group] = status

    def drain(self) -> tuple[int, list[str], dict[int, str]]:
        out = (self.steps, self.messages, self.statuses)
        self.steps, self.messages, self.statuses = 0, [], {}
        return out


class _TaskReport:
    """Task side of :class:`Reporter`: batches per-step progress into one actor call a second."""

    def __init__(self, reporter: Any, group: int) -> None:
        self.reporter, self.group = reporter, group
        self.steps, self.status_line, self.messages = 0, None, []
        self.last = time.monotonic()

    def progress(self, n: int) -> None:
        self.steps += n
        if time.monotonic() - self.last >= FLUSH_S:
            self.flush()

    def status(self, line: str) -> None:
        self.status_line = line

    def log(self, message: str) -> None:
        self.messages.append(message)
        self.flush()

    def flush(self, wait: bool = False) -> None:
        ref = self.reporter.report.remote(self.group, self.steps, self.status_line, self.messages)
        self.steps, self.status_line, self.messages = 0, None, []
        self.last = time.monotonic()
        if wait:
            import ray

            ray.get(ref)  # the last report lands before the driver sees the task finish


def _group_task(fn: GroupFn, g: int, members: list[int], num_cpus: int, reporter: Any) -> Any:
    """One group on a Ray worker, reporting to the driver."""
    import torch

    torch.set_num_threads(num_cpus)  # the CPUs this task asked Ray for
    report = _TaskReport(reporter, g)
    try:
        return fn(g, members, progress=report.progress, log=report.log, status=report.status)
    finally:
        report.flush(wait=True)


def _cause(exc: BaseException) -> str:
    """The worker's own exception, in one line, for a Ray error (a task error wraps it)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {first_line(cause)}"
    return f"{type(exc).__name__}: {first_line(exc)}"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
