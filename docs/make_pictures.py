"""Write the README's pictures: one contact sheet per op family, docs/img/<family>.png.

Each sheet has one row per op of the family (its default curve, absolute mode, T = 5, one
seeded field per op) on the same photograph, columns k = 0 … 5. Ops that need a model are
left out; ops that mix in other images get a second photograph. Deterministic: the same
degrade version writes the same PNGs.

    python docs/make_pictures.py [--size 64] [--out docs/img] [--photo astronaut]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

import degrade
from degrade.errors import DegradeError
from degrade.image import to_float, to_uint8
from degrade.pipeline import Pipeline, execute
from degrade.preview import contact_sheet, sample_images

STEPS = 5


def family_rows(names: list[str], clean: np.ndarray, other: np.ndarray) -> tuple[list, list[str]]:
    """Run each op on ``clean`` at t = 0, .2, …, 1; return the rows and their labels."""
    rows, labels = [], []
    partners = [to_float(other), to_float(other[::-1])]
    for name in names:
        op = degrade.get_op(name)
        if set(op.needs) - {"partners"}:
            continue  # models are not available here
        try:
            pipe = Pipeline([name], steps=STEPS, seed=0)
            recipe = pipe.recipe("readme", clean.shape)
            frames, _ = execute(clean, recipe, context=lambda pos, o: {"partners": partners})
        except (DegradeError, ImportError, ModuleNotFoundError) as exc:
            print(f"  skipped {name}: {exc}")
            continue
        rows.append(frames)
        labels.append(name)
    return rows, labels


def main(argv: list[str] | None = None) -> int:
    """Write one PNG per family and print their paths."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64, help="cell side in px (default 64)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "img"), help="output folder")
    ap.add_argument("--photo", default="astronaut", help="astronaut, coffee or chelsea")
    args = ap.parse_args(argv)

    photos = sample_images(args.size)
    clean = to_uint8(photos[args.photo])
    other = to_uint8(next(v for k, v in photos.items() if k != args.photo))
    families: dict[str, list[str]] = defaultdict(list)
    for name in degrade.list_ops():
        families[degrade.get_op(name).family].append(name)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cols = [f"k={k}\nt={k / STEPS:.1f}" for k in range(STEPS + 1)]
    for family in sorted(families):
        rows, labels = family_rows(families[family], clean, other)
        if not rows:
            continue
        sheet = contact_sheet(rows, cols, labels, cell=args.size,
                              title=f"{family}: each op at t = 0 … 1 (default curves)")
        path = out / f"{family}.png"
        Image.fromarray(sheet).save(path, format="PNG", optimize=True)
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
