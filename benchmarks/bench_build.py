"""Build throughput: `degrade build --ops blur,jpeg --steps 50` vs a hand loop vs its kernels.

Issues 3 and 8. One invocation runs, interleaved and repeated (medians reported; the
machine is shared and noisy), on the same sample-pool images:

- ``degrade 2w``: the command itself, ``python -m degrade build --ops blur,jpeg --steps 50``
  (at 64 px: exactly the bare command, all cores; at 256 px: ``--size 256 --limit N
  --shard-size M``), and ``degrade 1w`` the same with ``--workers 1``;
- ``hand 1p`` / ``hand 2p``: the same work written the way users write it today: per step
  an albumentations ``GaussianBlur`` at the step's σ then ``ImageCompression`` at its JPEG
  quality (σ and quality taken from degrade's own plan), every frame PNG-encoded with
  ``cv2.imencode`` into ``webdataset.ShardWriter``; one process, and a
  ``multiprocessing.Pool`` of 2 over the same shards. ``hand-cv2 1p``: the same with
  OpenCV calls only (``cv2.GaussianBlur``, ``cv2.imencode``/``imdecode`` JPEG);
- ``kernels 1t``: the limit: the kernels the build calls for those frames (the blur as the
  op computes it in a sequence, clip, quantise, JPEG encode, PNG of the clean frame), back
  to back in one thread, plus writing the bytes to a file; no pipeline, recipe, tar or
  process pool;
- scaling: ``degrade 2w`` vs ``degrade 1w`` on a longer build (1000 samples at 256 px, the
  bare command's sample count), where a build's fixed start-up weighs as in real use.

Every variant loads its images with ``degrade.sources.load_item`` inside its timed region,
so loading is timed equally everywhere. Each variant runs in its own subprocess; "s" is the
work's own time (the build's ``timings.seconds`` in its manifest; the hand loop's and the
kernels' loop incl. the process pool), "wall" the whole command incl. interpreter start and
imports, "frames/CPU-s" frames per CPU-second of the whole command and its worker processes
(what other load on a shared machine disturbs least; "others' CPU %" says how busy the rest
of the machine was).

    python benchmarks/bench_build.py            # full: 64 px bare command + 256 px, 3 rounds
    python benchmarks/bench_build.py --quick    # smoke run (~30-40 s on 2 quiet cores)
    python benchmarks/bench_build.py --profile  # where one build_shard at 256 px spends its time
    python benchmarks/bench_build.py --what-if  # the build's per-step kernel path vs cheaper ones
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    cpu_count,
    machine_note,
    median,
    pool_images,
    run_child,
    spread,
    step_params,
    table,
)

OPS = "blur,jpeg"
STEPS = 50
THIS = str(Path(__file__).resolve())


# ---------------------------------------------------------------------------- children


def _chunks(items: list[Any], n: int) -> list[list[Any]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


_HAND: dict[str, Any] = {}


def _hand_setup(lib: str) -> None:
    """Per process: the per-step transforms, built once (as a careful user would)."""
    if _HAND.get("lib") == lib:
        return
    params = step_params(OPS, STEPS)
    _HAND["lib"] = lib
    _HAND["params"] = params
    if lib == "alb":
        import albumentations as A

        _HAND["augs"] = [
            A.Compose([
                A.GaussianBlur(blur_limit=0, sigma_limit=(b["sigma"], b["sigma"]), p=1.0),
                A.ImageCompression(compression_type="jpeg",
                                   quality_range=(j["quality"], j["quality"]), p=1.0),
            ])
            for b, j in params
        ]


def _hand_sample(item: Any, size: int) -> dict[str, Any]:
    """One sample as users write it: clean + 50 steps, each PNG-encoded with OpenCV."""
    import cv2

    from degrade.sources import load_item

    img, _ = load_item(item, size=size)  # RGB uint8
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)  # never for the pool (RGB photos)
    lib = _HAND["lib"]
    if lib == "cv2":
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)  # OpenCV users hold BGR
    sample: dict[str, Any] = {"__key__": item.key,
                              "clean.png": cv2.imencode(".png", img)[1].tobytes()}
    sigmas, qualities = [], []
    for k, (b, j) in enumerate(_HAND["params"], start=1):
        if lib == "alb":
            x = _HAND["augs"][k - 1](image=img)["image"]
        else:
            x = cv2.GaussianBlur(img, (0, 0), sigmaX=b["sigma"])
            _, buf = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, int(j["quality"])])
            x = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        sample[f"s{k:02d}.png"] = cv2.imencode(".png", x)[1].tobytes()
        sigmas.append(b["sigma"])
        qualities.append(j["quality"])
    sample["json"] = {"sigma": sigmas, "quality": qualities}
    return sample


def _hand_shard(args: tuple[int, list[Any], str, int, str]) -> int:
    index, items, lib, size, out = args
    import webdataset as wds

    _hand_setup(lib)
    with wds.ShardWriter(os.path.join(out, f"hand-{index:06d}-%06d.tar"),
                         maxcount=10**9, verbose=0) as sink:
        for item in items:
            sink.write(_hand_sample(item, size))
    return len(items)


def child_hand(a: argparse.Namespace) -> dict[str, Any]:
    import webdataset as wds

    from degrade.sources import list_sources

    items = list_sources(None, limit=a.limit)
    _hand_setup(a.lib)
    t0 = time.perf_counter()
    if a.procs == 1:
        # One process, one ShardWriter rolling over every shard_size samples.
        with wds.ShardWriter(os.path.join(a.out, "hand-%06d.tar"), maxcount=a.shard_size,
                             verbose=0) as sink:
            for item in items:
                sink.write(_hand_sample(item, a.size))
    else:
        import multiprocessing as mp

        tasks = [(i, c, a.lib, a.size, a.out) for i, c in enumerate(_chunks(items, a.shard_size))]
        with mp.get_context("fork").Pool(a.procs) as pool:
            for _ in pool.imap_unordered(_hand_shard, tasks):
                pass
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "frames": len(items) * (STEPS + 1), "bytes": _du(a.out)}


def child_kernels(a: argparse.Namespace) -> dict[str, Any]:
    """The limit: the build's kernels for these frames, one thread, plus writing the bytes.

    The very image operations the build performs: per step the blur as the op computes it
    in a sequence (from an earlier step with the remaining σ where it can:
    ``blur_advance``), the clip, the quantise and the JPEG encode whose bytes are stored
    (OpenCV's encoder, Pillow's bytes); per sample the load and the clean frame's PNG.
    """
    import cv2

    from degrade.image import encode_png, to_float, to_uint8
    from degrade.ops.blur import blur, blur_advance
    from degrade.ops.compression import encode_jpeg
    from degrade.registry import get_op
    from degrade.sources import list_sources, load_item

    cv2.setNumThreads(1)
    op_blur = get_op("blur")
    params = step_params(OPS, STEPS)
    items = list_sources(None, limit=a.limit)
    parts = dict.fromkeys(["load", "to_float", "blur", "quantise", "jpeg_encode", "png_clean",
                           "write"], 0.0)
    pc = time.thread_time  # CPU time of this thread: the parts are not inflated by other load
    jpg = [cv2.IMWRITE_JPEG_QUALITY, 50]
    # The JPEG encode below is encode_jpeg's body with its to_uint8 timed apart; check once
    # that it gives encode_jpeg's bytes.
    probe = to_float(load_item(items[0], size=a.size)[0])
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(to_uint8(probe), cv2.COLOR_RGB2BGR), jpg)
    assert ok and buf.tobytes() == encode_jpeg(probe, quality=50)
    t_start = time.perf_counter()
    for s, chunk in enumerate(_chunks(items, a.shard_size)):
        with open(os.path.join(a.out, f"kernels-{s:06d}.bin"), "wb") as f:
            for item in chunk:
                t0 = pc()
                img, _ = load_item(item, size=a.size)
                t1 = pc()
                x = to_float(img)
                t2 = pc()
                png = encode_png(img, compress_level=1)
                t3 = pc()
                f.write(png)
                t4 = pc()
                parts["load"] += t1 - t0
                parts["to_float"] += t2 - t1
                parts["png_clean"] += t3 - t2
                parts["write"] += t4 - t3
                history: list[tuple[dict[str, Any], np.ndarray]] = []
                for b, j in params:
                    t0 = pc()
                    y = blur_advance(history, b)
                    y = np.clip(blur(x, **b) if y is None else y, 0.0, 1.0)
                    history = op_blur.remember(history, b, y)  # as execute keeps it
                    t1 = pc()
                    u = cv2.cvtColor(to_uint8(y), cv2.COLOR_RGB2BGR)
                    t2 = pc()
                    jpg[1] = int(j["quality"])
                    data = cv2.imencode(".jpg", u, jpg)[1].tobytes()
                    t3 = pc()
                    f.write(data)
                    t4 = pc()
                    parts["blur"] += t1 - t0
                    parts["quantise"] += t2 - t1
                    parts["jpeg_encode"] += t3 - t2
                    parts["write"] += t4 - t3
    seconds = time.perf_counter() - t_start
    return {"seconds": seconds, "frames": len(items) * (STEPS + 1), "bytes": _du(a.out),
            "parts": parts}


def child_profile_target(a: argparse.Namespace) -> dict[str, Any]:
    """Build ``a.shards`` shards of ``a.shard_size`` samples in this process (for py-spy)."""
    import importlib

    from degrade.sources import load_item

    B = importlib.import_module("degrade.build")  # the module (degrade.build is also a function)

    n = a.shard_size * a.shards
    # The config exactly as `degrade build` makes it (a dry run writes nothing).
    plan = B.build(None, ops=OPS, steps=STEPS, size=a.size, limit=n, shard_size=a.shard_size,
                   dry_run=True, progress=False, log=lambda s: None).plan
    cfg = plan["config"]
    from degrade.sources import list_sources

    items = list_sources(None, limit=n)
    for it in items[: a.shard_size]:  # warm the photo cache: a long build pays it once
        load_item(it, size=a.size)
    t0 = time.perf_counter()
    for s, chunk in enumerate(_chunks(items, a.shard_size)):
        name = f"shard-{s:06d}.tar"
        B.build_shard(B.ShardTask(s, name, os.path.join(a.out, name), chunk, cfg))
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "frames": len(items) * (STEPS + 1)}


def _du(path: str) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# ---------------------------------------------------------------------------- driver


def _variants(size: int, limit: int, shard: int, bare: bool, names: list[str]
              ) -> list[tuple[str, list[str]]]:
    py = sys.executable
    common = ["--size", str(size), "--limit", str(limit), "--shard-size", str(shard)]
    deg = [py, "-m", "degrade", "build", "--ops", OPS, "--steps", str(STEPS)]
    if not bare:
        deg += common
    out = []
    for name in names:
        if name == "degrade 2w":
            out.append((name, [*deg, "--workers", "2"] if cpu_count() != 2 else deg))
        elif name == "degrade 1w":
            out.append((name, [*deg, "--workers", "1"]))
        elif name.startswith("hand"):
            lib = "cv2" if "cv2" in name else "alb"
            procs = "2" if name.endswith("2p") else "1"
            out.append((name, [py, THIS, "--child", "hand", "--lib", lib, "--procs", procs,
                               *common]))
        elif name == "kernels 1t":
            out.append((name, [py, THIS, "--child", "kernels", *common]))
    return out


def _run_variant(cmd: list[str], tmp: str) -> dict[str, Any]:
    out = tempfile.mkdtemp(prefix="run-", dir=tmp)
    try:
        full = [*cmd, "--out", out]
        wall, data, _ = run_child(full)
        if "degrade" in cmd and "build" in cmd:
            m = json.loads((Path(out) / "manifest.json").read_text())
            data = {**data, "seconds": m["timings"]["seconds"],
                    "frames": m["totals"]["frames_computed"], "bytes": m["totals"]["bytes"],
                    "workers": m["timings"]["workers"]}
        data["wall"] = wall
        return data
    finally:
        shutil.rmtree(out, ignore_errors=True)


def bench_size(label: str, size: int, limit: int, shard: int, bare: bool, rounds: int,
               names: list[str], tmp: str) -> dict[str, dict[str, list[Any]]]:
    variants = _variants(size, limit, shard, bare, names)
    res: dict[str, dict[str, list[Any]]] = {n: {"fps": [], "wall_fps": [], "s": [], "bytes": [],
                                                "parts": [], "cpu_fps": [], "others": []} for n, _ in variants}
    print(f"\n## {label}: {limit} samples × {STEPS + 1} frames, {size} px, shards of {shard}, "
          f"{rounds} rounds", flush=True)
    for r in range(rounds):
        order = variants[r % len(variants):] + variants[: r % len(variants)]
        for name, cmd in order:
            d = _run_variant(cmd, tmp)
            fps = d["frames"] / d["seconds"]
            res[name]["fps"].append(fps)
            res[name]["wall_fps"].append(d["frames"] / d["wall"])
            res[name]["s"].append(d["seconds"])
            res[name]["bytes"].append(d["bytes"])
            res[name]["cpu_fps"].append(d["frames"] / d["cpu"])
            res[name]["others"].append(d["others"])
            if "parts" in d:
                res[name]["parts"].append(d["parts"])
            print(f"  round {r + 1} {name:12s} {fps:8.0f} frames/s  ({d['seconds']:.1f} s, "
                  f"wall {d['wall']:.1f} s, cpu {d['cpu']:.1f} s, others {100 * d['others']:.0f}%)",
                  flush=True)
    rows = []
    for name, _ in variants:
        v = res[name]
        rows.append([name, f"{median(v['fps']):,.0f}", spread(v["fps"]),
                     f"{median(v['wall_fps']):,.0f}", f"{median(v['cpu_fps']):,.0f}",
                     f"{median(v['s']):.1f}", f"{median(v['bytes']) / 2**20:,.1f}",
                     f"{100 * median(v['others']):.0f}"])
    print()
    print(table(rows, ["variant", "frames/s", "range", "wall frames/s", "frames/CPU-s", "s",
                       "MB written", "others' CPU %"]))
    return res


def ratios(label: str, res: dict[str, dict[str, list[Any]]]) -> list[str]:
    """The ratios of issues 3 and 8, from medians.

    Three readings of each: the work's own time (``s``), the whole command's wall clock,
    and CPU time (frames per CPU-second of the whole command: what other load on a shared
    machine disturbs least; for a ratio between 2 workers and 1 it measures efficiency, not
    speed-up, so it is left out there).
    """
    def fps(n: str, key: str = "fps") -> float:
        return median(res[n][key]) if n in res and res[n][key] else float("nan")

    lines = [f"ratios, {label} (medians; work time, [wall], (CPU)):"]

    def add(text: str, a: str, b: str, target: str = "", scale: float = 1.0,
            cpu: bool = True) -> None:
        r = fps(a) / fps(b) * scale
        rw = fps(a, "wall_fps") / fps(b, "wall_fps") * scale
        rc = f"({fps(a, 'cpu_fps') / fps(b, 'cpu_fps'):5.2f}×)" if cpu else " " * 8
        lines.append(f"  {text:50s} {r:5.2f}×  [{rw:5.2f}×]  {rc}  {target}")

    if "degrade 2w" in res and "hand 1p" in res:
        add("degrade 2w / hand 1p  (frames/s)", "degrade 2w", "hand 1p", "target ≥ 3×")
    if "degrade 2w" in res and "hand 2p" in res:
        add("degrade 2w / hand 2p  (frames/s)", "degrade 2w", "hand 2p", "target ≥ 3×")
    if "degrade 1w" in res and "hand 1p" in res:
        add("degrade 1w / hand 1p  (frames/s)", "degrade 1w", "hand 1p")
    if "hand-cv2 1p" in res and "degrade 2w" in res:
        add("degrade 2w / hand-cv2 1p  (frames/s)", "degrade 2w", "hand-cv2 1p")
    if "kernels 1t" in res:
        if "degrade 1w" in res:
            add("build time / kernel limit, 1 worker vs 1 thread", "kernels 1t", "degrade 1w",
                "target ≤ 1.3×")
        if "degrade 2w" in res:
            r = fps("kernels 1t") / fps("degrade 2w") * 2
            rw = fps("kernels 1t", "wall_fps") / fps("degrade 2w", "wall_fps") * 2
            rc = fps("kernels 1t", "cpu_fps") / fps("degrade 2w", "cpu_fps")
            lines.append(f"  {'build time / (kernel limit / 2), 2 workers':50s} {r:5.2f}×  "
                         f"[{rw:5.2f}×]  ({rc:5.2f}×)  target ≤ 1.3×")
    if "degrade 2w" in res and "degrade 1w" in res:
        add("scaling degrade 2 workers / 1 worker", "degrade 2w", "degrade 1w", "target ≥ 1.8×",
            cpu=False)
    if "hand 2p" in res and "hand 1p" in res:
        add("scaling hand loop 2 processes / 1", "hand 2p", "hand 1p", cpu=False)
    return lines


def fixed_costs(rounds: int, tmp: str) -> None:
    """What a build costs before and after its frames: 4 one-sample shards at 64 px."""
    py = sys.executable
    base = [py, "-m", "degrade", "build", "--ops", OPS, "--steps", str(STEPS), "--limit", "4",
            "--shard-size", "1"]
    cmds = [("degrade 1w, 4 samples", [*base, "--workers", "1"]),
            ("degrade 2w, 4 samples", [*base, "--workers", "2"])]
    got: dict[str, dict[str, list[float]]] = {n: {"s": [], "wall": []} for n, _ in cmds}
    for r in range(rounds):
        for name, cmd in (cmds if r % 2 == 0 else cmds[::-1]):
            d = _run_variant(cmd, tmp)
            got[name]["s"].append(d["seconds"])
            got[name]["wall"].append(d["wall"])
    rows = [[n, f"{median(v['s']):.2f}", f"{median(v['wall']):.2f}"] for n, v in got.items()]
    print("\n## fixed cost of a build (4 samples × 51 frames at 64 px, 4 shards; "
          f"{rounds} rounds)")
    print(table(rows, ["command", "build s (manifest)", "wall s"]))
    d = median(got["degrade 2w, 4 samples"]["s"]) - median(got["degrade 1w, 4 samples"]["s"])
    print(f"a 2-worker build starts and stops its pool in ~{d:.1f} s more than a 1-worker one")


def kernel_breakdown(res: dict[str, dict[str, list[Any]]]) -> str | None:
    if "kernels 1t" not in res or not res["kernels 1t"]["parts"]:
        return None
    parts = res["kernels 1t"]["parts"]
    frames = median(res["kernels 1t"]["s"]) * median(res["kernels 1t"]["fps"])
    total = median([sum(p.values()) for p in parts])
    rows = []
    for k in parts[0]:
        v = median([p[k] for p in parts])
        rows.append([k, f"{v / frames * 1e3:.3f}", f"{100 * v / total:.1f}"])
    rows.append(["total", f"{total / frames * 1e3:.3f}", "100.0"])
    return table(rows, ["kernel (per frame)", "ms/frame", "%"])


# ---------------------------------------------------------------------------- what if


def _to_uint8_inplace(x: np.ndarray) -> np.ndarray:
    """degrade.image.to_uint8 (round half up, clipped) with one temporary instead of three."""
    t = np.multiply(x, np.float32(255.0))
    t += np.float32(0.5)
    np.clip(t, 0.0, 255.0, out=t)
    return t.astype(np.uint8)


def tune_malloc() -> bool:
    """Keep freed memory in the process (glibc): large temporaries stop costing page faults.

    glibc hands blocks above its (dynamic) mmap threshold back to the kernel on free and
    trims the heap top above 2× that threshold, so a loop that allocates a few 0.8 MB
    float frames per step faults every page back in (~280 faults a step at 256 px).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_trim_threshold, 256 << 20)) and bool(
            libc.mallopt(m_mmap_threshold, 64 << 20))
    except (OSError, AttributeError):
        return False


