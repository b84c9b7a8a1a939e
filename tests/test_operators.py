"""chartproof.operators.LocalController with a real process standing in for a controller (a Python HTTP
server: a controller is a process that serves a health endpoint): it is up when ready says so, its log is
kept, it stops on stop(), and it never outlives its owner, even one killed with SIGKILL. Also the fake
provider block that points a SecretStore at ESO's fake provider."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chartproof.operators import (
    ControllerError,
    LocalController,
    fake_provider,
    free_port,
    group_alive,
    http_ok,
)


def server(tmp_path: Path, port: int, **kwargs) -> LocalController:
    return LocalController(
        name="stand-in", binary=Path(sys.executable), args=["-u", "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        log_path=tmp_path / "stand-in.log", ready=lambda c: http_ok(f"http://127.0.0.1:{port}/"), **kwargs)


def gone_within(controller: LocalController, seconds: float) -> bool:
    """Whether the controller's whole process group (watchdog and binary; zombies do not count) ends in time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        controller._reap()
        if not group_alive(controller.pid):
            return True
        time.sleep(0.1)
    return False


def test_started_when_ready_logged_and_stopped(tmp_path):
    port = free_port()
    controller = server(tmp_path, port).start(timeout=30)
    try:
        assert controller.alive and http_ok(f"http://127.0.0.1:{port}/"), "ready() said up, so it must serve"
        assert "http.server" in controller.log_text(), "the log starts with the command line"
    finally:
        controller.stop()
    assert not controller.alive and not http_ok(f"http://127.0.0.1:{port}/"), "stop() must end the process"


def test_exit_while_starting_fails_at_once_with_the_log_tail(tmp_path):
    controller = LocalController(name="broken", binary=Path(sys.executable),
                                 args=["-c", "import sys; print('bad flag --nope'); sys.exit(3)"],
                                 log_path=tmp_path / "broken.log", ready=lambda c: False)
    started = time.monotonic()
    with pytest.raises(ControllerError) as err:
        controller.start(timeout=60)
    assert time.monotonic() - started < 20, "an exited controller is not waited out"
    assert "exited while starting" in err.value.message and "bad flag --nope" in err.value.message


def test_not_ready_in_time_is_stopped_and_reported(tmp_path):
    controller = LocalController(name="slow", binary=Path(sys.executable), args=["-c", "import time; time.sleep(60)"],
                                 log_path=tmp_path / "slow.log", ready=lambda c: False)
    with pytest.raises(ControllerError, match="not ready within 2s"):
        controller.start(timeout=2)
    assert controller.pid is None, "a controller that did not come up is stopped"


def test_never_outlives_its_owner_even_when_the_owner_is_killed(tmp_path):
    """The owner (the run's controller process) is SIGKILLed: no teardown runs, and the controller stops
    within seconds all the same (its watchdog sees the owner go)."""
    port = free_port()
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    controller = server(tmp_path, port, owner_pid=owner.pid).start(timeout=30)
    state = controller.state()
    try:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        assert gone_within(controller, 10), "the controller outlived its owner by more than 10 s"
        assert not http_ok(f"http://127.0.0.1:{port}/")
        assert "owner process" in controller.log_text(), "the watchdog says why it stopped the controller"
    finally:
        LocalController.attach(state).stop()


def test_attach_from_another_process_can_stop_it(tmp_path):
    port = free_port()
    controller = server(tmp_path, port).start(timeout=30)
    state = json.loads(json.dumps(controller.state()))  # as another worker reads it from the run's folder
    other = LocalController.attach(state)
    assert other.alive
    pid = other.pid
    other.stop()
    assert not controller.alive and not group_alive(pid), "stopped through the attached handle"


def test_fake_provider_holds_every_remote_ref():
    refs = [{"key": "prod/db", "property": "url"}, {"key": "prod/s3", "property": "id"},
            {"key": "prod/s3", "property": "secret"}, {"key": "prod/cookies"}]
    data = {d["key"]: d["value"] for d in fake_provider(refs)["fake"]["data"]}
    assert data["prod/cookies"] == "fake:prod/cookies", "a remoteRef without property reads the plain text"
    assert json.loads(data["prod/s3"]) == {"id": "fake:prod/s3#id", "secret": "fake:prod/s3#secret"}
    assert json.loads(data["prod/db"]) == {"url": "fake:prod/db#url"}
    with pytest.raises(ValueError, match="both as plain text and by property"):
        fake_provider([{"key": "k"}, {"key": "k", "property": "p"}])
