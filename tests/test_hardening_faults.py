"""Hardening: faults (issue 9, "Faults").

- ``kill -9`` of a build at several moments, then the same command again: the dataset is
  byte-identical to an uninterrupted build.
- A full disk (a real 512 KB tmpfs when this machine lets us mount one, and ENOSPC injected
  in-process everywhere): one clear line, nothing that looks complete but is not, and a
  later run with space resumes.
- A truncated shard or a flipped byte is found by ``degrade verify`` and by the readers,
  naming the shard.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from degrade.build import build
from degrade.cli import main
from degrade.errors import DegradeError
from degrade.shards import iter_shard, iter_webdataset
from degrade.shards.manifest import is_temp_name
from degrade.shards.webdataset import HashingFile

STEPS, SIZE, LIMIT, SHARD = 6, 24, 48, 4
N_SHARDS = LIMIT // SHARD
ARGS = ["--ops", "blur,jpeg", "--steps", str(STEPS), "--size", str(SIZE), "--limit", str(LIMIT),
        "--shard-size", str(SHARD), "--quiet"]  # fmt: skip
KW = {"ops": "blur,jpeg", "steps": STEPS, "size": SIZE, "limit": LIMIT, "shard_size": SHARD,
      "workers": 1, "progress": False, "log": lambda s: None}  # fmt: skip
SUFFIX = {"webdataset": ".tar", "parquet": ".parquet"}


def fingerprint(out: Path) -> tuple[dict[str, str], dict]:
    """Every shard's sha256, and the manifest without what legitimately differs (timings,
    the command line that was typed)."""
    shards = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("shard-*"))
    }
    m = json.loads((out / "manifest.json").read_text())
    for k in ("timings", "command"):
        m.pop(k)
    return shards, m


def temp_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.is_file() and is_temp_name(p.name)]


def assert_nothing_looks_complete_that_is_not(out: Path, fmt: str = "webdataset") -> None:
    """After a failure: no manifest; every shard under its final name is whole (it reads to
    the end, with the planned sample count) and has its ``.parts`` record with its sha256."""
    assert not (out / "manifest.json").exists()
    for shard in sorted(out.glob("shard-*")):
        assert shard.suffix == SUFFIX[fmt], shard
        assert len(list(iter_shard(shard))) == SHARD, shard
        record = out / ".parts" / f"{shard.name}.json"
        assert record.exists(), f"{shard.name} has no .parts record"
        assert json.loads(record.read_text())["sha256"] == hashlib.sha256(shard.read_bytes()).hexdigest()


@pytest.fixture(scope="module", params=["webdataset", "parquet"])
def reference(request, tmp_path_factory) -> tuple[str, Path]:
    """An uninterrupted build, built in-process."""
    fmt = request.param
    out = tmp_path_factory.mktemp(f"ref-{fmt}") / "data"
    build(None, out=out, format=fmt, **KW)
    return fmt, out


@pytest.fixture(scope="module")
def wds_reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref-wds") / "data"
    build(None, out=out, **KW)
    return out


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("degrade: error: "), err
    assert "Traceback" not in err and "internal error" not in err, err
    return lines[0]


# -- kill -9 ---------------------------------------------------------------------------------


def kill_when(cmd: list[str], ready: Callable[[], bool], timeout: float = 120) -> None:
    """Start ``cmd``; SIGKILL it and its workers the moment ``ready()`` holds."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, "the build ended before the kill point"
            assert time.monotonic() < deadline, "the kill point never came"
            time.sleep(0.002)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: nothing gets to clean up
        proc.wait()
    deadline = time.monotonic() + 10
    while True:  # no orphaned worker may still write when the resumed build starts
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "processes of the killed build survive"
        time.sleep(0.02)


def _exists(rel: str) -> Callable[[Path], Callable[[], bool]]:
    return lambda out: lambda: (out / rel).exists()


def _glob(pattern: str) -> Callable[[Path], Callable[[], bool]]:
    return lambda out: lambda: any(out.glob(pattern))


KILL_POINTS = {
    # name: (workers, trigger)
    "plan-written-no-shard": (1, _exists("plan.json")),
    "shard-0-half-written": (1, _glob(".shard-000000.tar.tmp-*")),
    "shard-0-renamed": (1, _exists("shard-000000.tar")),
    "3-shards-recorded": (1, _exists(".parts/shard-000002.tar.json")),
    "2-workers-5-shards-recorded": (2, _exists(".parts/shard-000004.tar.json")),
}


