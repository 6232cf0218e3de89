"""The dataset builder end to end: `degrade build`, resume, refusals, keep specs, read-back.

Builds here are small (the sample pool at 16 px, a few steps, shards of a few samples) so
the default suite stays fast; the README command itself runs under the ``slow`` marker.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

import degrade
from degrade.build import build, pair_steps, stored_steps
from degrade.cli import main
from degrade.image import encode_png, to_float
from degrade.shards import iter_shard

ROOT = Path(__file__).resolve().parents[1]

STEPS = 4
LIMIT = 12
SHARD = 5  # 12 samples → shards of 5, 5, 2
BASE = ["--ops", "blur,jpeg", "--steps", str(STEPS), "--size", "16", "--limit", str(LIMIT),
        "--shard-size", str(SHARD), "--workers", "1", "--quiet"]  # fmt: skip
MANIFEST_FIELDS = {
    "manifest_version", "format", "degrade_version", "versions", "command", "config", "seed",
    "steps", "samples", "splits", "shards", "skipped", "totals", "timings",
}  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """Run ``degrade ARGV`` in-process; return (exit code, stdout, stderr)."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("degrade: error: "), err
    return lines[0]


def shard_hashes(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("shard-*"))
    }


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def records(folder: Path) -> list[dict]:
    m = manifest(folder)
    return [r for s in m["shards"] for r in iter_shard(folder / s["name"])]


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im)
    return arr[:, :, None] if arr.ndim == 2 else arr


def listing(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``folder`` (hidden ones too) with its size, mtime and sha256."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(folder))] = (
                st.st_size,
                st.st_mtime_ns,
                hashlib.sha256(p.read_bytes()).hexdigest(),
            )
    return out


