"""Cluster builds: the same shard tasks under joblib's Dask and Ray backends, same bytes."""

from __future__ import annotations

import pytest

from degrade import DegradeError, build

KW = dict(ops="blur,jpeg,noise", steps=6, limit=36, size=24, shard_size=8, progress=False, log=lambda s: None)


def _shas(result):
    return [(s["name"], s["sha256"]) for s in result.manifest["shards"]]


@pytest.fixture(scope="module")
def local_build(tmp_path_factory):
    return build(None, out=tmp_path_factory.mktemp("loky"), workers=2, **KW)


def test_dask_local_cluster_gives_the_loky_bytes(local_build, tmp_path):
    pytest.importorskip("dask.distributed")
    res = build(None, out=tmp_path / "dask", workers=2, backend="dask", **KW)
    assert _shas(res) == _shas(local_build)
    assert len(_shas(res)) == 5
    assert res.manifest["timings"]["backend"] == "dask"
    assert res.manifest["samples"] == local_build.manifest["samples"] == 36


def test_dask_external_scheduler_address(local_build, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        res = build(None, out=tmp_path / "dask-addr", workers=2, backend="dask",
                    scheduler=cluster.scheduler_address, **KW)
        with distributed.Client(cluster) as client:
            # The nanny's MALLOC_TRIM_THRESHOLD_ is undone in the worker, once (build_shard
            # did it already: a second call does nothing), and only in a Dask worker.
            got = client.submit(_malloc_state, pure=False).result()
    assert _shas(res) == _shas(local_build)
    assert got == ("65536", True, False)


def _malloc_state():
    import os

    import degrade.parallel as B

    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), B._malloc_tuned, B.tune_malloc_in_dask_worker()


def test_malloc_is_left_alone_outside_dask_workers(monkeypatch):
    import degrade.parallel as B

    pytest.importorskip("dask.distributed")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.setattr(B, "_malloc_tuned", False)
    assert B.tune_malloc_in_dask_worker() is False and B._malloc_tuned is False


@pytest.mark.slow
def test_ray_local_gives_the_loky_bytes(local_build, tmp_path):
    pytest.importorskip("ray")
    res = build(None, out=tmp_path / "ray", workers=2, backend="ray", **KW)
    assert _shas(res) == _shas(local_build)
    assert res.manifest["timings"]["backend"] == "ray"


def test_backend_errors(tmp_path):
    with pytest.raises(DegradeError, match="--backend 'spark' unknown; choose from loky, dask, ray"):
        build(None, out=tmp_path / "x", backend="spark", **KW)
    with pytest.raises(DegradeError, match="--scheduler goes with --backend dask or ray"):
        build(None, out=tmp_path / "x", scheduler="tcp://127.0.0.1:1", **KW)