@pytest.mark.parametrize(
    "point",
    [pytest.param(p, marks=() if p == "3-shards-recorded" else pytest.mark.slow) for p in KILL_POINTS],
)
def test_kill_9_then_the_same_command_gives_the_same_bytes(point, wds_reference, tmp_path):
    workers, trigger = KILL_POINTS[point]
    out = tmp_path / "data"
    cmd = [sys.executable, "-m", "degrade", "build", *ARGS, "--workers", str(workers),
           "--out", str(out)]  # fmt: skip
    kill_when(cmd, trigger(out))
    assert not (out / "manifest.json").exists()
    for shard in out.glob("shard-*"):  # renamed only when complete
        assert len(list(iter_shard(shard))) == SHARD, shard
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert not temp_files(out)
    assert fingerprint(out) == fingerprint(wds_reference)


# -- a full disk: injected ENOSPC -------------------------------------------------------------


def no_space() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def disk_budget(monkeypatch) -> Iterator[Callable[[int], None]]:
    """``disk_budget(n)``: shard writes fail with ENOSPC once n bytes have been written."""
    real = HashingFile.write
    left = [None]

    def write(self: HashingFile, data: bytes) -> int:
        n = memoryview(data).nbytes
        if left[0] is not None:
            if n > left[0]:
                raise no_space()
            left[0] -= n
        return real(self, data)

    def set_budget(n: int | None) -> None:
        left[0] = n

    monkeypatch.setattr(HashingFile, "write", write)
    yield set_budget
    left[0] = None


