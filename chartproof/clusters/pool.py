"""The cluster pool of a run: embedded clusters lent one test at a time to the tests that need a cluster of
their own (``exclusive`` tests: HyperPod in ``kube-system``, charts with fixed cluster-scoped names, CRDs),
so that they run side by side instead of queueing for one name lock on the shared cluster.

Every process of the run (the xdist workers, or the one pytest process) shares the pool through
``<run dir>/pool.json``, read and written under the run's ``pool`` file lock. A member is ``starting``
(its first holder is bringing it up), ``held`` (lent to one test), ``free`` (handed back clean, ready for
the next such test) or ``stopping``. Members start lazily, at most ``size`` of them, each under its own
name, recorded before it starts, so that the end of the run, a failure or Ctrl-C stops every one of them;
their cluster records name the run and its controller process, so ``chartproof cluster down --leaked``
still finds any that a killed run left. A member handed back dirty (a release left on it), or whose
holder's process died, is stopped rather than lent again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

from chartproof.clusters.base import Cluster, ClusterProvider, ClusterRecord
from chartproof.clusters.embedded import new_cluster_name
from chartproof.errors import ChartproofError, ClusterError
from chartproof.kube import KubectlError
from chartproof.progress import Progress

STARTING, HELD, FREE, STOPPING = "starting", "held", "free", "stopping"
POLL = 0.25  # seconds between looks at the pool while waiting for a member


# The conformance run waits more than it computes: Kubernetes' namespace controller sits 5 s on every namespace
# a release deletes before it empties it, and installs wait for readiness. Two workers per core keep the cores
# busy through those waits (measured on 2 cores, `pytest suites`: -n 2 111.5 s, -n 3 92.0 s, -n 4 85.3 s).
WORKERS_PER_CORE = 2
MAX_AUTO_WORKERS = 8


def auto_workers(cores: int | None = None) -> int:
    """What ``-n auto`` means in a Chartproof run: two xdist workers per core, at least 2, at most 8."""
    return max(2, min(WORKERS_PER_CORE * (cores or os.cpu_count() or 1), MAX_AUTO_WORKERS))


def pool_size(requested: int | None, workers: int, cores: int | None = None) -> int:
    """How many clusters the pool may hold: ``requested`` when given (0 turns the pool off), else one per
    xdist worker (0 in a run without workers), never more than two per core."""
    if requested is not None:
        return max(0, requested)
    return max(0, min(workers, WORKERS_PER_CORE * (cores or os.cpu_count() or 1)))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _starting_processes(name: str) -> list[int]:
    """Processes still bringing cluster ``name`` up (a ``kwokctl ... --name NAME ... create``), e.g. one
    left running by a worker killed mid-start."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [w.decode(errors="replace") for w in argv if w]
        if words and Path(words[0]).name == "kwokctl" and "create" in words and name in words:
            found.append(int(pid))
    return found


@dataclass
class Member:
    """One cluster of the pool, as ``pool.json`` keeps it."""

    name: str
    state: str
    holder: str = ""                  # the test holding it (pytest node id)
    holder_pid: int = 0               # the process running that test
    record: dict | None = None        # its ClusterRecord, once started
    served: list[str] = field(default_factory=list)  # the tests it was lent to, in order


