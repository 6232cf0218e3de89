"""degrade.parallel: this process and loky workers share the tasks; a worker's error stops the run."""

from __future__ import annotations

import os
import time

import pytest

from degrade.parallel import _executor, run_tasks, start_workers


def _ready() -> bool:
    return True


def _slow_task(task: tuple[int, int, bool], progress: object) -> dict:
    index, parent, fail_in_worker = task
    if fail_in_worker and os.getpid() != parent:
        raise ValueError(f"task {index} failed in a worker")
    time.sleep(0.15)
    if progress is not None:
        progress.put(1)
    return {"index": index, "pid": os.getpid()}


class _Bar:
    def __init__(self) -> None:
        self.n = 0

    def update(self, n: int) -> None:
        self.n += n


def _warm_worker() -> None:
    start_workers(1, _ready)
    _executor(1).submit(_ready).result()  # the worker is up before the tasks start


def test_this_process_and_a_worker_share_the_tasks():
    _warm_worker()
    bar = _Bar()
    tasks = [(i, os.getpid(), False) for i in range(8)]
    recs = list(run_tasks(_slow_task, tasks, 2, bar, warm=_ready))
    assert sorted(r["index"] for r in recs) == list(range(8))
    pids = {r["pid"] for r in recs}
    assert os.getpid() in pids and len(pids) == 2  # both built tasks
    assert bar.n == 8  # the worker's progress reached this process's bar


def test_an_error_in_a_worker_is_raised_here():
    _warm_worker()
    tasks = [(i, os.getpid(), True) for i in range(8)]
    with pytest.raises(ValueError, match=r"task \d failed in a worker"):
        list(run_tasks(_slow_task, tasks, 2, None, warm=_ready))
    # The executor was shut down mid-run; the next run gets a fresh one and works.
    recs = list(run_tasks(_slow_task, [(i, os.getpid(), False) for i in range(3)], 2, None, warm=_ready))
    assert sorted(r["index"] for r in recs) == [0, 1, 2]


def test_one_worker_runs_everything_here_in_order():
    recs = list(run_tasks(_slow_task, [(i, os.getpid(), True) for i in range(3)], 1, None))
    assert [r["index"] for r in recs] == [0, 1, 2] and {r["pid"] for r in recs} == {os.getpid()}
