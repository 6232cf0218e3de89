"""Parquet shards: pyarrow and Hugging Face datasets read them; bytes are deterministic."""

from __future__ import annotations

import hashlib
import io
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from degrade.errors import DegradeError
from degrade.image import encode_png
from degrade.shards import (
    HF_FEATURES,
    SCHEMA,
    ParquetWriter,
    is_temp_name,
    iter_parquet,
    iter_shard,
    shard_name,
    writer_for,
)

STEPS = 12


def make_records(n: int = 3, *, size: int = 8) -> tuple[list[dict], dict]:
    """Records with real PNG bytes, and the uint8 pixels they encode."""
    rng = np.random.default_rng(1)
    records, pixels = [], {}
    for i in range(n):
        key = f"img_{i}-{i:010x}"
        clean = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        pixels[(key, 0)] = clean
        frames = []
        for k in (1, 3, STEPS):
            arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            pixels[(key, k)] = arr
            frames.append((k, "png", encode_png(arr)))
        label = None if i == 0 else f"class{i % 2}"
        split = "train" if i < 2 else "val"
        recipe = {"key": key, "label": label, "split": split, "steps": [{"k": 1, "t": 0.25}]}
        records.append(
            {
                "key": key,
                "clean": encode_png(clean),
                "frames": frames,
                "recipe": recipe,
                "label": label,
                "split": split,
            }
        )
    return records, pixels


def write_shard(path, records, **kwargs):
    with ParquetWriter(path, steps=STEPS, **kwargs) as w:
        for r in records:
            w.write(r)
    return w.info


def test_roundtrip_through_own_reader(tmp_path):
    records, _ = make_records()
    path = tmp_path / shard_name(0, "parquet")
    info = write_shard(path, records)
    assert (info.name, info.samples, info.bytes) == ("shard-000000.parquet", 3, path.stat().st_size)
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert list(iter_parquet(path)) == records
    assert list(iter_shard(path)) == records
    with open(path, "rb") as f:
        assert list(iter_parquet(f)) == records


def test_schema_and_layout_read_by_pyarrow(tmp_path):
    records, _ = make_records()
    path = tmp_path / "s.parquet"
    write_shard(path, records)
    pf = pq.ParquetFile(path)
    schema = pf.schema_arrow
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    assert schema.names == ["key", "clean", "steps", "frames", "recipe", "label", "split"]
    assert [schema.field(n).type for n in schema.names] == [
        pa.string(),
        image,
        pa.list_(pa.field("element", pa.int32())),
        pa.list_(pa.field("element", image)),
        pa.string(),
        pa.string(),
        pa.string(),
    ]
    assert schema.equals(SCHEMA, check_metadata=False)
    assert json.loads(schema.metadata[b"huggingface"]) == HF_FEATURES
    table = pq.read_table(path)
    row = table.slice(1, 1).to_pylist()[0]
    key = records[1]["key"]
    assert row["clean"]["path"] == f"{key}.clean.png"
    assert [f["path"] for f in row["frames"]] == [
        f"{key}.s01.png",
        f"{key}.s03.png",
        f"{key}.s12.png",
    ]
    assert row["steps"] == [1, 3, 12]
    assert json.loads(row["recipe"]) == records[1]["recipe"]
    assert table.column("label").to_pylist() == [None, "class1", "class0"]
    assert table.column("split").to_pylist() == ["train", "train", "val"]
    rg = pf.metadata.row_group(0)
    for i in range(rg.num_columns):
        col = rg.column(i)
        if col.path_in_schema.startswith(("clean.", "frames.")):
            assert col.compression == "UNCOMPRESSED", col.path_in_schema
            assert not any("DICTIONARY" in e for e in col.encodings), col.path_in_schema
        else:
            assert col.compression == "ZSTD", col.path_in_schema


def test_matches_what_datasets_writes(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {
            "key": datasets.Value("string"),
            "clean": datasets.Image(),
            "steps": datasets.List(datasets.Value("int32")),
            "frames": datasets.List(datasets.Image()),
            "recipe": datasets.Value("string"),
            "label": datasets.Value("string"),
            "split": datasets.Value("string"),
        }
    )
    ds = datasets.Dataset.from_dict(
        {"key": [], "clean": [], "steps": [], "frames": [], "recipe": [], "label": [], "split": []},
        features=features,
    )
    ds.to_parquet(str(tmp_path / "hf.parquet"))
    theirs = pq.read_schema(tmp_path / "hf.parquet")
    assert theirs.equals(SCHEMA, check_metadata=False)
    assert theirs.metadata[b"huggingface"] == SCHEMA.metadata[b"huggingface"]