def child_what_if(a: argparse.Namespace) -> dict[str, Any]:
    """Per-step cost of the build's kernel path for blur,jpeg and of cheaper paths that
    store the same bytes; one thread, CPU time, interleaved rounds, medians.

    "current" is the path as the build ran it before commit 93c489d (Pillow's JPEG encoder,
    a direct blur per step); the table is the record of why the build changed.
    """
    import resource

    import cv2

    tuned = tune_malloc() if a.mallopt else False
    from degrade.image import encode_png, to_float, to_uint8
    from degrade.ops.blur import blur
    from degrade.ops.compression import _encode_jpeg_pil, decode_jpeg
    from degrade.registry import get_op

    def encode_jpeg(x: np.ndarray, quality: int) -> bytes:  # the Pillow encoder, as before
        return _encode_jpeg_pil(to_uint8(x), quality)

    cv2.setNumThreads(1)
    params = step_params(OPS, STEPS)
    imgs = [img for _, img in pool_images(a.whatif_samples, a.size)]
    op_blur = get_op("blur")

    def cv2_jpeg(u: np.ndarray, q: int) -> bytes:
        return cv2.imencode(".jpg", cv2.cvtColor(u, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, q])[1].tobytes()

    def current(img: np.ndarray) -> list[bytes]:
        # Pipeline.execute, absolute mode: Op.apply (kernel + clip), encode, decode.
        x = to_float(img)
        out = []
        for b, j in params:
            data = encode_jpeg(op_blur.apply(x, b), **j)
            decode_jpeg(data)
            out.append(data)
        return out

    def no_decode(img: np.ndarray) -> list[bytes]:
        x = to_float(img)
        return [encode_jpeg(op_blur.apply(x, b), **j) for b, j in params]

    def inplace_u8(img: np.ndarray) -> list[bytes]:
        # current, with to_uint8 done in place (fewer large temporaries)
        x = to_float(img)
        out = []
        for b, j in params:
            u = _to_uint8_inplace(op_blur.apply(x, b))
            buf = io.BytesIO()
            Image.fromarray(u).save(buf, format="JPEG", quality=int(j["quality"]), subsampling=2,
                                    optimize=False, progressive=False)
            data = buf.getvalue()
            decode_jpeg(data)
            out.append(data)
        return out

    def cv2_path(img: np.ndarray, fast_u8: bool = False, clip: bool = True) -> list[bytes]:
        x = to_float(img)
        out = []
        for b, j in params:
            y = op_blur.apply(x, b) if clip else blur(x, **b)
            u = _to_uint8_inplace(y) if fast_u8 else to_uint8(y)
            out.append(cv2_jpeg(u, int(j["quality"])))
        return out

    def incremental(img: np.ndarray) -> list[bytes]:
        # NOT the same bytes: step k blurred from step k-1 (float) with the remaining
        # sigma sqrt(s_k^2 - s_{k-1}^2), as issue 8 suggests (needs a new op version).
        x = to_float(img)
        out, prev, s_prev = [], x, 0.0
        for b, j in params:
            s = b["sigma"]
            prev = blur(prev, sigma=(s * s - s_prev * s_prev) ** 0.5)
            s_prev = s
            out.append(cv2_jpeg(_to_uint8_inplace(prev), int(j["quality"])))
        return out

    import io

    from PIL import Image

    variants = {
        "current: Op.apply(blur) + clip, encode_jpeg (PIL), decode_jpeg": current,
        "current, to_uint8 in place": inplace_u8,
        "no JPEG decode (the jpg bytes are what is stored)": no_decode,
        "no decode, cv2.imencode for JPEG (same bytes)": cv2_path,
        "no decode, cv2.imencode, to_uint8 in place": lambda i: cv2_path(i, fast_u8=True),
        "... and no clip in Op.apply": lambda i: cv2_path(i, True, False),
        "incremental blur + the above (NOT the same bytes)": incremental,
    }
    ref = [current(img) for img in imgs]
    same = {n: all(f(img) == r for img, r in zip(imgs, ref)) for n, f in variants.items()}
    times: dict[str, list[float]] = {n: [] for n in variants}
    faults: dict[str, list[float]] = {n: [] for n in variants}
    names = list(variants)
    for r in range(a.whatif_rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.process_time()
            for img in imgs:
                variants[name](img)
            times[name].append((time.process_time() - t0) / (len(imgs) * STEPS))
            faults[name].append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
                                / (len(imgs) * STEPS))
    png: dict[str, float] = {}
    encs = {
        "encode_png (PIL, level 1)": lambda u: encode_png(u, compress_level=1),
        "cv2 PNG level 1, FILTERED strategy (same size)": lambda u: cv2.imencode(
            ".png", cv2.cvtColor(u, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY,
             cv2.IMWRITE_PNG_STRATEGY_FILTERED])[1].tobytes(),
    }
    for n, f in encs.items():
        ts = []
        for _ in range(3):
            t0 = time.process_time()
            for img in imgs:
                f(img)
            ts.append((time.process_time() - t0) / len(imgs))
        png[n] = median(ts)
    return {"tuned": tuned, "names": names, "same": same,
            "ms": {n: median(v) * 1e3 for n, v in times.items()},
            "faults": {n: median(v) for n, v in faults.items()},
            "png_ms": {n: v * 1e3 for n, v in png.items()}}


