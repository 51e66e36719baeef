"""The supervisor's policy with fake parts and a fake clock: backoff, crash loop, stop()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ece.settings import Settings
from ops.stack.base import Part, PartFailed
from ops.stack.supervision import (
    CRASH_LIMIT,
    CrashLoop,
    Supervisor,
    exit_reason,
    read_state,
    restart_delay,
)
from ops.stack.supervisor import Platform


class FakePart(Part):
    name = "fake"

    def __init__(self, settings: Settings, name: str = "fake",
                 restart_with: tuple[str, ...] = ()) -> None:
        super().__init__(settings)
        self.name = name
        self.restart_with = restart_with
        self.running = True
        self.starts = 0
        self.fail_next_start = False

    def start(self) -> None:
        self.starts += 1
        if self.fail_next_start:
            self.fail_next_start = False
            raise PartFailed(self.name, "exited with code 3 before ready")
        self.running = True

    def stop(self) -> None:
        self.running = False
        self.stopped_on_purpose = True

    def health(self) -> tuple[bool, str]:
        return self.running, ""

    def died(self) -> bool:
        return not self.running and not getattr(self, "stopped_on_purpose", False)

    def crash(self) -> None:
        self.running = False
        self.stopped_on_purpose = False

    def start_again(self) -> None:  # what a restart does after stop()
        self.stopped_on_purpose = False


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _platform(tmp_path: Path, *parts: FakePart) -> Platform:
    platform = Platform(Settings(data_dir=tmp_path))
    for part in parts:
        platform.parts[part.name] = part
        platform.started.append(part)
    return platform


def _supervised(tmp_path: Path, *parts: FakePart) -> tuple[Supervisor, Clock]:
    clock = Clock()
    sup = Supervisor(_platform(tmp_path, *parts), clock=clock)
    sup.begin()
    return sup, clock


def _crash_and_heal(sup: Supervisor, clock: Clock, part: FakePart) -> float:
    """Crash ``part``; return how long the supervisor waited before starting it again."""
    part.crash()
    sup.tick()
    before = part.starts
    waited = 0.0
    while part.starts == before:
        clock.now += 0.25
        waited += 0.25
        part.start_again()
        sup.tick()
        assert waited < 100
    return waited


def test_backoff_schedule_doubles_from_one_second_up_to_thirty() -> None:
    assert [restart_delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_exit_reasons() -> None:
    assert exit_reason(-9) == "killed by SIGKILL"
    assert exit_reason(1) == "exited with code 1"


def test_crash_is_restarted_after_backoff_and_recorded(tmp_path: Path) -> None:
    part = FakePart(Settings(data_dir=tmp_path))
    sup, clock = _supervised(tmp_path, part)
    assert _crash_and_heal(sup, clock, part) == pytest.approx(1.0)
    state = read_state(Settings(data_dir=tmp_path))
    assert state is not None
    assert state["parts"]["fake"]["restarts"] == 1
    assert state["parts"]["fake"]["state"] == "running"
    assert state["parts"]["fake"]["last_exit"] == "process gone"
    # a second crash soon after waits longer
    clock.now += 10
    assert _crash_and_heal(sup, clock, part) == pytest.approx(2.0)


def test_backoff_starts_again_after_a_stable_run(tmp_path: Path) -> None:
    part = FakePart(Settings(data_dir=tmp_path))
    sup, clock = _supervised(tmp_path, part)
    _crash_and_heal(sup, clock, part)
    clock.now += 400  # ran longer than STABLE_AFTER_S
    assert _crash_and_heal(sup, clock, part) == pytest.approx(1.0)


def test_five_crashes_within_five_minutes_stop_with_the_reason(tmp_path: Path) -> None:
    part = FakePart(Settings(data_dir=tmp_path))
    sup, clock = _supervised(tmp_path, part)
    for _ in range(CRASH_LIMIT - 1):
        _crash_and_heal(sup, clock, part)
    part.crash()
    with pytest.raises(CrashLoop, match="fake crashed 5 times within 300s"):
        sup.tick()
    state = json.loads((tmp_path / "ece-up.state.json").read_text())
    assert state["parts"]["fake"]["state"] == "failed"
    assert "crashed 5 times" in state["stopped_reason"]


def test_crashes_spread_over_more_than_five_minutes_never_stop(tmp_path: Path) -> None:
    part = FakePart(Settings(data_dir=tmp_path))
    sup, clock = _supervised(tmp_path, part)
    for _ in range(CRASH_LIMIT * 2):
        _crash_and_heal(sup, clock, part)
        clock.now += 100
    assert sup.records["fake"].restarts == CRASH_LIMIT * 2


def test_a_failed_restart_counts_as_a_crash(tmp_path: Path) -> None:
    part = FakePart(Settings(data_dir=tmp_path))
    sup, clock = _supervised(tmp_path, part)
    part.fail_next_start = True
    part.crash()
    sup.tick()
    clock.now += 1.0
    part.start_again()
    sup.tick()  # the restart fails
    record = sup.records["fake"]
    assert record.state == "restarting" and len(record.crashes) == 2
    assert record.last_exit is not None and "restart failed" in record.last_exit
    clock.now += 2.0
    part.start_again()
    sup.tick()
    assert record.state == "running" and record.restarts == 1


def test_a_deliberately_stopped_part_is_not_restarted(tmp_path: Path) -> None:
    part = FakePart(Settings(data_dir=tmp_path))
    sup, clock = _supervised(tmp_path, part)
    part.stop()
    for _ in range(10):
        clock.now += 5
        sup.tick()
    assert part.starts == 0 and sup.records["fake"].restarts == 0


def test_followers_restart_with_their_leader(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    broker = FakePart(settings, "broker")
    job = FakePart(settings, "flink", restart_with=("broker",))
    sup, clock = _supervised(tmp_path, broker, job)
    _crash_and_heal(sup, clock, broker)
    assert job.starts == 1 and sup.records["flink"].restarts == 1
    assert sup.records["flink"].crashes == []  # not a crash of its own


def test_the_leader_resets_what_followers_derive_before_they_restart(tmp_path: Path) -> None:
    """A restarted (empty) Redis: its after_restart runs first, then the job restarts."""
    settings = Settings(data_dir=tmp_path)
    order: list[str] = []

    class Leader(FakePart):
        def after_restart(self) -> None:
            order.append("leader reset")

    class Job(FakePart):
        def start(self) -> None:
            order.append("job started")
            super().start()

    redis = Leader(settings, "redis")
    job = Job(settings, "flink", restart_with=("broker", "redis"))
    sup, clock = _supervised(tmp_path, redis, job)
    _crash_and_heal(sup, clock, redis)
    assert order == ["leader reset", "job started"]
    assert sup.records["flink"].restarts == 1 and sup.records["redis"].restarts == 1


def test_finish_marks_everything_stopped(tmp_path: Path) -> None:
    part = FakePart(Settings(data_dir=tmp_path))
    sup, _ = _supervised(tmp_path, part)
    sup.finish("stopped (Ctrl-C or ece down)")
    state = read_state(Settings(data_dir=tmp_path))
    assert state is not None and state["supervisor_pid"] is None
    assert state["parts"]["fake"]["state"] == "stopped"
