"""Build backends: frames/s of `degrade build` under joblib's Dask backend vs loky.

Issue 8 ("scaling: ... Dask backend ≥ 0.9× loky"). One invocation runs, interleaved and
repeated (medians reported; the machine is shared and noisy), the same build three ways,
each in its own subprocess, with the same 2 workers:

- ``loky``: ``python -m degrade build --ops blur,jpeg --steps 50 --size 256 --limit 256
  --shard-size 16 --workers 2 --backend loky --out DIR --quiet`` (the default backend);
- ``dask local``: the same with ``--backend dask``: the command starts (and stops) its own
  ``LocalCluster`` of 2 single-threaded worker processes, inside its build time;
- ``dask scheduler``: the same with ``--backend dask --scheduler tcp://127.0.0.1:PORT``,
  against a ``LocalCluster`` (2 worker processes, 1 thread each, 127.0.0.1, no dashboard)
  that this benchmark starts in a separate process before any timing and keeps for all
  rounds: the realistic cluster case, a cluster already running. Its workers import
  degrade's modules on their first task (round 1) and keep them afterwards, as a running
  cluster does.

"frames/s" is frames (samples × (steps + 1), from the build's manifest) over the build's own
time (``timings.seconds`` in its manifest); "wall frames/s" over the whole command incl.
interpreter start and imports; "frames/CPU-s" over the CPU time of the command, its worker
processes and, for ``dask scheduler``, the running cluster's processes meanwhile. "others'
CPU %" says how busy the rest of the machine was; the load average is printed before and
after. Every run's shard sha256s (manifest ``shards``) are compared with
the first loky run's: the backends must write the same bytes.

    python benchmarks/bench_backends.py                      # full: 256 px, 256 samples, 2 rounds
    python benchmarks/bench_backends.py --size 64 --limit 16 --shard-size 4 --rounds 1 --steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, cpu_count, machine_note, median, run_child, spread, table

OPS = "blur,jpeg"
WORKERS = 2
THIS = str(Path(__file__).resolve())
VARIANTS = ("loky", "dask local", "dask scheduler")


# ---------------------------------------------------------------------------- the cluster


def child_cluster() -> None:
    """Run a 2-worker LocalCluster; print its address as JSON; stop when stdin closes."""
    from dask.distributed import Client, LocalCluster

    # SIGTERM as well as Ctrl-C closes the cluster (and its worker processes) cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    t0 = time.perf_counter()
    # No dashboard; the scheduler's remaining HTTP server (health routes) on a free port:
    # left at its default 8787, it would push the build's own LocalCluster (variant "dask
    # local") off 8787 with a "Port 8787 is already in use" warning.
    cluster = LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None,
                           scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    try:
        with Client(cluster) as client:
            client.wait_for_workers(WORKERS, timeout=120)
        print(json.dumps({"address": cluster.scheduler_address,
                          "start_s": time.perf_counter() - t0}), flush=True)
        sys.stdin.read()  # until the benchmark closes our stdin (or exits)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.close()


class Cluster:
    """The running cluster: a :func:`child_cluster` process, its address and its CPU time."""

    def __init__(self, tmp: str) -> None:
        self.log = open(os.path.join(tmp, "cluster.log"), "w+")  # closed in stop()
        self.proc = subprocess.Popen([sys.executable, THIS, "--child", "cluster"], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.strip():
            self.stop()
            self.log.seek(0)
            raise RuntimeError(f"the Dask cluster did not start:\n{self.log.read()[-3000:]}")
        info = json.loads(line)
        self.address: str = info["address"]
        self.start_s: float = info["start_s"]

    def cpu(self) -> float:
        """User + system CPU seconds of the cluster's processes so far (scheduler, nannies,
        workers)."""
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:  # a process that ended meanwhile
                pass
        return total

    def stop(self) -> None:
        """Close stdin (the child closes its cluster), then terminate, then kill what is left."""
        import psutil

        try:
            left = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            left = []
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # The workers it started, by pid, if closing the cluster left any behind.
        _, alive = psutil.wait_procs(left, timeout=5)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
        if self.proc.stdout:
            self.proc.stdout.close()
        self.log.close()


# ---------------------------------------------------------------------------- runs


def _command(variant: str, a: argparse.Namespace, address: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "degrade", "build", "--ops", OPS, "--steps", str(a.steps),
           "--size", str(a.size), "--limit", str(a.limit), "--shard-size", str(a.shard_size),
           "--workers", str(WORKERS), "--quiet"]
    if variant == "loky":
        return [*cmd, "--backend", "loky"]
    if variant == "dask local":
        return [*cmd, "--backend", "dask"]
    assert address is not None
    return [*cmd, "--backend", "dask", "--scheduler", address]


def _run(variant: str, cmd: list[str], tmp: str, cluster: Cluster | None) -> dict[str, Any]:
    out = tempfile.mkdtemp(prefix="run-", dir=tmp)
    try:
        c0 = cluster.cpu() if cluster else 0.0
        wall, data, stderr = run_child([*cmd, "--out", out])
        extra = (cluster.cpu() - c0) if cluster else 0.0
        m = json.loads((Path(out) / "manifest.json").read_text())
        frames = m["samples"] * (m["steps"] + 1)
        # The running cluster's workers did the work: their CPU is the build's, not others'.
        others = max(0.0, data["others"] - extra / (wall * cpu_count()))
        return {"wall": wall, "seconds": m["timings"]["seconds"], "frames": frames,
                "cpu": data["cpu"] + extra, "backend": m["timings"]["backend"], "others": others,
                "sha256": [(s["name"], s["sha256"]) for s in m["shards"]],
                "stderr": [ln for ln in stderr.splitlines() if ln.strip()]}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def bench(a: argparse.Namespace, tmp: str) -> None:
    load0 = os.getloadavg()
    print(f"machine: {machine_note()}")
    print(f"load average before (1, 5, 15 min): {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
    print(f"\n## {a.limit} samples × {a.steps + 1} frames, {a.size} px, shards of {a.shard_size}, "
          f"{WORKERS} workers, {a.rounds} rounds", flush=True)

    t0 = time.perf_counter()
    cluster = Cluster(tmp)
    try:
        print(f"running cluster: {cluster.address} (LocalCluster, {WORKERS} processes × 1 thread;"
              f" up in {cluster.start_s:.1f} s, {time.perf_counter() - t0:.1f} s incl. its "
              "interpreter)", flush=True)
        cmds = {v: _command(v, a, cluster.address) for v in VARIANTS}
        res: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
        for r in range(a.rounds):
            order = list(VARIANTS[r % 3:] + VARIANTS[: r % 3])
            for v in order:
                d = _run(v, cmds[v], tmp, cluster if v == "dask scheduler" else None)
                res[v].append(d)
                print(f"  round {r + 1} {v:15s} {d['frames'] / d['seconds']:8.0f} frames/s  "
                      f"(build {d['seconds']:.2f} s, wall {d['wall']:.2f} s, cpu {d['cpu']:.1f} s, "
                      f"others {100 * d['others']:.0f}%)", flush=True)
    finally:
        cluster.stop()
    load1 = os.getloadavg()

    def col(v: str, key: str) -> list[float]:
        if key == "fps":
            return [d["frames"] / d["seconds"] for d in res[v]]
        if key == "wall_fps":
            return [d["frames"] / d["wall"] for d in res[v]]
        if key == "cpu_fps":
            return [d["frames"] / d["cpu"] for d in res[v]]
        return [d[key] for d in res[v]]

    rows = [[v, f"{median(col(v, 'fps')):,.0f}", spread(col(v, "fps")),
             f"{median(col(v, 'wall_fps')):,.0f}", spread(col(v, "wall_fps")),
             f"{median(col(v, 'cpu_fps')):,.0f}",
             f"{median(col(v, 'seconds')):.2f}", f"{median(col(v, 'wall')):.2f}",
             f"{100 * median(col(v, 'others')):.0f}"] for v in VARIANTS]
    print()
    print(table(rows, ["variant", "frames/s", "range", "wall frames/s", "wall range",
                       "frames/CPU-s", "build s", "wall s", "others' CPU %"]))

    # Correctness: every run's shards against the first loky run's.
    ref = res["loky"][0]["sha256"]
    bad = [f"{v} round {i + 1}" for v in VARIANTS for i, d in enumerate(res[v])
           if d["sha256"] != ref]
    backends = {v: sorted({d["backend"] for d in res[v]}) for v in VARIANTS}
    print(f"\nshard sha256s ({len(ref)} shards × {sum(len(x) for x in res.values())} runs): "
          + ("all identical" if not bad else f"DIFFER in {', '.join(bad)}"))
    print("backends recorded in the manifests: "
          + ", ".join(f"{v}: {'/'.join(b)}" for v, b in backends.items()))

    print("\nratios (medians; build time, [wall]):")
    for v in ("dask local", "dask scheduler"):
        r = median(col(v, "fps")) / median(col("loky", "fps"))
        rw = median(col(v, "wall_fps")) / median(col("loky", "wall_fps"))
        print(f"  {v + ' / loky  (frames/s)':40s} {r:5.2f}×  [{rw:5.2f}×]  target ≥ 0.9×")

    warned = {v: sorted({ln for d in res[v] for ln in d["stderr"]}) for v in VARIANTS}
    if any(warned.values()):
        print("\nstderr of the builds (distinct lines, first 5 per variant):")
        for v, lines in warned.items():
            for ln in lines[:5]:
                print(f"  {v}: {ln[:200]}")
            if len(lines) > 5:
                print(f"  {v}: ... {len(lines) - 5} more")
    print(f"\nload average after (1, 5, 15 min): {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    if bad:
        sys.exit(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--size", type=int, default=256, help="--size of the builds (px)")
    ap.add_argument("--limit", type=int, default=256, help="samples per build")
    ap.add_argument("--shard-size", type=int, default=16, help="samples per shard")
    ap.add_argument("--steps", type=int, default=50, help="steps T")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    ap.add_argument("--tmp", default=None, help="scratch folder (None: the system temp)")
    ap.add_argument("--child", choices=["cluster"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child == "cluster":
        child_cluster()
        return
    # SIGTERM unwinds like Ctrl-C: the finally blocks stop the cluster and remove the files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = tempfile.mkdtemp(prefix="degrade-bench-", dir=a.tmp)
    try:
        bench(a, tmp)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