def what_if(a: argparse.Namespace) -> None:
    """Run :func:`child_what_if` with glibc's default malloc settings and with
    :func:`tune_malloc` (separate processes: the setting is process-wide)."""
    cmd = [sys.executable, THIS, "--child", "what-if", "--size", str(a.profile_size),
           "--whatif-samples", str(a.whatif_samples), "--whatif-rounds", str(a.whatif_rounds)]
    runs = {}
    for label, extra in (("default malloc", []), ("tuned malloc", ["--mallopt"])):
        runs[label] = run_child([*cmd, *extra])[1]
    d, t = runs["default malloc"], runs["tuned malloc"]
    base = d["ms"][d["names"][0]]
    rows = [[n, f"{d['ms'][n]:.3f}", f"{d['faults'][n]:.0f}", f"{t['ms'][n]:.3f}",
             f"{t['faults'][n]:.0f}", f"{base / t['ms'][n]:.2f}×", "yes" if d["same"][n] else "no"]
            for n in d["names"]]
    print(f"\n## what if: per-step kernel path of blur,jpeg at {a.profile_size} px, "
          f"{a.whatif_samples} samples × {STEPS} steps, {a.whatif_rounds} rounds, one thread, "
          "CPU time")
    print(table(rows, ["path", "ms/step", "faults/step", "ms/step, tuned malloc",
                       "faults/step, tuned", "speed-up vs current (tuned)", "same bytes"]))
    if not t["tuned"]:
        print("(mallopt unavailable here: the 'tuned' columns are default malloc)")
    prow = [[n, f"{d['png_ms'][n]:.2f}", f"{t['png_ms'][n]:.2f}"] for n in d["png_ms"]]
    print(table(prow, ["clean-frame PNG", "ms/sample", "ms/sample, tuned malloc"]))