class ClusterPool:
    """``acquire(test)`` -> a Cluster for that test alone; ``release(cluster, clean=)`` hands it back;
    ``close()`` (the run's controller, at the very end) stops every member."""

    def __init__(self, directory: Path, lock: Callable[[str], AbstractContextManager], provider: ClusterProvider, *,
                 size: int, shape: str | None, owner: str, owner_pid: int):
        self.directory = Path(directory)
        self.lock = lock
        self.provider = provider
        self.size = size
        self.shape = shape
        self.owner = owner          # the run id, written into each member's cluster record
        self.owner_pid = owner_pid  # the run's controller: while it lives the clusters are "in use"

    @property
    def state_file(self) -> Path:
        return self.directory / "pool.json"

    # -- the shared state ------------------------------------------------------------------------------
    def _read(self) -> dict:
        state = json.loads(self.state_file.read_text()) if self.state_file.is_file() else {}
        # members: the pool now; retired: clusters stopped before the end (name and the tests they served)
        # info: Cluster.describe() of the first cluster started (they all have the run's shape), for the report
        return {"members": [], "retired": [], "notes": [], "error": None, "info": None, **state}

    def _write(self, state: dict) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.state_file)

    def _edit(self, change: Callable[[dict, list[Member]], object]):
        """Apply ``change(state, members)`` under the pool lock, save, and return what it returned."""
        with self.lock("pool"):
            state = self._read()
            members = [Member(**m) for m in state["members"]]
            result = change(state, members)
            state["members"] = [asdict(m) for m in members]
            self._write(state)
            return result

    def members(self) -> list[Member]:
        with self.lock("pool"):
            return [Member(**m) for m in self._read()["members"]]

    def lent(self) -> list[dict]:
        """Every cluster the pool has had, stopped ones included: ``{"name", "tests"}`` in order of start."""
        with self.lock("pool"):
            state = self._read()
        return [*state["retired"], *({"name": m["name"], "tests": m["served"]} for m in state["members"])]

    def notes(self) -> list[str]:
        with self.lock("pool"):
            return list(self._read()["notes"])

    def error(self) -> str | None:
        """The one line of the pool's failed start, if one failed."""
        with self.lock("pool"):
            return self._read()["error"]

    def info(self) -> dict | None:
        """``Cluster.describe()`` of the pool's first cluster (every member has the run's shape)."""
        with self.lock("pool"):
            return self._read()["info"]

    # -- lending ---------------------------------------------------------------------------------------
    def acquire(self, test: str, *, timeout: float = 3600) -> Cluster:
        """A cluster of the pool for ``test`` alone: a free member, else a new one while the pool has room,
        else the first member handed back. Raises the start error (ChartproofError) of the pool's first
        failed start to every later caller, as the run's shared cluster does."""
        me = os.getpid()
        orphans: list[str] = []

        def take(state: dict, members: list[Member]):
            if state.get("error"):
                raise ClusterError(f"the cluster pool could not start a cluster: {state['error']}")
            for member in members:
                if member.state in (HELD, STARTING) and member.holder_pid != me and not _alive(member.holder_pid):
                    member.state = STOPPING  # its test's process died: what it left is unknown
                    state["notes"].append(f"pool cluster {member.name} stopped: the process of {member.holder} died")
                    orphans.append(member.name)
            for member in members:
                if member.state == FREE:
                    member.state, member.holder, member.holder_pid = HELD, test, me
                    member.served.append(test)
                    return member
            if sum(m.state != STOPPING for m in members) < self.size:
                member = Member(new_cluster_name(), STARTING, test, me, served=[test])
                members.append(member)
                return member
            return None

        deadline = time.monotonic() + timeout
        announced = False
        with ExitStack() as waiting:
            while True:
                member = self._edit(take)
                for name in orphans:
                    self._stop(name)
                orphans.clear()
                if member is not None:
                    break
                if not announced:  # the first time round: say who waits, then every 30 s
                    announced = True
                    waiting.enter_context(Progress("cluster pool", f"{test} waits for a cluster of the pool "
                                                                   f"({self.size} lent)", every=30))
                if time.monotonic() > deadline:
                    raise ClusterError(f"no cluster of the pool was handed back within {timeout:.0f}s")
                time.sleep(POLL)
        if member.state == HELD:
            return self.provider.attach(ClusterRecord(**member.record))
        return self._start(member.name)

    def _start(self, name: str) -> Cluster:
        try:
            cluster = self.provider.up(name, self.shape, owner=self.owner, keep=False)
        except BaseException as exc:  # the provider removed what it had started; forget the member
            error = exc.one_line() if isinstance(exc, ChartproofError) else None

            def failed(state: dict, members: list[Member]) -> None:
                members[:] = [m for m in members if m.name != name]
                state["error"] = state.get("error") or error
            self._edit(failed)
            raise
        record = cluster.record
        record.owner_pid = self.owner_pid
        record.save()
        try:
            info = cluster.describe()
        except (ChartproofError, KubectlError):  # only the report's summary of the cluster is missing then
            info = None

        def started(state: dict, members: list[Member]) -> None:
            state["info"] = state["info"] or info
            for member in members:
                if member.name == name:
                    member.state, member.record = HELD, asdict(record)
        self._edit(started)
        return cluster

    def release(self, cluster: Cluster, *, clean: bool, why: str = "") -> None:
        """Hand ``cluster`` back: lent again when ``clean``, else stopped (``why`` says what it was left with)."""
        def give_back(state: dict, members: list[Member]) -> bool:
            for member in members:
                if member.name == cluster.name:
                    if clean:
                        member.state, member.holder, member.holder_pid = FREE, "", 0
                        return False
                    member.state = STOPPING
                    state["notes"].append(f"pool cluster {member.name} stopped after {member.holder}: {why or 'not clean'}")
                    return True
            return False

        if self._edit(give_back):
            self._stop(cluster.name)

    def _stop(self, name: str) -> None:
        def forget(state: dict, members: list[Member]) -> None:
            for member in [m for m in members if m.name == name]:
                state["retired"].append({"name": name, "tests": member.served})
                members.remove(member)

        try:
            self.provider.down(name)
        finally:
            self._edit(forget)

    # -- the end of the run ----------------------------------------------------------------------------
    def close(self, *, keep: bool = False, settle: float = 60) -> list[str]:
        """Stop every member (``keep``: leave them up and say how to reach them); returns the report's notes.
        A member still starting is given up to ``settle`` seconds to finish first, so that a start in flight
        (a worker killed while kwokctl was creating it) cannot bring processes up after it was stopped."""
        if not self.state_file.is_file():
            return []
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            members = self.members()
            if not any(_starting_processes(m.name) for m in members if m.state == STARTING):
                break
            time.sleep(POLL)
        members = self.members()
        notes = self.notes()
        lent = self.lent()
        if lent:
            notes.append(f"cluster pool: {len(lent)} embedded cluster(s) lent to {sum(len(c['tests']) for c in lent)} "
                         "test(s): " + ", ".join(f"{c['name']} ({len(c['tests'])})" for c in lent))
        for member in members:
            if keep and member.record:
                notes.append(f"pool cluster {member.name} kept: KUBECONFIG={member.record['kubeconfig']} "
                             f"(remove it with: chartproof cluster down {member.name})")
                continue
            try:
                self._stop(member.name)
            except ChartproofError as err:
                notes.append(f"pool cluster {member.name} could not be stopped: {err.one_line()}")
        return notes
