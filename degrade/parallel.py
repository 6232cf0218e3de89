"""Running a build's shard tasks in parallel: this process plus loky workers, Dask or Ray.

No scheduler of our own: joblib's loky executor on one machine, joblib's Dask and Ray
backends on a cluster. The task function is given (``degrade.build.build_shard``); every
task's result is the same whichever runs it. Kept apart from :mod:`degrade.build`, which
plans, writes the manifest and knows what a shard is.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from degrade.errors import DegradeError

#: A task function: ``fn(task, progress)`` → record; ``progress.put(n)`` moves the bar by n.
TaskFn = Callable[[Any, Any], dict[str, Any]]


def default_workers() -> int:
    """The cores this process may use (the default ``--workers``).

    Examples
    --------
    >>> default_workers() >= 1
    True
    """
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def run_tasks(fn: TaskFn, tasks: Sequence[Any], n_workers: int, bar: Any, *, backend: str = "loky",
              scheduler: str | None = None, units: Callable[[dict[str, Any]], int] | None = None,
              warm: Callable[[], Any] | None = None) -> Iterable[dict[str, Any]]:
    """Run ``fn(task, progress)`` over ``tasks``; yield each record as it is finished.

    With loky and more than one worker this process runs tasks too; a worker takes its first
    task once ``warm()`` (a no-op of the task function's module) has run in it.

    ``bar`` (a tqdm bar or None) moves as the tasks report progress; remote workers (Dask,
    Ray) cannot reach it, so there it moves by ``units(record)`` per finished task. The order
    of the records is the order of finishing.

    Examples
    --------
    >>> def double(task, progress):
    ...     return {"value": 2 * task}
    >>> [r["value"] for r in run_tasks(double, [1, 2], 1, None)]
    [2, 4]
    """
    if not tasks:
        return
    if backend == "dask":
        yield from _run_dask(fn, tasks, n_workers, bar, scheduler, units)
        return
    if backend == "ray":
        yield from _run_ray(fn, tasks, n_workers, bar, scheduler, units)
        return
    if n_workers == 1:
        q = _InlineProgress(bar)
        for t in tasks:
            yield fn(t, q)
        return
    yield from _run_loky(fn, tasks, n_workers, bar, warm)


def _run_loky(fn: TaskFn, tasks: Sequence[Any], n_workers: int, bar: Any,
              warm: Callable[[], Any] | None) -> Iterable[dict[str, Any]]:
    """Run shards in this process and in ``n_workers`` − 1 loky worker processes.

    This process builds shards too: while the workers start (spawn, imports: about half a
    second) it is already working, and no core waits on a process that only collects
    results. One feeder thread per worker hands it the next shard when it finishes one;
    every shard is taken from one list, in plan order, whoever builds it.
    """
    import multiprocessing as mp
    import queue as _queue
    import threading

    todo = list(reversed(tasks))
    lock = threading.Lock()
    stop = threading.Event()
    finished: _queue.Queue[tuple[Any, BaseException | None]] = _queue.Queue()

    handed = [0]  # shards taken by feeders

    def take(feeder: bool = False) -> Any:
        with lock:
            if not todo or stop.is_set():
                return None
            handed[0] += feeder
            return todo.pop()

    manager = mp.Manager()
    executor = _executor(n_workers - 1)
    progress = manager.Queue()

    def pump() -> None:
        while not stop.is_set():
            try:
                n = progress.get(timeout=0.2)
            except _queue.Empty:
                continue
            except (EOFError, OSError):
                return
            if n is None:  # the main thread is done
                return
            if bar is not None:
                bar.update(n)

    def feed() -> None:
        try:
            # A worker takes its first shard only once it has started: a short build is
            # then done here alone instead of waiting on a shard held by a starting worker.
            if warm is not None:
                executor.submit(warm).result()
        except BaseException:
            return  # a worker that cannot start takes nothing: this process builds its shards
        while (task := take(feeder=True)) is not None:
            try:
                finished.put((executor.submit(fn, task, progress).result(), None))
            except BaseException as exc:  # handed to the main thread, which raises it
                finished.put((None, exc))
                stop.set()
                return

    pumper = threading.Thread(target=pump, daemon=True)
    feeders = [threading.Thread(target=feed, daemon=True) for _ in range(n_workers - 1)]
    inline = _InlineProgress(bar)
    ok = False
    try:
        pumper.start()
        for th in feeders:
            th.start()
        got = 0
        while (task := take()) is not None:
            for rec in _drain(finished, block=False):
                got += 1
                yield rec
            yield fn(task, inline)
        # Wait for the shards the workers took; a worker still starting took none.
        while got < handed[0]:
            for rec in _drain(finished, block=True):
                got += 1
                yield rec
        ok = True
    finally:
        stop.set()
        if not ok:
            # A failed shard (or an interrupt) stops the rest now, mid-shard: build() then
            # removes their temporary files.
            executor.shutdown(wait=True, kill_workers=True)
            for th in feeders:
                th.join(timeout=5)
        try:
            progress.put(None)  # wakes the pump
        except (EOFError, OSError):  # the manager died with an interrupt: the pump has stopped
            pass
        pumper.join(timeout=2)
        # Every put() of a finished task has reached the manager: drain what is left.
        while bar is not None:
            try:
                n = progress.get_nowait()
            except (_queue.Empty, EOFError, OSError):
                break
            if n is not None:
                bar.update(n)
        manager.shutdown()


def _executor(n: int) -> Any:
    from joblib.externals.loky import get_reusable_executor

    with warnings.catch_warnings():
        # A previous build's worker may still be starting: loky waits for it, and says so.
        warnings.filterwarnings("ignore", message="Trying to resize an executor", category=UserWarning)
        return get_reusable_executor(max_workers=n)


def start_workers(n: int, warm: Callable[[], Any]) -> None:
    """Start ``n`` loky workers now, in the background, each running ``warm`` (a function of
    the task function's module: unpickling it imports that module), so that they are up by
    the time the tasks are planned (loky reuses them; a run with fewer tasks than workers
    leaves the extra ones idle).

    Examples
    --------
    >>> # degrade.build() starts its workers this way before listing its sources
    """
    executor = _executor(n)
    for _ in range(n):
        executor.submit(warm)


def _drain(finished: Any, *, block: bool) -> Iterable[dict[str, Any]]:
    # The finished shards' records (block: wait for at least one); a worker's error is raised.
    import queue as _queue

    while True:
        try:
            rec, exc = finished.get(timeout=0.1) if block else finished.get_nowait()
        except _queue.Empty:
            return
        block = False
        if exc is not None:
            raise exc
        yield rec


def _per_task_progress(results: Iterable[dict[str, Any]], bar: Any,
                       units: Callable[[dict[str, Any]], int] | None) -> Iterable[dict[str, Any]]:
    # Remote workers cannot reach a local queue: the bar moves one task at a time.
    for rec in results:
        if bar is not None and units is not None:
            bar.update(units(rec))
        yield rec


def _run_dask(fn: TaskFn, tasks: Sequence[Any], n_workers: int, bar: Any, scheduler: str | None,
              units: Callable[[dict[str, Any]], int] | None) -> Iterable[dict[str, Any]]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise DegradeError("--backend dask needs dask.distributed: pip install 'degrade[cluster]'") from None
    from joblib import Parallel, delayed, parallel_config

    cluster = None
    if scheduler is None:
        # A local cluster on this machine's loopback, one single-threaded process per worker.
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None,
                               # None still opens the scheduler's HTTP server on 8787; take any free port.
                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout=30)
        except OSError as exc:
            raise DegradeError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
    try:
        with parallel_config(backend="dask"):
            par = Parallel(n_jobs=-1, return_as="generator_unordered")
            yield from _per_task_progress(par(delayed(fn)(t, None) for t in tasks), bar, units)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _run_ray(fn: TaskFn, tasks: Sequence[Any], n_workers: int, bar: Any, scheduler: str | None,
             units: Callable[[dict[str, Any]], int] | None) -> Iterable[dict[str, Any]]:
    try:
        import ray
        from ray.util.joblib import register_ray
    except ImportError:
        raise DegradeError("--backend ray needs ray: pip install 'degrade[cluster]'") from None
    from joblib import Parallel, delayed, parallel_config

    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if scheduler is None:
            kwargs["num_cpus"] = n_workers
        else:
            kwargs["address"] = scheduler
        ray.init(**kwargs)
        started = True
    register_ray()
    try:
        with parallel_config(backend="ray", n_jobs=n_workers if scheduler is None else -1):
            # Ray's joblib backend returns a list only (no generators).
            par = Parallel(return_as="list")
            yield from _per_task_progress(par(delayed(fn)(t, None) for t in tasks), bar, units)
    finally:
        if started:
            ray.shutdown()


class _InlineProgress:
    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def put(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)



#: glibc mallopt parameters, and the values its dynamic thresholds reach on 64-bit.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_MAX = 32 * 2**20
_malloc_tuned = False


def tune_malloc_in_dask_worker() -> bool:
    """Undo, in a Dask worker, the malloc setting its nanny starts it with.

    Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` for every worker; setting it turns off
    glibc's dynamic mmap threshold, so every frame-sized array (a 256 px float frame is
    768 KiB) becomes an mmap/munmap pair with fresh page faults: a build ran 2.8× slower
    (user 10 s + system 12 s instead of 8 s). In such a worker (and only there) the two
    thresholds are set to where glibc's dynamic ones would settle. Returns whether it did.

    Examples
    --------
    >>> tune_malloc_in_dask_worker()  # not in a Dask worker: nothing to do
    False
    """
    global _malloc_tuned
    if _malloc_tuned or "MALLOC_TRIM_THRESHOLD_" not in os.environ or "distributed" not in sys.modules:
        return False
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False  # not inside a Dask worker: leave the user's setting alone
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_MAX)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_MAX))
    except (OSError, AttributeError):  # not glibc
        return False
    _malloc_tuned = ok
    return ok