# ---------------------------------------------------------------------------- profile

_CATEGORIES = [  # (label, function name, file suffix); the deepest match in a stack wins
    ("load + resize", "load_item", "degrade/sources.py"),
    ("blur", "blur", "degrade/ops/blur.py"),
    ("quantise (to_uint8)", "to_uint8", "degrade/image.py"),
    ("to_float", "to_float", "degrade/image.py"),
    ("jpeg encode", "encode_jpeg", "degrade/ops/compression.py"),
    ("jpeg decode", "decode_jpeg", "degrade/ops/compression.py"),
    ("png encode", "encode_png", "degrade/image.py"),
    ("recipe build (plan, dicts)", "recipe", "degrade/pipeline.py"),
    ("recipe JSON", "recipe_json", "degrade/shards/webdataset.py"),
    ("tar write (headers, sha256, file)", "write", "degrade/shards/webdataset.py"),
    ("tar write (headers, sha256, file)", "close", "degrade/shards/webdataset.py"),
    ("clip of every op output (Op.apply)", "apply", "degrade/registry.py"),
    ("pipeline orchestration (execute)", "execute", "degrade/pipeline.py"),
]


def _categorise(frame_stack: list[str]) -> str:
    for fr in reversed(frame_stack):  # leaf first
        name, _, rest = fr.partition(" (")
        name = name.rsplit(".", 1)[-1]  # py-spy writes Class.method
        for label, fn, suffix in _CATEGORIES:
            if name == fn and suffix in rest:
                return label
    return "other (build_shard loop, stored_steps, ...)"


