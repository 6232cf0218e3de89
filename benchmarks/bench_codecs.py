"""Codecs for stored frames: bytes/frame and encode/decode ms/frame (issue 8).

Two sets of 256 px frames from the sample pool: the clean photo crops, and the frames of
``--ops blur,jpeg --steps 50`` sequences (what a build stores for each step). Codecs:
PNG at levels 0, 1, 3, 6, 9 with Pillow and with OpenCV, QOI (the ``qoi`` package and
Pillow), raw + zstd (levels 1, 3), PPM (raw), WebP lossless (Pillow, methods 0 and 4), and
for the sequence frames JPEG pass-through: the jpeg step's own bytes, stored as they came
out of the encoder (no encode cost). Every lossless codec is checked to give back the exact
pixels. Rounds are interleaved and medians reported; one thread (``cv2.setNumThreads(1)``);
times are CPU time of the process, so other load on a shared machine matters less.

    python benchmarks/bench_codecs.py           # full (~3 min on 2 quiet cores)
    python benchmarks/bench_codecs.py --quick   # ~30 s smoke run
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_note, median, pool_images, table


@dataclass
class Codec:
    name: str
    encode: Callable[[np.ndarray], bytes]
    decode: Callable[[bytes], np.ndarray]
    pil_reads: bool  # PIL.Image.open reads it
    wds_stock: bool  # webdataset's stock image decoders (.decode("rgb"), "pil", ...) read it
    bgr: bool = False  # fed BGR arrays (OpenCV users hold BGR)
    passthrough: bool = False  # the jpeg step's stored bytes
    max_frames: int = 0  # measure on the first N frames only (very slow codecs); 0 = all


def _pil_encode(fmt: str, **opts: object) -> Callable[[np.ndarray], bytes]:
    from PIL import Image

    def enc(a: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format=fmt, **opts)
        return buf.getvalue()

    return enc


def _pil_decode(d: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(d)) as img:
        return np.asarray(img)


def codecs() -> list[Codec]:
    import cv2

    out: list[Codec] = []
    for lvl in (0, 1, 3, 6, 9):
        out.append(Codec(f"PNG L{lvl} (PIL)", _pil_encode("PNG", compress_level=lvl),
                         _pil_decode, True, True))
    for lvl in (0, 1, 3, 6, 9):
        def cv_enc(a: np.ndarray, lvl: int = lvl) -> bytes:
            return cv2.imencode(".png", a, [cv2.IMWRITE_PNG_COMPRESSION, lvl])[1].tobytes()

        out.append(Codec(f"PNG L{lvl} (cv2)", cv_enc,
                         lambda d: cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_UNCHANGED),
                         True, True, bgr=True))
    out.append(Codec("PNG cv2 defaults", lambda a: cv2.imencode(".png", a)[1].tobytes(),
                     lambda d: cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_UNCHANGED),
                     True, True, bgr=True))
    out.append(Codec("PNG L1 RLE (PIL)", _pil_encode("PNG", compress_level=1, compress_type=3),
                     _pil_decode, True, True))
    out.append(Codec("PPM raw (PIL)", _pil_encode("PPM"), _pil_decode, True, True))
    try:
        import qoi

        out.append(Codec("QOI (qoi pkg)", lambda a: qoi.encode(a), lambda d: qoi.decode(d),
                         True, False))
    except ImportError:
        print("qoi not installed: pip install qoi (QOI via Pillow still measured)")
    # Pillow reads and writes QOI in pure Python: ~0.1-0.3 s a frame, so a few frames only.
    out.append(Codec("QOI (PIL, 4 frames)", _pil_encode("QOI"), _pil_decode, True, False,
                     max_frames=4))
    try:
        import zstandard

        for lvl in (1, 3):
            cctx = zstandard.ZstdCompressor(level=lvl)
            dctx = zstandard.ZstdDecompressor()

            def z_enc(a: np.ndarray, cctx: object = cctx) -> bytes:
                h, w, c = a.shape
                return bytes([h >> 8, h & 255, w >> 8, w & 255, c]) + cctx.compress(a.tobytes())

            def z_dec(d: bytes, dctx: object = dctx) -> np.ndarray:
                h, w, c = (d[0] << 8) | d[1], (d[2] << 8) | d[3], d[4]
                return np.frombuffer(dctx.decompress(d[5:]), np.uint8).reshape(h, w, c)

            out.append(Codec(f"raw+zstd-{lvl}", z_enc, z_dec, False, False))
    except ImportError:
        print("zstandard not installed: pip install zstandard (raw+zstd skipped)")
    out.append(Codec("WebP lossless m0 (PIL)", _pil_encode("WEBP", lossless=True, quality=0, method=0),
                     _pil_decode, True, True))
    out.append(Codec("WebP lossless m4 (PIL)", _pil_encode("WEBP", lossless=True, quality=80, method=4),
                     _pil_decode, True, True))
    out.append(Codec("JPEG pass-through", lambda a: b"", _pil_decode, True, True,
                     passthrough=True))
    return out


def frame_sets(n_photos: int, n_seqs: int, stride: int
               ) -> dict[str, tuple[list[np.ndarray], list[bytes]]]:
    """{"set name": (uint8 RGB frames, the jpg bytes of each frame or [])}; every
    ``stride``-th step of each sequence."""
    from degrade.pipeline import Pipeline

    photos = pool_images(max(n_photos, n_seqs), 256)
    clean = [img for _, img in photos[:n_photos]]
    pipe = Pipeline.parse("blur,jpeg", steps=50)
    frames: list[np.ndarray] = []
    jpgs: list[bytes] = []
    for item, img in photos[:n_seqs]:
        seq = pipe.run_encoded(img, item.key)
        for f, p in list(zip(seq.frames[1:], seq.payloads[1:]))[::stride]:
            frames.append(f)
            jpgs.append(p[1])
    steps = "1-50" if stride == 1 else f"1, {1 + stride}, … ≤ 50"
    return {"256 px photo crops (clean frames)": (clean, []),
            f"blur,jpeg sequence frames, 256 px (steps {steps})": (frames, jpgs)}


def bench(frames: list[np.ndarray], jpgs: list[bytes], cs: list[Codec], rounds: int
          ) -> list[list[str]]:
    import cv2

    bgr = [np.ascontiguousarray(cv2.cvtColor(f, cv2.COLOR_RGB2BGR)) for f in frames]
    enc_t: dict[str, list[float]] = {c.name: [] for c in cs}
    dec_t: dict[str, list[float]] = {c.name: [] for c in cs}
    size: dict[str, float] = {}
    exact: dict[str, bool] = {}
    active = [c for c in cs if not c.passthrough or jpgs]
    for r in range(rounds):
        for c in active[r % len(active):] + active[: r % len(active)]:
            src = bgr if c.bgr else frames
            if c.max_frames:
                src = src[: c.max_frames]
            if c.passthrough:
                data = jpgs
                enc_t[c.name].append(0.0)
            else:
                t0 = time.process_time()
                data = [c.encode(f) for f in src]
                enc_t[c.name].append((time.process_time() - t0) / len(src))
            t0 = time.process_time()
            back = [c.decode(d) for d in data]
            dec_t[c.name].append((time.process_time() - t0) / len(data))
            if r == 0:
                size[c.name] = sum(len(d) for d in data) / len(data)
                exact[c.name] = all(
                    np.array_equal(b.reshape(f.shape), f) for b, f in zip(back, src))
    ref = size.get("PNG L1 (PIL)") or 1.0
    rows = []
    for c in active:
        rows.append([
            c.name, f"{size[c.name] / 1024:,.1f}", f"{size[c.name] / ref:.2f}",
            f"{median(enc_t[c.name]) * 1e3:.2f}", f"{median(dec_t[c.name]) * 1e3:.2f}",
            f"{(median(enc_t[c.name]) + median(dec_t[c.name])) * 1e3:.2f}",
            "yes" if exact[c.name] else "no",
            "yes" if c.pil_reads else "no", "yes" if c.wds_stock else "no",
        ])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="~30 s smoke run")
    ap.add_argument("--photos", type=int, default=24)
    ap.add_argument("--sequences", type=int, default=4)
    ap.add_argument("--stride", type=int, default=2, help="keep every N-th step of a sequence")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if a.quick:
        a.photos, a.sequences, a.stride, a.rounds = 6, 1, 2, 1
    import cv2

    cv2.setNumThreads(1)
    print(f"machine: {machine_note()}")
    cs = codecs()
    headers = ["codec", "KiB/frame", "× PNG L1 PIL", "encode ms", "decode ms", "enc+dec ms",
               "lossless", "PIL reads", "wds stock"]
    for label, (frames, jpgs) in frame_sets(a.photos, a.sequences, a.stride).items():
        print(f"\n## {label}: {len(frames)} frames, {a.rounds} rounds (medians)")
        rows = bench(frames, jpgs, cs, a.rounds)
        print(table(rows, headers), flush=True)
        # The default must be read by PIL and by webdataset's stock decoders, and not cost
        # much more disk than a well-compressed PNG: among those within 1.15× the bytes of
        # PNG L6 (PIL), the cheapest to encode (a build encodes every frame once).
        l6 = next(float(r[1].replace(",", "")) for r in rows if r[0] == "PNG L6 (PIL)")
        stock = [r for r in rows if r[6] == r[7] == r[8] == "yes" and r[0] != "JPEG pass-through"
                 and float(r[1].replace(",", "")) <= 1.15 * l6]
        best = min(stock, key=lambda r: float(r[3]))
        print(f"cheapest-to-encode codec that PIL and stock webdataset decoders read, within "
              f"1.15× the bytes of PNG L6: {best[0]} ({best[3]} ms encode, {best[4]} ms decode, "
              f"{best[2]}× the bytes of PNG L1 PIL)")
        jp = next((r for r in rows if r[0] == "JPEG pass-through"), None)
        if jp:
            print(f"jpeg steps stored as their own bytes: {jp[2]}× the bytes of PNG L1 PIL, no "
                  f"encode, {jp[4]} ms decode")


if __name__ == "__main__":
    main()