def run_cli(capsys, *argv: object) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("full_after", [0.5, 2.5])
def test_enospc_in_a_shard_is_one_line_leaves_nothing_and_resumes(
    reference, disk_budget, full_after, tmp_path, capsys
):
    fmt, ref = reference
    sizes = [s["bytes"] for s in json.loads((ref / "manifest.json").read_text())["shards"]]
    whole = int(full_after)
    disk_budget(sum(sizes[:whole]) + sizes[whole] // 2)
    out = tmp_path / "data"
    rc, _, err = run_cli(capsys, "build", *ARGS, "--workers", "1", "--format", fmt, "--out", out)
    line = one_error_line(err)
    assert rc == 2
    assert f"shard-{whole:06d}{SUFFIX[fmt]}: cannot write (No space left on device)" in line
    assert not temp_files(out)  # the partial shard is gone: its space is given back
    assert_nothing_looks_complete_that_is_not(out, fmt)
    assert len(list(out.glob("shard-*"))) == whole

    disk_budget(None)  # space again
    rc, stdout, err = run_cli(capsys, "build", *ARGS, "--workers", "1", "--format", fmt, "--out", out)
    assert rc == 0, err
    if whole:
        assert f"resuming: {whole} of {N_SHARDS} shards already complete" in stdout
    assert fingerprint(out) == fingerprint(ref)


SITECUSTOMIZE = """
import errno, os, time
if os.environ.get("DEGRADE_TEST_NO_SPACE"):
    from degrade.shards import webdataset as w
    real = w.HashingFile.write
    def write(self, data):
        # Shard 0 hits a full disk; the others are slow, so they are mid-write by then.
        if ".shard-000000" in str(getattr(self.raw, "name", "")):
            time.sleep(0.3)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        time.sleep(0.02)
        return real(self, data)
    w.HashingFile.write = write
"""


@pytest.fixture(scope="module")
def parallel_enospc(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path, list[Path]]:
    """A 2-worker build whose worker for shard 0 hits ENOSPC (injected in every process of
    the build through a ``sitecustomize`` module)."""
    root = tmp_path_factory.mktemp("parallel-enospc")
    (root / "site").mkdir()
    (root / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**os.environ, "DEGRADE_TEST_NO_SPACE": "1",
           "PYTHONPATH": os.pathsep.join([str(root / "site"), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    out = root / "data"
    res = subprocess.run([sys.executable, "-m", "degrade", "build", *ARGS, "--workers", "2",
                          "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    return res, out, temp_files(out)  # what the failed build left, before any rerun


def test_enospc_in_a_worker_process_is_one_line(parallel_enospc, wds_reference, capsys):
    # The worker's OSError crosses the process boundary as the writer's DegradeError.
    res, out, _ = parallel_enospc
    assert res.returncode == 2, res.stderr
    line = one_error_line(res.stderr)
    assert line.endswith("shard-000000.tar: cannot write (No space left on device)"), line
    assert_nothing_looks_complete_that_is_not(out)
    rc, _, err = run_cli(capsys, "build", *ARGS, "--workers", "1", "--out", out)
    assert rc == 0, err
    assert not temp_files(out)
    assert fingerprint(out) == fingerprint(wds_reference)


def test_a_failed_parallel_build_leaves_no_temporary_files(parallel_enospc):
    # On a full disk a leftover partial shard keeps the space that the user must free.
    res, _, left = parallel_enospc
    assert res.returncode == 2
    assert not left


def _fail_replace(monkeypatch, when: Callable[[Path], bool]) -> None:
    import degrade.shards.manifest as manifest_mod

    real = os.replace

    def replace(src, dst):
        if when(Path(dst)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))
        return real(src, dst)

    monkeypatch.setattr(manifest_mod.os, "replace", replace)


def test_enospc_writing_the_manifest_leaves_no_manifest_and_resumes(wds_reference, tmp_path, capsys, monkeypatch):
    out = tmp_path / "data"
    _fail_replace(monkeypatch, lambda p: p.name == "manifest.json")
    rc, _, err = run_cli(capsys, "build", *ARGS, "--workers", "1", "--out", out)
    assert rc == 2 and "manifest.json: cannot write (No space left on device)" in one_error_line(err)
    assert not temp_files(out)
    assert_nothing_looks_complete_that_is_not(out)
    assert len(list(out.glob("shard-*"))) == N_SHARDS
    monkeypatch.undo()
    rc, stdout, err = run_cli(capsys, "build", *ARGS, "--workers", "1", "--out", out)
    assert rc == 0, err
    assert f"resuming: {N_SHARDS} of {N_SHARDS} shards already complete" in stdout
    assert fingerprint(out) == fingerprint(wds_reference)


def test_enospc_writing_the_plan_is_one_line(tmp_path, capsys, monkeypatch):
    out = tmp_path / "data"
    _fail_replace(monkeypatch, lambda p: p.name == "plan.json")
    rc, _, err = run_cli(capsys, "build", *ARGS, "--workers", "1", "--out", out)
    assert rc == 2 and "plan.json: cannot write (No space left on device)" in one_error_line(err)
    assert os.listdir(out) == []


def test_enospc_writing_a_shard_record_leaves_no_shard_without_its_record(tmp_path, capsys, monkeypatch):
    out = tmp_path / "data"
    _fail_replace(monkeypatch, lambda p: p.parent.name == ".parts" and p.name.startswith("shard-000001"))
    rc, _, err = run_cli(capsys, "build", *ARGS, "--workers", "1", "--out", out)
    assert rc == 2 and "No space left on device" in one_error_line(err)
    assert_nothing_looks_complete_that_is_not(out)


def test_an_oserror_anywhere_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    # E.g. the .parts folder cannot be made: the system's refusal, not an internal error.
    import degrade.cli as cli

    def refuse(args):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / "x"))

    monkeypatch.setattr(cli, "cmd_ops", refuse)
    monkeypatch.setattr(cli, "op_info", refuse)
    rc, _, err = run_cli(capsys, "ops", "blur")
    assert rc == 2
    assert one_error_line(err) == f"degrade: error: {tmp_path / 'x'}: Permission denied"


# -- a full disk: a real, small file system ----------------------------------------------------


@pytest.fixture
def small_fs(tmp_path) -> Iterator[Path]:
    """A 512 KB tmpfs, when this machine allows mounting one (root, not in a locked container)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root; the injected-ENOSPC tests cover the same paths")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)],
                         capture_output=True, text=True)  # fmt: skip
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip()}); the injected-ENOSPC tests cover the same paths")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
def test_a_real_full_disk_then_more_space_resumes(small_fs, fmt, tmp_path):
    args = ["--ops", "blur,jpeg", "--steps", "8", "--size", "32", "--limit", "60", "--shard-size",
            "10", "--codec", "png", "--workers", "2", "--format", fmt, "--quiet"]  # fmt: skip
    out = small_fs / "data"
    cmd = [sys.executable, "-m", "degrade", "build", *args, "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if res.returncode == 0:
        pytest.skip(f"the {fmt} build fitted in 512 KB")
    assert res.returncode == 2, res.stderr
    line = one_error_line(res.stderr)
    assert "No space left on device" in line
    assert not temp_files(out)  # the space of partial shards is given back
    assert not (out / "manifest.json").exists()
    for shard in out.glob("shard-*"):
        assert len(list(iter_shard(shard))) == 10, shard  # whole, or not there at all
    kept = len(list((out / ".parts").glob("shard-*.json")))

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_fs)], check=True)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    if kept:
        assert f"resuming: {kept} of 6 shards already complete" in res.stdout
    clean = tmp_path / "clean"
    res = subprocess.run([*cmd[:-1], str(clean)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert fingerprint(out) == fingerprint(clean)


# -- truncated shards and flipped bytes ----------------------------------------------------------


def _tar_layout(path: Path) -> list[tuple[str, int, int]]:
    """(name, header offset, data offset) of every member."""
    with tarfile.open(path) as tf:
        return [(m.name, m.offset, m.offset_data) for m in tf.getmembers()]


def _copy(ref: Path, dst: Path) -> Path:
    shutil.copytree(ref, dst)
    return dst


def _verify_names(capsys, out: Path, shard: str) -> str:
    rc, stdout, err = run_cli(capsys, "verify", out, "--regenerate", "0")
    assert rc == 1, stdout + err
    assert "FAILED" in stdout and f"{shard}:" in stdout, stdout
    return stdout


def _tar_cuts(path: Path) -> dict[str, int]:
    layout = _tar_layout(path)
    size = path.stat().st_size
    last_name, _, last_data = layout[-1]
    with tarfile.open(path) as tf:
        end_of_data = last_data + ((tf.getmember(last_name).size + 511) // 512) * 512
    return {
        "empty": 0,
        "inside-first-header": 100,
        "inside-first-member-data": layout[0][2] + 10,
        "at-a-member-boundary": layout[3][1],
        "inside-the-last-member": last_data + 1,
        "before-the-end-marker": end_of_data,
        "inside-the-end-marker": end_of_data + 512,
        "in-the-trailing-padding": size - 512,
    }


TAR_CUTS = ["empty", "inside-first-header", "inside-first-member-data", "at-a-member-boundary",
            "inside-the-last-member", "before-the-end-marker", "inside-the-end-marker",
            "in-the-trailing-padding"]  # fmt: skip
#: Cuts that lose only zero blocks after the last member: the archive's data is whole, so
#: only the size and checksum (verify, or the reader given the manifest's sha256) differ.
ONLY_ZEROS_LOST = {"inside-the-end-marker", "in-the-trailing-padding"}


@pytest.mark.parametrize("cut", TAR_CUTS)
def test_a_truncated_tar_is_found_by_verify_and_the_reader(cut, wds_reference, tmp_path, capsys):
    out = _copy(wds_reference, tmp_path / "data")
    shard = out / "shard-000001.tar"
    expected = json.loads((out / "manifest.json").read_text())["shards"][1]["sha256"]
    at = _tar_cuts(shard)[cut]
    with open(shard, "r+b") as f:
        f.truncate(at)
    _verify_names(capsys, out, "shard-000001.tar")
    # With the manifest's checksum the reader refuses it whatever the cut.
    with pytest.raises(DegradeError, match=rf"^{shard}: "):
        list(iter_shard(shard, sha256=expected))
    if cut in ONLY_ZEROS_LOST:
        assert len(list(iter_shard(shard))) == SHARD
    else:
        with pytest.raises(DegradeError, match=rf"^{shard}: "):
            list(iter_shard(shard))


def _tar_flips(path: Path) -> dict[str, int]:
    layout = _tar_layout(path)
    png = next(d for n, _, d in layout if n.endswith(".clean.png"))
    recipe = next(d for n, _, d in layout if n.endswith(".json"))
    return {
        "a-member-name": layout[2][1] + 3,
        "a-header-checksum": layout[2][1] + 148 + 2,
        "a-member-size": layout[2][1] + 124 + 9,
        "png-pixel-data": png + 60,
        "recipe-json": recipe + 20,
        "the-end-marker": path.stat().st_size - 1024 * 4,
    }


TAR_FLIPS = ["a-member-name", "a-header-checksum", "a-member-size", "png-pixel-data",
             "recipe-json", "the-end-marker"]  # fmt: skip


@pytest.mark.parametrize("where", TAR_FLIPS)
def test_a_flipped_byte_in_a_tar_is_found_by_verify_and_the_reader(where, wds_reference, tmp_path, capsys):
    out = _copy(wds_reference, tmp_path / "data")
    shard = out / "shard-000002.tar"
    expected = json.loads((out / "manifest.json").read_text())["shards"][2]["sha256"]
    at = _tar_flips(shard)[where]
    data = bytearray(shard.read_bytes())
    data[at] ^= 0x01
    shard.write_bytes(bytes(data))
    _verify_names(capsys, out, "shard-000002.tar")
    with pytest.raises(DegradeError, match=rf"^{shard}: "):
        list(iter_shard(shard, sha256=expected))
    with open(shard, "rb") as f:  # a stream (an HTTP body) too
        with pytest.raises(DegradeError, match=r"^http://host/shard-000002\.tar: "):
            list(iter_webdataset(f, name="http://host/shard-000002.tar", sha256=expected))


def test_the_reader_with_the_right_checksum_reads_everything(wds_reference):
    m = json.loads((wds_reference / "manifest.json").read_text())
    for s in m["shards"]:
        recs = list(iter_shard(wds_reference / s["name"], sha256=s["sha256"]))
        assert len(recs) == s["samples"]
    with pytest.raises(DegradeError, match="sha256 must be 64 hex digits"):
        list(iter_shard(wds_reference / m["shards"][0]["name"], sha256="abc"))


@pytest.fixture(scope="module")
def pq_reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref-pq") / "data"
    build(None, out=out, format="parquet", **KW)
    return out


@pytest.mark.parametrize("at", ["empty", "half", "footer", "last-byte"])
def test_a_truncated_parquet_shard_is_found_by_verify_and_the_reader(at, pq_reference, tmp_path, capsys):
    out = _copy(pq_reference, tmp_path / "data")
    shard = out / "shard-000001.parquet"
    size = shard.stat().st_size
    cut = {"empty": 0, "half": size // 2, "footer": size - 100, "last-byte": size - 1}[at]
    with open(shard, "r+b") as f:
        f.truncate(cut)
    _verify_names(capsys, out, "shard-000001.parquet")
    with pytest.raises(DegradeError, match=rf"^{shard}: "):
        list(iter_shard(shard))


@pytest.mark.parametrize("where", ["png-pixel-data", "png-signature", "middle", "footer-metadata"])
def test_a_flipped_byte_in_parquet_is_found_by_verify_and_the_reader(where, pq_reference, tmp_path, capsys):
    out = _copy(pq_reference, tmp_path / "data")
    shard = out / "shard-000003.parquet"
    expected = json.loads((out / "manifest.json").read_text())["shards"][3]["sha256"]
    data = bytearray(shard.read_bytes())
    png = data.find(b"\x89PNG")
    at = {"png-pixel-data": png + 80, "png-signature": png + 1, "middle": len(data) // 2,
          "footer-metadata": len(data) - 200}[where]  # fmt: skip
    data[at] ^= 0x01
    shard.write_bytes(bytes(data))
    _verify_names(capsys, out, "shard-000003.parquet")
    with pytest.raises(DegradeError, match=rf"^{shard}: "):
        list(iter_shard(shard, sha256=expected))
    if where.startswith("png"):  # inside a page: its CRC catches it without the manifest
        with pytest.raises(DegradeError, match=rf"^{shard}: "):
            list(iter_shard(shard))


# -- a killed training run ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train-data") / "data"
    build(None, ops="blur", steps=4, size=16, limit=24, shard_size=8, out=out, workers=1,
          progress=False, log=lambda s: None)  # fmt: skip
    return out


@pytest.mark.slow
def test_kill_9_during_training_then_resume(tiny_dataset, tmp_path):
    pytest.importorskip("torch")
    from degrade.train import load_checkpoint

    run = tmp_path / "run"
    max_steps = 150
    cmd = [sys.executable, "-m", "degrade", "train", "--data", str(tiny_dataset), "--out", str(run),
           "--max-steps", str(max_steps), "--batch-size", "4", "--base-channels", "8",
           "--channel-mults", "1", "--blocks", "1", "--workers", "0", "--ckpt-every", "3",
           "--log-every", "1", "--warmup-steps", "2", "--progress", "false", "--threads", "1",
           "--dtype", "float32", "--resume"]  # fmt: skip
    rng = np.random.default_rng(9)
    ckpt = run / "ckpt.pt"
    steps = []
    for _ in range(3):
        # Kill at a random moment once a checkpoint exists: often in the middle of writing
        # the next one (every 3 steps).
        start = ckpt.stat().st_mtime_ns if ckpt.exists() else None
        delay = float(rng.uniform(0.05, 0.8))
        deadline = [None]

        def ready(start=start, delay=delay, deadline=deadline) -> bool:
            if deadline[0] is None:
                if ckpt.exists() and ckpt.stat().st_mtime_ns != start:
                    deadline[0] = time.monotonic() + delay
                return False
            return time.monotonic() >= deadline[0]

        kill_when(cmd, ready)
        state = load_checkpoint(run)  # never half-written: the last complete one
        steps.append(int(state["step"]))
        assert 0 < steps[-1] < max_steps
    assert steps == sorted(steps)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert int(load_checkpoint(run)["step"]) == max_steps
    for line in (run / "log.jsonl").read_text().splitlines():
        json.loads(line)  # a kill mid-line must not leave a broken record behind