def profile(a: argparse.Namespace, tmp: str) -> None:
    out = tempfile.mkdtemp(prefix="prof-", dir=tmp)
    target = [sys.executable, THIS, "--child", "profile-target", "--size", str(a.profile_size),
              "--shard-size", "32", "--shards", str(a.profile_shards), "--out", out]
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    raw = os.path.join(tmp, "profile.txt")
    print(f"\n## profile of build_shard at {a.profile_size} px ({a.profile_shards} × 32 samples, "
          "one process, photo cache warm)")
    if os.path.exists(spy):
        subprocess.run([spy, "record", "--format", "raw", "--rate", "250", "-o", raw, "--",
                        *target], check=True, capture_output=True)
        counts: dict[str, int] = {}
        total = 0
        in_shard = 0
        for line in Path(raw).read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            frames = stack.split(";")
            if not any(f.startswith("build_shard (") for f in frames):
                continue  # imports, listing, warm-up
            c = int(n)
            in_shard += c
            cat = _categorise(frames)
            counts[cat] = counts.get(cat, 0) + c
            total += c
        rows = [[k, f"{100 * v / total:.1f}"] for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]
        print(f"py-spy, {total} samples inside build_shard:")
        print(table(rows, ["where", "% of build_shard"]))
    else:
        import cProfile
        import pstats

        pr = cProfile.Profile()
        pr.enable()
        child_profile_target(argparse.Namespace(size=a.profile_size, shard_size=32,
                                                shards=a.profile_shards, out=out))
        pr.disable()
        pstats.Stats(pr).sort_stats("cumulative").print_stats(30)
    shutil.rmtree(out, ignore_errors=True)