def test_load_dataset_decodes_images(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    records, pixels = make_records()
    path = tmp_path / "data" / "shard-000000.parquet"
    path.parent.mkdir()
    write_shard(path, records)
    ds = datasets.load_dataset(
        "parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert len(ds) == 3
    assert isinstance(ds.features["clean"], datasets.Image)
    row = ds[2]
    key = records[2]["key"]
    assert row["key"] == key and row["steps"] == [1, 3, STEPS]
    assert row["label"] == "class0" and row["split"] == "val"
    assert isinstance(row["clean"], Image.Image)
    assert all(isinstance(im, Image.Image) for im in row["frames"])
    np.testing.assert_array_equal(np.asarray(row["clean"]), pixels[(key, 0)])
    for k, image in zip(row["steps"], row["frames"], strict=True):
        np.testing.assert_array_equal(np.asarray(image), pixels[(key, k)])
    assert json.loads(row["recipe"]) == records[2]["recipe"]


def test_same_records_same_bytes(tmp_path):
    records, _ = make_records(5)
    a = write_shard(tmp_path / "a.parquet", records, row_group_rows=2)
    b = write_shard(tmp_path / "b.parquet", records, row_group_rows=2)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert a.sha256 == b.sha256


def test_row_groups_are_bounded(tmp_path):
    records, _ = make_records(5)
    write_shard(tmp_path / "rows.parquet", records, row_group_rows=2)
    assert pq.ParquetFile(tmp_path / "rows.parquet").metadata.num_row_groups == 3
    write_shard(tmp_path / "bytes.parquet", records, row_group_bytes=1)
    assert pq.ParquetFile(tmp_path / "bytes.parquet").metadata.num_row_groups == 5
    assert list(iter_parquet(tmp_path / "bytes.parquet", batch_size=2)) == records


def test_temp_name_and_atomic_rename(tmp_path):
    records, _ = make_records(1)
    path = tmp_path / "shard-000000.parquet"
    w = writer_for("parquet", path, steps=STEPS)
    assert isinstance(w, ParquetWriter)
    w.write(records[0])
    (tmp,) = os.listdir(tmp_path)
    assert is_temp_name(tmp) and not tmp.endswith(".parquet") and not path.exists()
    w.close()
    assert os.listdir(tmp_path) == [path.name]


def test_exception_inside_with_leaves_nothing(tmp_path):
    records, _ = make_records(2)
    with pytest.raises(RuntimeError), ParquetWriter(tmp_path / "x.parquet", steps=STEPS) as w:
        w.write(records[0])
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    with (
        pytest.raises(DegradeError, match="twice"),
        ParquetWriter(tmp_path / "y.parquet", steps=STEPS) as w,
    ):
        w.write(records[0])
        w.write(records[0])
    assert os.listdir(tmp_path) == []


def test_empty_shard(tmp_path):
    path = tmp_path / "e.parquet"
    assert write_shard(path, []).samples == 0
    assert list(iter_parquet(path)) == []
    assert pq.read_schema(path).equals(SCHEMA, check_metadata=False)


def test_corrupt_files_name_the_shard(tmp_path):
    records, _ = make_records(3)
    path = tmp_path / "shard-000004.parquet"
    write_shard(path, records)
    data = path.read_bytes()
    bad = tmp_path / "shard-000004.parquet"
    for broken in (data[: len(data) // 2], data[:-10], b"PAR1" + b"\0" * 100, b""):
        bad.write_bytes(broken)
        with pytest.raises(DegradeError, match=r"shard-000004\.parquet: "):
            list(iter_parquet(bad))
    # A flipped byte inside an (uncompressed) image page: caught by the page CRC.
    offset = data.index(records[1]["frames"][1][2][40:80])
    flipped = bytearray(data)
    flipped[offset] ^= 0xFF
    bad.write_bytes(bytes(flipped))
    with pytest.raises(DegradeError, match=r"shard-000004\.parquet: corrupt"):
        list(iter_parquet(bad))
    with pytest.raises(DegradeError, match="cannot open"):
        list(iter_parquet(tmp_path / "missing.parquet"))


def test_foreign_parquet_is_refused(tmp_path):
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"image": [b"x"]}), path)
    with pytest.raises(DegradeError, match=r"other\.parquet: not a degrade shard"):
        list(iter_parquet(path))


def test_iter_shard_and_writer_for_refuse_unknown(tmp_path):
    with pytest.raises(DegradeError, match="unknown shard type"):
        iter_shard(tmp_path / "x.zip")
    with pytest.raises(DegradeError, match="webdataset, parquet"):
        writer_for("zip", tmp_path / "x.zip", steps=2)
    with pytest.raises(DegradeError, match="webdataset, parquet"):
        shard_name(0, "csv")
    with pytest.raises(DegradeError, match="steps"):
        ParquetWriter(tmp_path / "z.parquet", steps=0)
    assert os.listdir(tmp_path) == []


def test_reads_from_a_file_object(tmp_path):
    records, _ = make_records(2)
    path = tmp_path / "s.parquet"
    write_shard(path, records)
    assert list(iter_parquet(io.BytesIO(path.read_bytes()), name="mem.parquet")) == records
