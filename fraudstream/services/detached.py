"""``fraudstream services up|down|status``: services that outlive the command that started them.

``up`` resolves each service like :func:`~fraudstream.services.running_services`, starts what
is needed detached (local processes in their own session, or labelled Docker containers) and
records pids, container ids, ports and directories in ``<state_dir>/services.json``. ``down``
stops exactly what that file names; ``status`` reports whether each is still running.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from fraudstream.errors import ServiceError
from fraudstream.services.containers import (
    container_running,
    remove_container,
    start_kafka_container,
    start_redis_container,
)
from fraudstream.services.endpoints import (
    KAFKA_BOOTSTRAP_ENV,
    REDIS_URL_ENV,
    Origin,
    ServiceEndpoints,
)
from fraudstream.services.kafka_jars import default_cache_dir
from fraudstream.services.local_kafka import start_local_kafka
from fraudstream.services.local_redis import start_local_redis
from fraudstream.services.probe import tcp_open
from fraudstream.services.process import LocalProcess
from fraudstream.services.resolve import (
    UNKNOWN,
    check_env_kafka,
    check_env_redis,
    plan_services,
)

__all__ = ["ServiceState", "ServicesStatus", "services_down", "services_status", "services_up"]

logger = logging.getLogger(__name__)

STATE_FILE = "services.json"
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class ServiceState:
    """One recorded service: where it came from, how to find it, whether it still runs."""

    name: str
    origin: Origin
    address: str
    version: str
    running: bool
    pid: int | None = None
    container_id: str | None = None
    log_file: str | None = None

    def __str__(self) -> str:
        state = "running" if self.running else "stopped"
        where = f"pid {self.pid}" if self.pid else (self.container_id or "")[:12]
        parts = [f"{self.name:<6}", state, self.origin, self.address, self.version, where]
        if self.log_file:
            parts.append(f"log {self.log_file}")
        return "  ".join(part for part in parts if part)


@dataclass(frozen=True, slots=True)
class ServicesStatus:
    """What ``services up`` recorded in a state directory, checked against reality."""

    state_dir: Path
    endpoints: ServiceEndpoints | None
    services: tuple[ServiceState, ...]

    @property
    def all_running(self) -> bool:
        """True when services are recorded and every one of them runs."""
        return bool(self.services) and all(s.running for s in self.services)

    def __str__(self) -> str:
        if not self.services:
            return f"no services recorded in {self.state_dir}"
        return "\n".join(str(s) for s in self.services)


def services_up(
    env: Mapping[str, str],
    state_dir: Path,
    *,
    cache_dir: Path | None = None,
    redis_aof: bool = False,
) -> ServiceEndpoints:
    """Start (or find already running) Kafka and Redis that keep running after this process.

    Data and logs of local processes live under ``state_dir/kafka`` and ``state_dir/redis``.
    If the state file names services that all still run, they are returned as they are; a
    stale state file is cleaned up first.

    Raises:
        ServiceError: a service could not be started or reached; nothing is left running.
    """
    state_dir = state_dir.resolve()
    current = services_status(state_dir, env)
    if current.all_running and current.endpoints is not None:
        logger.info("services already up state_dir=%s", state_dir)
        return current.endpoints
    if current.services:
        services_down(state_dir, env)
    state_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_services(env)
    records: dict[str, dict[str, Any]] = {}
    with ExitStack() as undo:
        if plan.redis == "env":
            redis_url = env[REDIS_URL_ENV]
            redis_version = check_env_redis(redis_url)
            records["redis"] = {"origin": "env"}
        elif plan.redis == "container":
            rbox = start_redis_container(env, aof=redis_aof, detached=True)
            undo.callback(rbox.stop)
            redis_url, redis_version = rbox.address, rbox.version
            records["redis"] = {"origin": "container", "container_id": rbox.container_id}
        else:
            redis = start_local_redis(state_dir / "redis", env, aof=redis_aof, detached=True)
            undo.callback(redis.stop)
            redis_url, redis_version = redis.url, redis.version
            records["redis"] = _process_record(redis.process, redis.work_dir)

        if plan.kafka == "env":
            bootstrap, kafka_version = env[KAFKA_BOOTSTRAP_ENV], UNKNOWN
            check_env_kafka(bootstrap)
            records["kafka"] = {"origin": "env"}
        elif plan.kafka == "container":
            kbox = start_kafka_container(env, detached=True)
            undo.callback(kbox.stop)
            bootstrap, kafka_version = kbox.address, kbox.version
            records["kafka"] = {"origin": "container", "container_id": kbox.container_id}
        else:
            cache = cache_dir if cache_dir is not None else default_cache_dir(env)
            kafka = start_local_kafka(state_dir / "kafka", env, cache_dir=cache, detached=True)
            undo.callback(kafka.stop)
            bootstrap, kafka_version = kafka.bootstrap, kafka.version
            records["kafka"] = _process_record(kafka.process, kafka.work_dir)

        endpoints = ServiceEndpoints(
            bootstrap, redis_url, kafka_version, redis_version, plan.kafka, plan.redis
        )
        state = {"format": _FORMAT, "endpoints": asdict(endpoints), "services": records}
        tmp = state_dir / f"{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        tmp.replace(state_dir / STATE_FILE)
        undo.pop_all()  # recorded: from now on `down` owns them
    logger.info("services up %s state=%s", endpoints.describe(), state_dir / STATE_FILE)
    return endpoints


def services_down(state_dir: Path, env: Mapping[str, str] | None = None) -> list[str]:
    """Stop what ``services up`` recorded in ``state_dir``; return one line per service.

    Local processes are stopped (SIGTERM to the process group, SIGKILL after a timeout) and
    their directories removed; containers are removed; env-provided services are left alone.
    A pid is only signalled if it still has the recorded start time, so a pid reused by
    another program is never touched.
    """
    state_dir = state_dir.resolve()
    state = _read_state(state_dir)
    if state is None:
        return []
    lines: list[str] = []
    for name, record in state["services"].items():
        origin = record["origin"]
        if origin == "local":
            process = _process_from(name, record)
            was_running = process.stop()
            shutil.rmtree(record["work_dir"], ignore_errors=True)
            verb = "stopped" if was_running else "cleaned up (already stopped)"
            lines.append(f"{verb} {name} (local, pid {process.pid})")
        elif origin == "container":
            existed = remove_container(env or {}, record["container_id"])
            verb = "removed" if existed else "forgot (already gone)"
            lines.append(f"{verb} {name} container {record['container_id'][:12]}")
        else:
            lines.append(f"left {name} alone (from environment)")
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    for line in lines:
        logger.info("services down: %s", line)
    return lines


def services_status(state_dir: Path, env: Mapping[str, str] | None = None) -> ServicesStatus:
    """Report what ``services up`` recorded in ``state_dir`` and whether each still runs."""
    state_dir = state_dir.resolve()
    state = _read_state(state_dir)
    if state is None:
        return ServicesStatus(state_dir, None, ())
    endpoints = ServiceEndpoints(**state["endpoints"])
    versions = {"kafka": endpoints.kafka_version, "redis": endpoints.redis_version}
    addresses = {"kafka": endpoints.kafka_bootstrap, "redis": endpoints.redis_url}
    services: list[ServiceState] = []
    for name, record in state["services"].items():
        origin = cast(Origin, record["origin"])
        if origin == "local":
            process = _process_from(name, record)
            services.append(ServiceState(
                name, origin, addresses[name], versions[name], process.is_running(),
                pid=process.pid, log_file=str(process.log_file),
            ))  # fmt: skip
        elif origin == "container":
            cid = record["container_id"]
            running = container_running(env or {}, cid)
            services.append(ServiceState(
                name, origin, addresses[name], versions[name], running, container_id=cid
            ))  # fmt: skip
        else:
            running = _env_reachable(addresses[name])
            services.append(ServiceState(name, origin, addresses[name], versions[name], running))
    return ServicesStatus(state_dir, endpoints, tuple(services))


def _process_record(process: LocalProcess, work_dir: Path) -> dict[str, Any]:
    return {
        "origin": "local",
        "pid": process.pid,
        "started": process.started,
        "log_file": str(process.log_file),
        "work_dir": str(work_dir.resolve()),
    }


def _process_from(name: str, record: Mapping[str, Any]) -> LocalProcess:
    return LocalProcess(name, int(record["pid"]), str(record["started"]), Path(record["log_file"]))


def _env_reachable(address: str) -> bool:
    """A cheap TCP check of the first host:port in a bootstrap list or Redis URL."""
    rest = address.split("://", 1)[-1].split("/", 1)[0].split(",", 1)[0].rpartition("@")[2]
    host, _, port = rest.rpartition(":")
    return bool(host) and port.isdigit() and tcp_open(host.strip("[]"), int(port))


def _read_state(state_dir: Path) -> dict[str, Any] | None:
    path = state_dir / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ServiceError(f"unreadable services state {path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise ServiceError(f"unexpected services state format in {path}; remove it by hand")
    return state