# ---------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="~30 s smoke run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--limit-64", type=int, default=1000,
                    help="samples at 64 px (the bare command builds 1000)")
    ap.add_argument("--limit-256", type=int, default=256)
    ap.add_argument("--shard-256", type=int, default=16, help="--shard-size at 256 px")
    ap.add_argument("--limit-scaling", type=int, default=1000,
                    help="samples of the 1 vs 2 worker comparison at 256 px")
    ap.add_argument("--only", choices=["64", "256", "scaling"], help="run one part only")
    ap.add_argument("--variants", default="degrade 2w,degrade 1w,hand 1p,hand 2p,hand-cv2 1p,kernels 1t")
    ap.add_argument("--profile", action="store_true", help="only profile one build_shard")
    ap.add_argument("--profile-size", type=int, default=256)
    ap.add_argument("--profile-shards", type=int, default=2)
    ap.add_argument("--what-if", action="store_true",
                    help="only time the build's per-step kernel path against cheaper ones")
    ap.add_argument("--whatif-samples", type=int, default=8)
    ap.add_argument("--whatif-rounds", type=int, default=5)
    ap.add_argument("--tmp", default=None, help="scratch folder (default: system temp)")
    # children
    ap.add_argument("--child", choices=["hand", "kernels", "profile-target", "what-if"],
                    help=argparse.SUPPRESS)
    ap.add_argument("--mallopt", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--lib", default="alb", help=argparse.SUPPRESS)
    ap.add_argument("--procs", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=256, help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, default=256, help=argparse.SUPPRESS)
    ap.add_argument("--shard-size", type=int, default=32, help=argparse.SUPPRESS)
    ap.add_argument("--shards", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.child:
        fn = {"hand": child_hand, "kernels": child_kernels,
              "profile-target": child_profile_target, "what-if": child_what_if}[a.child]
        print(json.dumps(fn(a)))
        return

    tmp = tempfile.mkdtemp(prefix="degrade-bench-", dir=a.tmp)
    try:
        print(f"machine: {machine_note()}")
        if a.profile or a.what_if:
            if a.profile:
                profile(a, tmp)
            if a.what_if:
                what_if(a)
            return
        names = [n.strip() for n in a.variants.split(",") if n.strip()]
        if a.quick:
            a.rounds, a.limit_64, a.limit_256, a.shard_256 = 1, 80, 16, 4
        summary: list[str] = []
        if a.only in (None, "64"):
            bare = a.limit_64 == 1000
            res = bench_size("64 px" + (" (the bare command)" if bare else ""), 64, a.limit_64,
                             256 if bare else max(1, a.limit_64 // 4), bare, a.rounds, names, tmp)
            summary += ratios("64 px", res)
            kb = kernel_breakdown(res)
            if kb:
                print("\nkernel limit, 64 px, one thread:\n" + kb)
        if a.only in (None, "256"):
            res = bench_size("256 px", 256, a.limit_256, a.shard_256, False, a.rounds, names, tmp)
            summary += ratios("256 px", res)
            kb = kernel_breakdown(res)
            if kb:
                print("\nkernel limit, 256 px, one thread:\n" + kb)
        if a.only in (None, "scaling") and not a.quick:
            res = bench_size("256 px, scaling", 256, a.limit_scaling, a.shard_256, False,
                             a.rounds, ["degrade 2w", "degrade 1w"], tmp)
            summary += ratios("256 px, scaling", res)
        if not a.quick and a.only is None:
            fixed_costs(a.rounds, tmp)
        print()
        print("\n".join(summary))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
