"""Local service processes: spawn in their own session, watch startup, stop the whole group.

A child is started with ``posix_spawn`` in a new session, so its pid is also its process-group
id: stopping signals the group and leaves no grandchild behind. Attached children (the default)
are registered for an ``atexit`` sweep; detached ones (``services up``) outlive this process and
are found again from the pid and its start time, recorded in a state file: a pid that was
reused by another program has another start time and is never signalled.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from fraudstream.errors import ServiceError

__all__ = ["LocalProcess", "free_ports", "log_excerpt", "write_private"]

logger = logging.getLogger(__name__)

_POLL_S = 0.1
_ATTACHED: set[LocalProcess] = set()


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Return ``count`` distinct TCP ports that were free on ``host`` a moment ago.

    All sockets stay bound until every port is chosen, so the ports differ from each other;
    another program may still take one before the service binds it (the service then dies and
    the caller reports its log).
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def log_excerpt(path: Path, lines: int = 12) -> str:
    """Return the last ``lines`` meaningful lines of a log, without Java stack frames."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
    kept = [
        line
        for line in text.splitlines()
        if line.strip() and not line.startswith(("\tat ", "\t... ", "    at "))
    ]
    return "\n".join(kept[-lines:]) if kept else "(log is empty)"


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by this user only (mode 0600, also if it existed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return path


def run_to_completion(
    name: str, argv: Sequence[str], env: Mapping[str, str], log_file: Path, timeout_s: float
) -> None:
    """Run a one-shot command (a storage format, a download) with its output in ``log_file``.

    Raises:
        ServiceError: the command failed, timed out or could not be started.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("wb") as out:
        try:
            result = subprocess.run(
                list(argv),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            msg = f"{name} did not finish within {timeout_s:.0f} s; log {log_file}"
            raise ServiceError(msg) from exc
        except OSError as exc:
            raise ServiceError(f"{name} could not be started ({argv[0]}): {exc}") from exc
    if result.returncode != 0:
        msg = (
            f"{name} failed with exit code {result.returncode}; log {log_file}, last lines:\n"
            f"{log_excerpt(log_file)}"
        )
        raise ServiceError(msg)


class LocalProcess:
    """A service process identified by its pid and its start time (``started``)."""

    __slots__ = ("log_file", "name", "pid", "started")

    def __init__(self, name: str, pid: int, started: str, log_file: Path) -> None:
        self.name = name
        self.pid = pid
        self.started = started
        self.log_file = log_file

    def __repr__(self) -> str:
        return f"LocalProcess(name={self.name!r}, pid={self.pid})"

    @classmethod
    def spawn(
        cls,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_file: Path,
        *,
        detached: bool = False,
    ) -> LocalProcess:
        """Start ``argv`` in a new session with stdout and stderr appended to ``log_file``.

        Args:
            name: what the process is, for messages ("kafka", "redis").
            argv: the command; ``argv[0]`` must be a path to an executable.
            env: the child's whole environment.
            log_file: where its output goes.
            detached: if false, an ``atexit`` hook stops the process when Python exits.
        """
        log_file.parent.mkdir(parents=True, exist_ok=True)
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log_file), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ]
        try:
            pid = os.posix_spawn(argv[0], list(argv), dict(env), file_actions=actions, setsid=True)
        except OSError as exc:
            raise ServiceError(f"{name} could not be started ({argv[0]}): {exc}") from exc
        # The start time does not change at exec, so reading it right away is safe.
        process = cls(name, pid, _start_time(pid) or "", log_file)
        if not detached:
            _ATTACHED.add(process)
        logger.debug("spawned name=%s pid=%d log=%s", name, pid, log_file)
        return process

    def is_running(self) -> bool:
        """Whether the process is alive (not exited, not a zombie) and still ours."""
        if _reap(self.pid):
            return False
        return _start_time(self.pid) == self.started

    def wait_ready(self, probe: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll ``probe`` until it answers true; fail fast if the process dies meanwhile.

        Raises:
            ServiceError: the process exited, or ``probe`` stayed false for ``timeout_s``;
                the message names the log file and quotes its last lines.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.is_running():
                _ATTACHED.discard(self)
                msg = (
                    f"{self.name} exited during startup ({what}); log {self.log_file}, "
                    f"last lines:\n{log_excerpt(self.log_file)}"
                )
                raise ServiceError(msg)
            if probe():
                return
            if time.monotonic() >= deadline:
                self.stop()
                msg = (
                    f"{self.name} was not ready within {timeout_s:.0f} s ({what}); "
                    f"log {self.log_file}, last lines:\n{log_excerpt(self.log_file)}"
                )
                raise ServiceError(msg)
            time.sleep(_POLL_S)

    def stop(self, timeout_s: float = 15.0) -> bool:
        """Terminate the process group, wait, then kill it; return whether it had been running."""
        _ATTACHED.discard(self)
        if not self.is_running():
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGTERM)
        if not self._wait_gone(timeout_s):
            logger.warning("kill name=%s pid=%d after=%.0fs", self.name, self.pid, timeout_s)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            self._wait_gone(5.0)
        logger.debug("stopped name=%s pid=%d", self.name, self.pid)
        return True

    def _wait_gone(self, timeout_s: float) -> bool:
        # is_running, not a bare pid check: a pid reused meanwhile must never look like ours.
        deadline = time.monotonic() + timeout_s
        while self.is_running():
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)
        return True


def _reap(pid: int) -> bool:
    """Return true if ``pid`` has exited; reaps it when it is our child."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: ask the kernel below
    else:
        if done == pid:
            return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    # The state follows the command name, which is in parentheses and may contain spaces.
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _start_time(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, or ``ps`` time), or None if it is gone."""
    if Path("/proc/self/stat").exists():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            return None
        fields = stat.rpartition(")")[2].split()
        return fields[19] if len(fields) > 19 else None  # field 22 of proc(5): starttime
    try:  # no procfs (macOS): ask ps
        out = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, check=False, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.decode(errors="replace").strip() or None


@atexit.register
def _stop_attached() -> None:
    for process in list(_ATTACHED):
        process.stop(timeout_s=5.0)
