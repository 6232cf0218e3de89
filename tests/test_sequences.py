"""External sequences: --input sequences:DIR packs progressions made elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from degrade import DegradeError, build, replay, verify
from degrade.cli import main
from degrade.shards import iter_shard
from degrade.verify import decode_frame


def _make(root, name, steps, shape=(12, 10, 3), start=0):
    d = root / name
    d.mkdir(parents=True)
    frames = []
    for i, n in enumerate(steps):
        arr = np.full(shape, (start + 20 * i) % 256, np.uint8)
        arr[0, 0] = i
        Image.fromarray(arr if shape[2] == 3 else arr[:, :, 0]).save(d / f"{n}.png")
        frames.append(arr)
    return frames


def test_sequences_are_stored_as_given_in_numeric_order(tmp_path):
    root = tmp_path / "runs"
    a = _make(root, "latent-a", [0, 9, 10, 100])  # 10 after 9: numeric, not text order
    b = _make(root, "latent-b", [0, 1, 2, 3], start=7)
    out = tmp_path / "out"
    res = build([f"sequences:{root}"], size=0, out=out, workers=1, split="train=1", progress=False,
                log=lambda s: None)
    assert res.manifest["steps"] == 3 and res.manifest["samples"] == 2
    recs = {r["recipe"]["source"]["id"]: r for r in iter_shard(out / "shard-000000.tar")}
    for sid, frames in (("sequences/latent-a", a), ("sequences/latent-b", b)):
        r = recs[sid]
        assert r["recipe"]["external"] is True
        assert len(r["recipe"]["source"]["sha256"]) == 4
        assert np.array_equal(decode_frame("png", r["clean"]), frames[0])
        for k, ext, data in r["frames"]:
            assert np.array_equal(decode_frame(ext, data), frames[k])
    assert recs["sequences/latent-a"]["recipe"]["source"]["steps"] == [0, 9, 10, 100]
    assert verify(out).ok
    with pytest.raises(DegradeError, match="is an external sequence"):
        r = recs["sequences/latent-a"]
        replay(r["recipe"], decode_frame("png", r["clean"]))


def test_mismatched_sequences_are_skipped_with_a_reason(tmp_path):
    root = tmp_path / "runs"
    _make(root, "a", [0, 1, 2])
    _make(root, "b", [0, 1])
    (root / "c").mkdir()
    (root / "c" / "first.png").write_bytes(b"")
    (root / "c" / "1.png").write_bytes(b"")
    res = build([f"sequences:{root}"], size=8, out=tmp_path / "o", workers=1, progress=False,
                log=lambda s: None)
    assert res.manifest["samples"] == 1
    reasons = {s["source"]: s["reason"] for s in res.manifest["skipped"]}
    assert "has 2 frames, the build expects 3" in reasons["sequences/b"]
    assert "frame 'first.png' is not named by its step number" in reasons["sequences/c"]


def test_sequence_errors_from_the_cli(tmp_path, capsys):
    root = tmp_path / "runs"
    _make(root, "a", [0, 1, 2])
    assert main(["build", "--input", f"sequences:{root}", "--ops", "blur", "--out", str(tmp_path / "x")]) == 2
    assert "carry their own frames" in capsys.readouterr().err
    assert main(["build", "--input", f"sequences:{root}", "--keep", "none", "--out", str(tmp_path / "x")]) == 2
    assert "external sequences cannot be replayed" in capsys.readouterr().err
    assert main(["build", "--input", f"sequences:{tmp_path / 'nope'}", "--out", str(tmp_path / "x")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["build", "--input", f"sequences:{root}", "--out", str(tmp_path / "ok"), "--size", "8",
                 "--quiet"]) == 0