@pytest.fixture(scope="module")
def wds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wds") / "data"
    assert main(["build", *BASE, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pq") / "data"
    assert main(["build", *BASE, "--format", "parquet", "--out", str(out)]) == 0
    return out


@pytest.fixture
def wds_copy(wds: Path, tmp_path: Path) -> Path:
    out = tmp_path / "data"
    shutil.copytree(wds, out)
    return out


# -- the bare command ---------------------------------------------------------------------


def _check_bare_output(out: str, folder: Path) -> None:
    lines = out.strip().splitlines()
    # It ends by saying where the data is and how to look at it.
    assert lines[-2].strip() == f"data: {folder.resolve()}"
    assert "degrade inspect degrade-data" in lines[-1]
    assert "degrade verify degrade-data" in lines[-1]


@pytest.mark.slow
def test_bare_command_on_the_sample_pool(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    rc, out, err = run(capsys, "build", "--ops", "blur,jpeg", "--steps", "50")
    seconds = time.perf_counter() - t0
    assert rc == 0, err
    folder = tmp_path / "degrade-data"
    _check_bare_output(out, folder)
    m = manifest(folder)
    assert m["samples"] == 1000 and m["steps"] == 50 and m["skipped"] == []
    assert m["config"]["size"] == 64 and m["config"]["shard_size"] == 256
    assert [s["name"] for s in m["shards"]] == [f"shard-00000{i}.tar" for i in range(4)]
    assert [s["samples"] for s in m["shards"]] == [256, 256, 256, 232]
    assert m["totals"]["frames_stored"] == 1000 * 51
    assert sum(m["splits"].values()) == 1000 and set(m["splits"]) == {"train", "val", "test"}
    assert seconds < 120  # "about a minute on 2 cores"
    rc, out, _ = run(capsys, "verify", "degrade-data")
    assert rc == 0 and "OK" in out


def test_bare_command_small(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc, out, err = run(capsys, "build", "--ops", "blur,jpeg", "--steps", "5", "--limit", "20")
    assert rc == 0, err
    folder = tmp_path / "degrade-data"
    _check_bare_output(out, folder)
    assert "20 samples" in out
    m = manifest(folder)
    assert m["samples"] == 20 and m["steps"] == 5 and m["config"]["size"] == 64
    assert [s["samples"] for s in m["shards"]] == [20]
    recs = records(folder)
    assert [r["key"] for r in recs] == [f"sample-{i:06d}" for i in range(20)]
    assert all(decode(r["clean"]).shape == (64, 64, 3) for r in recs)
    assert all([k for k, _, _ in r["frames"]] == [1, 2, 3, 4, 5] for r in recs)


# -- reading back -------------------------------------------------------------------------


def test_webdataset_reads_the_shards(wds):
    webdataset = pytest.importorskip("webdataset")
    m = manifest(wds)
    urls = [str(wds / s["name"]) for s in m["shards"]]
    samples = list(webdataset.WebDataset(urls, shardshuffle=False).decode("pil"))
    assert len(samples) == m["samples"] == LIMIT
    assert [s["__key__"] for s in samples] == [f"sample-{i:06d}" for i in range(LIMIT)]
    for s in samples:
        fields = {f for f in s if not f.startswith("__")}
        # blur,jpeg: every step's last op is jpeg, so every step is stored as .jpg
        assert fields == {"clean.png", "json"} | {f"s{k:02d}.jpg" for k in range(1, STEPS + 1)}
        assert s["clean.png"].size == (16, 16)
        assert s["json"]["key"] == s["__key__"] and len(s["json"]["steps"]) == STEPS
        assert s["json"]["split"] in m["splits"]


def test_pyarrow_reads_the_shards(parquet):
    m = manifest(parquet)
    files = [str(parquet / s["name"]) for s in m["shards"]]
    table = pq.ParquetDataset(files).read()
    assert table.num_rows == m["samples"] == LIMIT
    assert table.column_names == ["key", "clean", "steps", "frames", "recipe", "label", "split"]
    rows = table.to_pylist()
    assert [r["key"] for r in rows] == [f"sample-{i:06d}" for i in range(LIMIT)]
    for r in rows:
        assert r["steps"] == list(range(1, STEPS + 1))
        assert len(r["frames"]) == STEPS
        assert r["clean"]["bytes"].startswith(b"\x89PNG")
        assert all(f["bytes"].startswith(b"\xff\xd8") for f in r["frames"])
        recipe = json.loads(r["recipe"])
        assert recipe["split"] == r["split"] and recipe["label"] == r["label"]
    for s in m["shards"]:
        assert pq.ParquetFile(parquet / s["name"]).metadata.num_rows == s["samples"]


def test_hugging_face_datasets_reads_the_shards(parquet, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    files = sorted(str(p) for p in parquet.glob("shard-*.parquet"))
    assert len(files) == 3
    ds = datasets.load_dataset(
        "parquet", data_files=files, split="train", cache_dir=str(tmp_path / "cache")
    )
    assert len(ds) == LIMIT
    assert isinstance(ds.features["clean"], datasets.Image)
    row = ds[3]
    assert row["key"] == "sample-000003" and row["steps"] == list(range(1, STEPS + 1))
    assert isinstance(row["clean"], Image.Image) and row["clean"].size == (16, 16)
    assert len(row["frames"]) == STEPS
    assert all(isinstance(f, Image.Image) and f.format == "JPEG" for f in row["frames"])
    assert json.loads(row["recipe"])["key"] == "sample-000003"


def test_replay_reproduces_stored_frames(wds, parquet):
    for folder in (wds, parquet):
        for rec in records(folder)[:4]:
            clean = decode(rec["clean"])
            frames = degrade.replay(rec["recipe"], clean)
            assert len(frames) == STEPS + 1
            np.testing.assert_array_equal(frames[0], to_float(clean))
            for k, ext, data in rec["frames"]:
                assert ext == "jpg"
                np.testing.assert_array_equal(frames[k], to_float(decode(data)))


def test_jpeg_steps_are_the_jpeg_bytes_and_codec_png_stores_png(wds, tmp_path, capsys):
    with tarfile.open(wds / "shard-000000.tar") as tar:
        jpgs = [m for m in tar.getmembers() if m.name.endswith(".jpg")]
        assert len(jpgs) == SHARD * STEPS
        assert all(tar.extractfile(m).read()[:3] == b"\xff\xd8\xff" for m in jpgs)
    out = tmp_path / "png"
    rc, _, err = run(capsys, "build", *BASE, "--codec", "png", "--out", out)
    assert rc == 0, err
    with tarfile.open(out / "shard-000000.tar") as tar:
        names = tar.getnames()
        assert not [n for n in names if n.endswith(".jpg")]
        pngs = [n for n in names if n.endswith(".png") and ".s0" in n]
        assert len(pngs) == SHARD * STEPS
        assert all(tar.extractfile(n).read()[:8] == b"\x89PNG\r\n\x1a\n" for n in pngs)
    # Same pixels either way: the PNG holds the decoded JPEG.
    for a, b in zip(records(wds), records(out), strict=True):
        assert [k for k, _, _ in a["frames"]] == [k for k, _, _ in b["frames"]]
        for (_, _, ja), (_, _, pb) in zip(a["frames"], b["frames"], strict=True):
            np.testing.assert_array_equal(decode(ja), decode(pb))


# -- manifest -----------------------------------------------------------------------------


def test_manifest_has_every_field(wds):
    m = manifest(wds)
    assert MANIFEST_FIELDS <= set(m)
    assert m["manifest_version"] == 1 and m["format"] == "webdataset"
    assert m["degrade_version"] == degrade.__version__
    for lib in ("numpy", "opencv", "pillow", "pyarrow", "python"):
        assert m["versions"][lib]
    assert m["command"].startswith("degrade build ") and "--ops blur,jpeg" in m["command"]
    assert m["seed"] == 0 and m["steps"] == STEPS and m["samples"] == LIMIT
    assert m["config"]["pipeline"]["steps"] == STEPS and m["config"]["size"] == 16
    assert sum(m["splits"].values()) == LIMIT
    assert [s["name"] for s in m["shards"]] == [f"shard-00000{i}.tar" for i in range(3)]
    assert [s["samples"] for s in m["shards"]] == [5, 5, 2]
    for s in m["shards"]:
        assert {"name", "samples", "bytes", "sha256"} <= set(s)
        data = (wds / s["name"]).read_bytes()
        assert s["bytes"] == len(data) and s["sha256"] == hashlib.sha256(data).hexdigest()
    assert m["skipped"] == []
    assert m["totals"]["inputs"] == LIMIT and m["totals"]["samples"] == LIMIT
    assert m["totals"]["skipped"] == 0 and m["totals"]["shards"] == 3
    assert m["totals"]["frames_stored"] == LIMIT * (STEPS + 1)
    assert m["totals"]["bytes"] == sum(s["bytes"] for s in m["shards"])
    assert {"seconds", "workers"} <= set(m["timings"])
    plan = json.loads((wds / "plan.json").read_text())
    assert plan["config"] == m["config"]


# -- determinism ----------------------------------------------------------------------------


def test_worker_count_does_not_change_the_bytes(tmp_path, monkeypatch):
    hashes, manifests = [], []
    for workers in (1, 2, 3):
        d = tmp_path / f"w{workers}"
        d.mkdir()
        monkeypatch.chdir(d)  # the same relative --out, so the same recorded command
        r = build(None, ops="blur,jpeg", steps=3, size=16, limit=12, shard_size=3,
                  workers=workers, out="data", progress=False, log=lambda s: None)  # fmt: skip
        assert r.built_shards == 4 and r.kept_shards == 0
        assert r.manifest["timings"]["workers"] == min(workers, 4)
        hashes.append(shard_hashes(d / "data"))
        m = manifest(d / "data")
        assert m == r.manifest
        del m["timings"]
        manifests.append(m)
    assert len(hashes[0]) == 4
    assert hashes[0] == hashes[1] == hashes[2]
    assert manifests[0] == manifests[1] == manifests[2]


# -- resume -----------------------------------------------------------------------------------


def _api_build(out: Path, **kw):
    args = {"ops": "blur,jpeg", "steps": STEPS, "size": 16, "limit": LIMIT,
            "shard_size": SHARD, "workers": 1, "progress": False, "log": lambda s: None}  # fmt: skip
    args.update(kw)
    return build(None, out=out, **args)


def test_resume_keeps_good_shards_and_rebuilds_bad_ones(wds, wds_copy):
    want = shard_hashes(wds)
    (wds_copy / "manifest.json").unlink()  # as after a kill: no manifest yet
    (wds_copy / "shard-000000.tar").unlink()
    p2 = wds_copy / "shard-000002.tar"
    p2.write_bytes(p2.read_bytes()[:3000])
    stale = [wds_copy / ".shard-000001.tar.tmp-123", wds_copy / ".plan.json.tmp-77",
             wds_copy / ".parts" / ".shard-000000.tar.json.tmp-9"]  # fmt: skip
    for p in stale:
        p.write_bytes(b"half a file")
    r = _api_build(wds_copy, workers=2)  # another worker count resumes too
    assert (r.kept_shards, r.built_shards) == (1, 2)
    assert shard_hashes(wds_copy) == want
    assert not [p for p in stale if p.exists()]
    assert not [p for p in wds_copy.rglob(".*tmp-*")]
    m = manifest(wds_copy)
    assert m["timings"]["shards_kept"] == 1 and m["timings"]["shards_built"] == 2
    ref = manifest(wds)
    for x in (m, ref):
        del x["timings"], x["command"]  # the command names --out
    assert m == ref


def test_resume_rebuilds_a_shard_with_a_flipped_byte(wds, wds_copy):
    p = wds_copy / "shard-000001.tar"
    data = bytearray(p.read_bytes())
    data[1000] ^= 0xFF
    p.write_bytes(bytes(data))
    r = _api_build(wds_copy)
    assert (r.kept_shards, r.built_shards) == (2, 1)
    assert shard_hashes(wds_copy) == shard_hashes(wds)


def test_parquet_resume_rebuilds_missing_and_truncated_shards(parquet, tmp_path):
    out = tmp_path / "data"
    shutil.copytree(parquet, out)
    (out / "shard-000001.parquet").unlink()
    p0 = out / "shard-000000.parquet"
    p0.write_bytes(p0.read_bytes()[:-100])
    (out / ".shard-000002.parquet.tmp-4242").write_bytes(b"PAR1")
    r = _api_build(out, format="parquet")
    assert (r.kept_shards, r.built_shards) == (1, 2)
    assert shard_hashes(out) == shard_hashes(parquet)
    assert not list(out.glob(".*tmp-*"))


def test_a_shard_without_its_record_is_rebuilt(wds, wds_copy):
    # A shard renamed into place just before a kill, its record not yet written.
    (wds_copy / ".parts" / "shard-000001.tar.json").unlink()
    r = _api_build(wds_copy)
    assert (r.kept_shards, r.built_shards) == (2, 1)
    assert shard_hashes(wds_copy) == shard_hashes(wds)


def test_rerun_of_a_finished_build_keeps_everything(wds, wds_copy):
    r = _api_build(wds_copy, workers=3)
    assert (r.kept_shards, r.built_shards) == (3, 0)
    assert shard_hashes(wds_copy) == shard_hashes(wds)


def _kill_when(cmd: list[str], path: Path) -> None:
    """Start ``cmd`` and SIGKILL it (and its workers) as soon as ``path`` exists."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not path.exists():
            assert proc.poll() is None, "the build ended before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
    finally:
        # SIGKILL the whole group: the build and its worker processes; nothing cleans up.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 10
    while True:  # no orphaned worker may go on writing while the resumed build runs
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "processes of the killed build survive"
        time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_and_resume_equals_a_clean_build(tmp_path):
    args = ["--ops", "blur,jpeg", "--steps", "20", "--size", "32", "--limit", "240",
            "--shard-size", "10", "--workers", "2", "--quiet"]  # fmt: skip
    cmd = [sys.executable, "-m", "degrade", "build", *args]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    _kill_when([*cmd, "--out", str(killed)], killed / "shard-000000.tar")
    assert not (killed / "manifest.json").exists()
    assert 1 <= len(list(killed.glob("shard-*.tar"))) < 24
    resumed = subprocess.run([*cmd, "--out", str(killed)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    subprocess.run([*cmd, "--out", str(clean)], check=True, capture_output=True)
    assert len(shard_hashes(clean)) == 24
    assert shard_hashes(killed) == shard_hashes(clean)
    assert not list(killed.rglob(".*tmp-*"))
    a, b = manifest(killed), manifest(clean)
    for m in (a, b):
        del m["timings"], m["command"]
    assert a == b


def test_kill_9_inline_build_and_resume(tmp_path, capsys):
    # Killed once shard 0 is recorded as finished, so the resumed build must keep it.
    args = ["--ops", "blur,jpeg", "--steps", "6", "--size", "16", "--limit", "60",
            "--shard-size", "3", "--workers", "1", "--quiet"]  # fmt: skip
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "degrade", "build", *args, "--out", str(out)]
    _kill_when(cmd, out / ".parts" / "shard-000000.tar.json")
    assert not (out / "manifest.json").exists()
    recorded = len(list((out / ".parts").glob("shard-*.json")))
    assert 1 <= recorded < 20
    rc, stdout, err = run(capsys, "build", *args, "--out", out)
    assert rc == 0, err
    assert f"resuming: {recorded} of 20 shards already complete" in stdout
    assert manifest(out)["timings"]["shards_kept"] == recorded
    clean = tmp_path / "clean"
    r = build(None, ops="blur,jpeg", steps=6, size=16, limit=60, shard_size=3, workers=1,
              out=clean, progress=False, log=lambda s: None)  # fmt: skip
    assert r.built_shards == 20
    assert shard_hashes(out) == shard_hashes(clean)
    assert not list(out.rglob(".*tmp-*"))


# -- refusals -------------------------------------------------------------------------------


def test_another_config_is_refused_naming_the_difference(wds_copy, capsys):
    before = listing(wds_copy)
    args = [a if a != str(STEPS) else "5" for a in BASE]  # --steps 5
    rc, _, err = run(capsys, "build", *args, "--out", wds_copy)
    assert rc == 2
    line = one_error_line(err)
    assert "another config" in line and "pipeline.steps: 4 -> 5" in line and "--overwrite" in line
    rc, _, err = run(capsys, "build", *BASE, "--size", "24", "--out", wds_copy)
    assert rc == 2 and "size: 16 -> 24" in one_error_line(err)
    assert listing(wds_copy) == before
    # --workers alone is not a difference
    rc, _, err = run(capsys, "build", *BASE, "--workers", "2", "--out", wds_copy)
    assert rc == 0, err
    assert shard_hashes(wds_copy) == {k: v[2] for k, v in before.items() if k.startswith("shard-")}
    # --overwrite replaces it
    rc, _, err = run(capsys, "build", *args, "--overwrite", "--out", wds_copy)
    assert rc == 0, err
    m = manifest(wds_copy)
    assert m["steps"] == 5 and m["timings"]["shards_kept"] == 0
    assert sorted(p.name for p in wds_copy.glob("shard-*")) == [
        f"shard-00000{i}.tar" for i in range(3)
    ]


def test_a_folder_that_is_not_a_build_is_refused(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    rc, _, err = run(capsys, "build", *BASE, "--out", out)
    assert rc == 2
    assert "not empty and holds no degrade build" in one_error_line(err)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_out_that_is_a_file_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "file"
    out.write_text("x")
    rc, _, err = run(capsys, "build", *BASE, "--out", out)
    assert rc == 2
    assert "not a folder" in one_error_line(err)


# -- verify -----------------------------------------------------------------------------------


def test_verify_passes_on_a_good_build(wds, parquet, capsys):
    for folder in (wds, parquet):
        rc, out, _ = run(capsys, "verify", folder, "--regenerate", "100")
        assert rc == 0
        assert out.strip() == (
            f"degrade verify: OK: 3 shards, {LIMIT} samples checked, "
            f"{LIMIT} regenerated from their recipes"
        )


def test_verify_names_a_shard_with_a_flipped_byte(wds_copy, capsys):
    p = wds_copy / "shard-000001.tar"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    rc, out, _ = run(capsys, "verify", wds_copy, "--regenerate", "0")
    assert rc == 1
    assert "FAILED" in out
    assert "shard-000001.tar: sha256 does not match the manifest" in out
    assert "shard-000000.tar" not in out and "shard-000002.tar" not in out


def test_verify_catches_a_flipped_image_byte_in_parquet_by_page_crc(parquet, tmp_path, capsys):
    folder = tmp_path / "data"
    shutil.copytree(parquet, folder)
    p = folder / "shard-000002.parquet"
    data = bytearray(p.read_bytes())
    at = data.index(b"\x89PNG\r\n\x1a\n") + 60  # inside the first clean image's bytes
    data[at] ^= 0x01
    p.write_bytes(bytes(data))
    # Patch the manifest so that only the page CRC can notice.
    m = manifest(folder)
    m["shards"][2]["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(m))
    rc, out, _ = run(capsys, "verify", folder, "--regenerate", "0")
    assert rc == 1
    problems = out.strip().splitlines()[1:]
    assert len(problems) >= 1
    assert problems[0].strip().startswith("shard-000002.parquet: cannot be read")
    assert "sha256" not in out


def test_verify_regeneration_catches_a_changed_frame_with_patched_checksum(wds_copy, capsys):
    p = wds_copy / "shard-000000.tar"
    with tarfile.open(p) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    by_name = {m.name: d for m, d in members}
    # Swap step 2's JPEG of the first sample for its step-3 JPEG: a valid image, wrong pixels.
    key = "sample-000000"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m, d in members:
            if m.name == f"{key}.s02.jpg":
                d = by_name[f"{key}.s03.jpg"]
                m.size = len(d)
            tar.addfile(m, io.BytesIO(d))
    p.write_bytes(buf.getvalue())
    m = manifest(wds_copy)
    m["shards"][0]["sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    m["shards"][0]["bytes"] = len(buf.getvalue())
    (wds_copy / "manifest.json").write_text(json.dumps(m))
    rc, out, _ = run(capsys, "verify", wds_copy, "--regenerate", "0")
    assert rc == 0  # checksums and counts alone cannot see it
    rc, out, _ = run(capsys, "verify", wds_copy, "--regenerate", "100")
    assert rc == 1
    assert f"shard-000000.tar: sample {key}: step 2 differs from its regeneration" in out


def test_verify_counts_a_missing_shard(wds_copy, capsys):
    (wds_copy / "shard-000002.tar").unlink()
    rc, out, _ = run(capsys, "verify", wds_copy)
    assert rc == 1 and "shard-000002.tar: missing" in out


def test_verify_errors(tmp_path, capsys):
    rc, _, err = run(capsys, "verify", tmp_path)
    assert rc == 2 and "no manifest" in one_error_line(err)


# -- broken inputs ------------------------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    rng = np.random.default_rng(3)
    good = [root / "cats" / "a.png", root / "cats" / "b.jpg", root / "dogs" / "c.png",
            root / "dogs" / "d.bmp"]  # fmt: skip
    for p in good:
        Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(p)
    # What users really have is normalised, not skipped: grey, RGBA, palette.
    Image.fromarray(rng.integers(0, 256, (30, 20), dtype=np.uint8)).save(root / "dogs" / "e.png")
    Image.fromarray(rng.integers(0, 256, (20, 20, 4), dtype=np.uint8)).save(root / "cats" / "f.png")
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).convert("P").save(
        root / "cats" / "g.gif"
    )
    png = encode_png(rng.random((40, 40, 3), dtype=np.float32))
    (root / "cats" / "trunc.png").write_bytes(png[: len(png) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "notes.png").write_text("this is not an image\n")
    (root / "dogs" / "huge.png").write_bytes(_png_header_only(60000, 60000))
    return root


def test_mixed_folder_records_the_skips(mixed, tmp_path, capsys):
    out = tmp_path / "out"
    rc, stdout, err = run(capsys, "build", "--input", mixed, "--ops", "blur", "--steps", "2",
                          "--size", "16", "--shard-size", "3", "--quiet", "--out", out)  # fmt: skip
    assert rc == 0, err
    assert "4 inputs skipped" in stdout
    m = manifest(out)
    assert m["samples"] == 7 and m["totals"]["inputs"] == 11
    assert m["samples"] + len(m["skipped"]) == m["totals"]["inputs"]
    reasons = {s["source"]: s["reason"] for s in m["skipped"]}
    assert set(reasons) == {"cats/trunc.png", "dogs/huge.png", "empty.png", "notes.png"}
    assert all(r.startswith(f"{src}: ") for src, r in reasons.items())
    assert "empty" in reasons["empty.png"]
    assert "pixels" in reasons["dogs/huge.png"]
    recs = records(out)
    assert sorted((r["recipe"]["source"]["id"], r["label"]) for r in recs) == [
        ("cats/a.png", "cats"), ("cats/b.jpg", "cats"), ("cats/f.png", "cats"),
        ("cats/g.gif", "cats"), ("dogs/c.png", "dogs"), ("dogs/d.bmp", "dogs"),
        ("dogs/e.png", "dogs"),
    ]  # fmt: skip
    assert all(decode(r["clean"]).shape[:2] == (16, 16) for r in recs)
    assert sum(s["samples"] for s in m["shards"]) == 7
    assert [s["samples"] for s in m["shards"]] == [3, 2, 2, 0]  # planned 3 each; skips drop out
    rc, out_text, _ = run(capsys, "inspect", out, "--sheet", tmp_path / "sheet.png")
    assert rc == 0 and "skipped inputs: 4" in out_text


def test_strict_turns_a_skip_into_exit_2(mixed, tmp_path, capsys):
    rc, _, err = run(capsys, "build", "--input", mixed, "--ops", "blur", "--steps", "2",
                     "--size", "16", "--quiet", "--strict", "--out", tmp_path / "out")  # fmt: skip
    assert rc == 2
    line = one_error_line(err)
    assert "cats/trunc.png" in line and "--strict" in line
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert not list((tmp_path / "out").glob("shard-*"))
    # Without --strict the same folder resumes (strict is no config difference) and skips.
    common = ["build", "--input", mixed, "--ops", "blur", "--steps", "2", "--size", "16",
              "--quiet", "--out", tmp_path / "out"]  # fmt: skip
    rc, _, err = run(capsys, *common)
    assert rc == 0, err
    assert len(manifest(tmp_path / "out")["skipped"]) == 4
    # ... and --strict on a finished build with skips still refuses to call it clean.
    rc, _, err = run(capsys, *common, "--strict")
    assert rc == 2 and "--strict" in one_error_line(err)


def test_strict_with_workers_is_one_line(mixed, tmp_path, capsys):
    rc, _, err = run(capsys, "build", "--input", mixed, "--ops", "blur", "--steps", "2",
                     "--size", "16", "--shard-size", "2", "--workers", "2", "--quiet",
                     "--strict", "--out", tmp_path / "out")  # fmt: skip
    assert rc == 2
    line = one_error_line(err)
    assert "--strict" in line and any(
        n in line for n in ("cats/trunc.png", "dogs/huge.png", "empty.png", "notes.png")
    )
    assert not (tmp_path / "out" / "manifest.json").exists()


# -- splits -------------------------------------------------------------------------------------


def test_pool_splits_are_disjoint_by_photograph(tmp_path, capsys):
    out = tmp_path / "out"
    rc, _, err = run(capsys, "build", "--ops", "blur", "--steps", "1", "--size", "16",
                     "--limit", "60", "--shard-size", "16", "--keep", "none", "--workers", "1",
                     "--quiet", "--out", out)  # fmt: skip
    assert rc == 0, err
    m = manifest(out)
    recs = records(out)
    assert len(recs) == 60
    photo_split: dict[str, set[str]] = {}
    for r in recs:
        photo_split.setdefault(r["recipe"]["source"]["photo"], set()).add(r["split"])
        assert r["recipe"]["split"] == r["split"]
    assert len(photo_split) == 15
    assert all(len(s) == 1 for s in photo_split.values()), photo_split
    used = {next(iter(s)) for s in photo_split.values()}
    assert used == {"train", "val", "test"}
    counts = {k: sum(r["split"] == k for r in recs) for k in m["splits"]}
    assert m["splits"] == counts
    # 15 photographs 13 / 1 / 1, four crops each
    assert sorted(counts.values()) == [4, 4, 52]
    for s in m["shards"]:
        shard_recs = list(iter_shard(out / s["name"]))
        assert len(shard_recs) == s["samples"]
        got = {k: sum(r["split"] == k for r in shard_recs) for k in s["splits"]}
        assert got == s["splits"]


def test_file_splits_are_by_source_and_custom(tmp_path, capsys):
    root = tmp_path / "in"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(30):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / f"{i:02d}.png")
    out = tmp_path / "out"
    rc, _, err = run(capsys, "build", "--input", root, "--ops", "noise", "--steps", "1",
                     "--size", "0", "--keep", "none", "--split", "a=0.5,b=0.5", "--quiet",
                     "--workers", "1", "--out", out)  # fmt: skip
    assert rc == 0, err
    m = manifest(out)
    recs = records(out)
    assert set(m["splits"]) == {"a", "b"} and sum(m["splits"].values()) == 30
    keys = [r["key"] for r in recs]
    assert len(set(keys)) == 30
    assert all(r["split"] in ("a", "b") for r in recs)
    assert m["splits"] == {k: sum(r["split"] == k for r in recs) for k in ("a", "b")}
    assert 0 < m["splits"]["a"] < 30
    # The same source gets the same split in another build (assigned by source, not order).
    out2 = tmp_path / "out2"
    rc, _, _ = run(capsys, "build", "--input", root / "0*.png", "--ops", "noise", "--steps", "1",
                   "--size", "0", "--keep", "none", "--split", "a=0.5,b=0.5", "--quiet",
                   "--workers", "1", "--out", out2)  # fmt: skip
    assert rc == 0
    first = {r["recipe"]["source"]["id"]: r["split"] for r in recs}
    again = {r["recipe"]["source"]["id"]: r["split"] for r in records(out2)}
    assert len(again) == 10 and all(first[k] == v for k, v in again.items())


def test_split_order_is_part_of_the_config(tmp_path, capsys):
    root = tmp_path / "in"
    root.mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8, 3), i * 40, np.uint8)).save(root / f"{i}.png")
    out = tmp_path / "out"
    common = ["build", "--input", root, "--ops", "noise", "--steps", "1", "--size", "0",
              "--quiet", "--workers", "1", "--out", out]  # fmt: skip
    assert run(capsys, *common, "--split", "a=0.5,b=0.5")[0] == 0
    rc, _, err = run(capsys, *common, "--split", "b=0.5,a=0.5")
    assert rc == 2 and 'split_order: ["a", "b"] -> ["b", "a"]' in one_error_line(err)


# -- keep -------------------------------------------------------------------------------------------


def _keep_build(tmp_path: Path, capsys, keep: str, steps: int = 10) -> Path:
    out = tmp_path / keep.replace(":", "-")
    rc, _, err = run(capsys, "build", "--ops", "blur,jpeg", "--steps", steps, "--size", "16",
                     "--limit", "8", "--shard-size", "3", "--keep", keep, "--workers", "1",
                     "--quiet", "--out", out)  # fmt: skip
    assert rc == 0, err
    return out


def test_keep_pairs(tmp_path, capsys):
    out = _keep_build(tmp_path, capsys, "pairs:3")
    m = manifest(out)
    recs = records(out)
    assert len(recs) == 8
    sets = set()
    stored_total = 0
    for r in recs:
        ks = [k for k, _, _ in r["frames"]]
        assert ks == r["recipe"]["stored_steps"]
        drawn = pair_steps(10, 3, seed=0, key=r["key"])
        assert len(drawn) == 3 and len(set(drawn)) == 3 and all(1 <= k <= 10 for k in drawn)
        for k in drawn:
            assert k in ks and (k - 1 in ks or k - 1 == 0)
        # nothing stored that is not part of a drawn pair
        assert set(ks) == ({k for k in drawn} | {k - 1 for k in drawn}) - {0}
        assert len(r["recipe"]["steps"]) == 10  # the recipe still describes all steps
        sets.add(tuple(ks))
        stored_total += 1 + len(ks)
    assert len(sets) > 1  # drawn per sample
    assert m["totals"]["frames_stored"] == stored_total
    # every stored pair replays exactly
    r = recs[0]
    frames = degrade.replay(r["recipe"], decode(r["clean"]))
    for k, _, data in r["frames"]:
        np.testing.assert_array_equal(frames[k], to_float(decode(data)))


def test_keep_every(tmp_path, capsys):
    out = _keep_build(tmp_path, capsys, "every:4")
    for r in records(out):
        assert [k for k, _, _ in r["frames"]] == [4, 8, 10]
    with tarfile.open(out / "shard-000000.tar") as tar:
        names = tar.getnames()
    assert names[:5] == ["sample-000000.clean.png", "sample-000000.json",
                         "sample-000000.s04.jpg", "sample-000000.s08.jpg",
                         "sample-000000.s10.jpg"]  # fmt: skip
    assert stored_steps({"mode": "every", "n": 5}, 10, seed=0, key="x") == [5, 10]
    assert stored_steps({"mode": "every", "n": 3}, 10, seed=0, key="x") == [3, 6, 9, 10]


def test_keep_none(tmp_path, capsys):
    out = _keep_build(tmp_path, capsys, "none")
    m = manifest(out)
    with tarfile.open(out / "shard-000000.tar") as tar:
        names = tar.getnames()
    assert names == [f"sample-00000{i}.{f}" for i in range(3) for f in ("clean.png", "json")]
    recs = records(out)
    assert all(r["frames"] == [] and len(r["recipe"]["steps"]) == 10 for r in recs)
    assert m["totals"]["frames_stored"] == 8
    # the steps can be regenerated from the clean frame and the recipe
    assert len(degrade.replay(recs[0]["recipe"], decode(recs[0]["clean"]))) == 11


# -- dry run ---------------------------------------------------------------------------------------


def test_dry_run_writes_nothing(tmp_path, wds_copy, capsys):
    out = tmp_path / "absent"
    rc, stdout, err = run(capsys, "build", *BASE, "--dry-run", "--out", out)
    assert rc == 0, err
    assert not out.exists()
    text = " ".join(stdout.split())
    assert "dry run, nothing written" in text
    assert f"{LIMIT} samples × {STEPS + 1} frames = {LIMIT * (STEPS + 1)} frames" in text
    assert "3 webdataset shards" in text and "estimated" in text and " s on " in text
    before = listing(wds_copy)
    rc, stdout, _ = run(capsys, "build", *BASE, "--steps", "7", "--dry-run", "--out", wds_copy)
    assert rc == 0
    assert listing(wds_copy) == before


# -- bad flags ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["--ops", "blur", "--steps", "0"], ["--steps", "0"]),
        (["--ops", "blur", "--steps", "-3"], ["--steps", "-3"]),
        (["--ops", "blur", "--steps", "x"], ["--steps", "'x'"]),
        (["--ops", "blur", "--steps", "4", "--keep", "every:0"], ["--keep", "every:0"]),
        (["--ops", "blur", "--steps", "4", "--keep", "pairs:9"], ["--keep", "pairs:9"]),
        (["--ops", "blur", "--steps", "4", "--keep", "some"], ["--keep", "some"]),
        (["--ops", "blur", "--steps", "4", "--format", "zip"], ["--format", "zip"]),
        (["--ops", "blur", "--steps", "4", "--codec", "nope"], ["--codec", "nope"]),
        (["--ops", "blur", "--steps", "4", "--shard-size", "0"], ["--shard-size", "0"]),
        (["--ops", "blur", "--steps", "4", "--limit", "0"], ["--limit", "0"]),
        (["--ops", "blur", "--steps", "4", "--workers", "0"], ["--workers", "0"]),
        (["--ops", "blur", "--steps", "4", "--size", "-1"], ["--size", "-1"]),
        (["--ops", "nosuch", "--steps", "4"], ["nosuch"]),
        (["--ops", "blur", "--steps", "4", "--split", "train=0.5"], ["split", "0.5"]),
        (["--ops", "blur", "--steps", "4", "--schedule", "nope"], ["schedule", "nope"]),
        (["--steps", "4"], ["--ops"]),
        (["--ops", "blur"], ["--steps"]),
        (["--ops", "blur", "--steps", "4", "--input", "/no/such/dir"], ["/no/such/dir"]),
    ],
)
def test_bad_flags_are_one_line_exit_2(tmp_path, capsys, argv, needles):
    out = tmp_path / "out"
    rc, stdout, err = run(capsys, "build", *argv, "--out", out)
    assert rc == 2
    line = one_error_line(err)
    for n in needles:
        assert n in line
    assert stdout == ""
    assert not out.exists()


# -- inspect ---------------------------------------------------------------------------------------


def test_inspect_prints_the_op_table_and_writes_the_sheet(wds, tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    rc, out, err = run(capsys, "inspect", wds, "--sheet", sheet, "--samples", "3")
    assert rc == 0, err
    lines = out.splitlines()
    assert "webdataset dataset" in lines[0]
    assert f"samples {LIMIT} in 3 shards" in out
    table = [line.split() for line in lines if line.strip().startswith(("blur ", "jpeg "))]
    assert [row[:2] for row in table] == [
        ["blur", "sigma"],
        ["blur", "kernel"],
        ["jpeg", "quality"],
    ]
    assert lines[-1].strip() == f"contact sheet: {sheet}"
    with Image.open(sheet) as im:
        assert im.format == "PNG"
        w, h = im.size
    assert w > 16 * (STEPS + 1) and h > 16 * 3
