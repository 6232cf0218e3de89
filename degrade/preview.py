"""Contact sheets: see a degradation sequence at a glance.

:func:`contact_sheet` lays out rows of images (one row per sample, one column per step) on a
white sheet with labels; :func:`preview` runs a pipeline on a few images and writes the sheet
as a PNG (``degrade preview``). ``degrade inspect`` reuses :func:`contact_sheet` for samples
read back from shards.

Layout (all sizes in pixels; the sheet's size follows from these constants alone)::

    +----------------------------------------------+
    | title (TITLE_H, only when a title is given)  |
    |            | col label | col label | ...     |  HEADER_H
    | row label  |  cell     |  cell     | ...     |  cell + GAP per row
    +----------------------------------------------+

width  = [ROW_LABEL_W] + GAP + n_cols × (cell + GAP)
height = [TITLE_H] + HEADER_H + n_rows × (cell + GAP)
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from degrade.errors import DegradeError
from degrade.image import as_image, load, to_uint8
from degrade.pipeline import Pipeline, execute
from degrade.registry import get_op

__all__ = [
    "GAP",
    "HEADER_H",
    "LINE_H",
    "ROW_LABEL_W",
    "SAMPLE_IMAGES",
    "TITLE_H",
    "contact_sheet",
    "preview",
    "preview_columns",
    "sample_images",
    "square_crop",
]

#: Gap between cells, and between the cells and the sheet's edges.
GAP = 2
#: Height of one line of label text (PIL's default font is about 10 px tall).
LINE_H = 12
#: Height of the column-label band: two lines (``k=…`` and ``t=…``) and a little air.
HEADER_H = 2 * LINE_H + 4
#: Width of the row-label margin on the left (only when row labels are given).
ROW_LABEL_W = 80
#: Height of the title band (only when a title is given).
TITLE_H = LINE_H + 6

BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)

#: scikit-image's bundled photographs used when ``preview`` is given no inputs.
SAMPLE_IMAGES = ("astronaut", "coffee", "chelsea")


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def _fit_text(text: str, width: int) -> str:
    """Cut ``text`` with an ellipsis so that it fits ``width`` pixels."""
    font = _font()
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…" if text else ""


def _wrap_text(text: str, width: int, max_lines: int) -> list[str]:
    """Break ``text`` into at most ``max_lines`` lines of ``width`` pixels (by character)."""
    font = _font()
    lines: list[str] = []
    rest = text
    while rest and len(lines) < max_lines:
        if len(lines) == max_lines - 1 or font.getlength(rest) <= width:
            lines.append(_fit_text(rest, width))
            break
        n = 1
        while n < len(rest) and font.getlength(rest[: n + 1]) <= width:
            n += 1
        lines.append(rest[:n])
        rest = rest[n:]
    return lines


def _to_rgb_u8(image: np.ndarray) -> np.ndarray:
    """Any contract image (float32 or uint8, C ∈ {1, 3}, or H×W) → uint8 H×W×3."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = to_uint8(as_image(arr))
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise DegradeError(f"contact sheet: cannot show an array of shape {arr.shape}")
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.shape[2] == 1:
        # Grayscale is shown as grey, not through a colour map.
        arr = np.repeat(arr, 3, axis=2)
    return arr


def _fit_cell(arr: np.ndarray, cell: int) -> np.ndarray:
    """Scale a uint8 RGB image to fit a cell×cell box, keeping its aspect ratio."""
    h, w = arr.shape[:2]
    if max(h, w) == cell:
        return arr
    scale = cell / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    # Shrinking averages (INTER_AREA); enlarging keeps pixels crisp so damage stays visible.
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST
    out = cv2.resize(np.ascontiguousarray(arr), (nw, nh), interpolation=interp)
    return out.reshape(nh, nw, 3)


def contact_sheet(
    rows: list[list[np.ndarray]],
    col_labels: list[str],
    row_labels: list[str] | None = None,
    cell: int | None = None,
    *,
    title: str | None = None,
) -> np.ndarray:
    """Lay images out on a labelled grid and return the sheet as a uint8 RGB array.

    Parameters
    ----------
    rows : list of list of ndarray
        ``rows[i][j]`` is the image in row i, column j: float32 in [0, 1] or uint8, H×W×C
        with C ∈ {1, 3} (or H×W). Grayscale is shown as grey. A row may be shorter than
        ``col_labels`` (its last cells stay empty).
    col_labels : list of str
        One label per column, drawn above it; ``"\\n"`` separates its two lines.
    row_labels : list of str, optional
        One label per row, drawn in a left margin of ``ROW_LABEL_W`` px (wrapped, cut with
        "…" if too long). Without them there is no margin.
    cell : int, optional
        Side of each square cell in px. Images of exactly that size are copied pixel for
        pixel; others are scaled to fit (aspect kept, centred). Default: the largest image
        side.
    title : str, optional
        One line drawn above the column labels, in a band of ``TITLE_H`` px.

    Returns
    -------
    ndarray
        uint8 H×W×3 with H = [TITLE_H] + HEADER_H + n_rows·(cell + GAP) and
        W = [ROW_LABEL_W] + GAP + n_cols·(cell + GAP).

    Raises
    ------
    DegradeError
        If there are no rows or columns, a row is longer than ``col_labels``, the number of
        row labels differs from the number of rows, or ``cell`` is not a positive integer.

    Examples
    --------
    >>> img = np.zeros((16, 16, 1), np.float32)
    >>> contact_sheet([[img, img]], ["k=0", "k=1"], ["a"]).shape
    (46, 118, 3)
    """
    if not rows or not col_labels:
        raise DegradeError("contact sheet: need at least one row and one column")
    n_rows, n_cols = len(rows), len(col_labels)
    for i, row in enumerate(rows):
        if len(row) > n_cols:
            raise DegradeError(
                f"contact sheet: row {i} has {len(row)} images but there are {n_cols} column labels"
            )
    if row_labels is not None and len(row_labels) != n_rows:
        raise DegradeError(f"contact sheet: {len(row_labels)} row labels for {n_rows} rows")
    images = [[_to_rgb_u8(im) for im in row] for row in rows]
    if cell is None:
        sides = [max(im.shape[:2]) for row in images for im in row]
        if not sides:
            raise DegradeError("contact sheet: no images to show")
        cell = max(sides)
    if isinstance(cell, bool) or not isinstance(cell, (int, np.integer)) or cell < 1:
        raise DegradeError(f"contact sheet: cell must be a positive integer, got {cell!r}")
    cell = int(cell)

    left = ROW_LABEL_W if row_labels is not None else 0
    top = (TITLE_H if title else 0) + HEADER_H
    width = left + GAP + n_cols * (cell + GAP)
    height = top + n_rows * (cell + GAP)
    sheet = np.empty((height, width, 3), np.uint8)
    sheet[:] = BACKGROUND

    for i, row in enumerate(images):
        y0 = top + i * (cell + GAP)
        for j, im in enumerate(row):
            x0 = left + GAP + j * (cell + GAP)
            fitted = _fit_cell(im, cell)
            fh, fw = fitted.shape[:2]
            oy, ox = (cell - fh) // 2, (cell - fw) // 2
            sheet[y0 + oy : y0 + oy + fh, x0 + ox : x0 + ox + fw] = fitted

    canvas = Image.fromarray(sheet)
    draw = ImageDraw.Draw(canvas)
    font = _font()
    if title:
        draw.text((GAP + 2, 3), _fit_text(title, width - GAP - 4), fill=INK, font=font)
    y_head = (TITLE_H if title else 0) + 2
    for j, label in enumerate(col_labels):
        x0 = left + GAP + j * (cell + GAP)
        for n, line in enumerate(str(label).split("\n")[:2]):
            draw.text((x0 + 1, y_head + n * LINE_H), _fit_text(line, cell - 2), fill=INK, font=font)
    if row_labels is not None:
        max_lines = max(1, cell // LINE_H)
        for i, label in enumerate(row_labels):
            y0 = top + i * (cell + GAP)
            for n, line in enumerate(_wrap_text(str(label), ROW_LABEL_W - 6, max_lines)):
                draw.text((3, y0 + n * LINE_H), line, fill=INK, font=font)
    return np.asarray(canvas, dtype=np.uint8).copy()


def square_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Resize the short side to ``size`` (``cv2.INTER_AREA``) and centre-crop to size×size.

    An image already size×size is returned unchanged (a copy), so its pixels stay exact.

    Examples
    --------
    >>> square_crop(np.zeros((40, 80, 3), np.float32), 20).shape
    (20, 20, 3)
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise DegradeError(f"size must be a positive integer, got {size!r}")
    img = as_image(image)
    h, w, c = img.shape
    if (h, w) == (size, size):
        return img.copy()
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    resized = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA).reshape(nh, nw, c)
    y0, x0 = (nh - size) // 2, (nw - size) // 2
    out = resized[y0 : y0 + size, x0 : x0 + size]
    return np.ascontiguousarray(out, dtype=np.float32)


def sample_images(size: int = 128) -> dict[str, np.ndarray]:
    """Return scikit-image's bundled photographs (:data:`SAMPLE_IMAGES`) cropped to size×size.

    They ship inside the scikit-image wheel, so this needs no network.

    Examples
    --------
    >>> sorted(sample_images(8))
    ['astronaut', 'chelsea', 'coffee']
    """
    import skimage.data

    return {name: square_crop(getattr(skimage.data, name)(), size) for name in SAMPLE_IMAGES}


def preview_columns(steps: int, max_columns: int = 9) -> list[int]:
    """Return the steps shown as columns: all of 0 … T, or ``max_columns`` evenly spaced.

    Step 0 (the clean image) and step T are always shown.

    Examples
    --------
    >>> preview_columns(4)
    [0, 1, 2, 3, 4]
    >>> preview_columns(50, 6)
    [0, 10, 20, 30, 40, 50]
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise DegradeError(f"steps must be a positive integer, got {steps!r}")
    if (
        isinstance(max_columns, bool)
        or not isinstance(max_columns, (int, np.integer))
        or max_columns < 2
    ):
        raise DegradeError(f"max_columns must be an integer ≥ 2, got {max_columns!r}")
    if steps + 1 <= max_columns:
        return list(range(steps + 1))
    cols = {math.floor(k * steps / (max_columns - 1) + 0.5) for k in range(max_columns)}
    return sorted(cols)


def _fmt_t(t: float) -> str:
    if t == 0 or t >= 0.001:
        return f"{t:.3f}"
    return f"{t:.1e}"


def preview(
    ops: str | Pipeline,
    steps: int,
    *,
    inputs: Sequence[str | os.PathLike[str]] | None = None,
    size: int = 128,
    seed: int = 0,
    mode: str = "absolute",
    schedule: str = "linear",
    out: str | os.PathLike[str] = "preview.png",
    max_columns: int = 9,
) -> Path:
    """Run a pipeline on a few images and write a contact sheet PNG of the sequence.

    Rows are images, columns are steps k = 0 … T labelled with k and t; when T + 1 exceeds
    ``max_columns``, evenly spaced steps including 0 and T are shown
    (:func:`preview_columns`).

    Parameters
    ----------
    ops : str or Pipeline
        Pipeline in the ``--ops`` syntax (``"blur,jpeg:quality=10..5"``), or a built
        :class:`~degrade.pipeline.Pipeline` (a preset's), whose steps, mode, schedule and
        seed then replace the arguments below.
    steps : int
        T, the number of degraded steps.
    inputs : sequence of path, optional
        Image files (decoded by :func:`degrade.image.load`, short side resized and centre
        cropped to ``size``); each sample's key is the file stem. Default: scikit-image's
        astronaut, coffee and chelsea.
    size : int
        Side of each image in px.
    seed, mode, schedule
        As for :class:`degrade.Pipeline`.
    out : path
        Where to write the PNG (``.png``); missing folders are created.
    max_columns : int
        Most columns shown.

    Returns
    -------
    Path
        The PNG written.

    Raises
    ------
    DegradeError
        On a bad pipeline, option, unreadable input or unwritable output.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = preview("blur", 2, size=16, out=pathlib.Path(tempfile.mkdtemp()) / "p.png")
    >>> Image.open(p).size
    (136, 100)
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 8 <= size <= 4096:
        raise DegradeError(f"--size must be an integer from 8 to 4096, got {size!r}")
    out_path = Path(out)
    if out_path.suffix.lower() != ".png":
        raise DegradeError(f"--out must be a .png file, got '{out_path}'")
    if isinstance(ops, Pipeline):
        pipeline = ops
        steps, mode, seed = pipeline.steps, pipeline.mode, pipeline.seed
        schedule = pipeline.schedule if isinstance(pipeline.schedule, str) else (
            "calibrated" if pipeline.calibration else "explicit")
    else:
        pipeline = Pipeline.parse(ops, steps=steps, mode=mode, schedule=schedule, seed=seed)
    columns = preview_columns(steps, max_columns)
    for spec in pipeline.ops:
        missing = set(get_op(spec.op).needs) - {"partners"}
        if missing:
            # Models come from a provider that preview does not have.
            raise DegradeError(
                f"op '{spec.op}' needs {', '.join(sorted(missing))}, which preview cannot supply"
            )

    if inputs:
        images = {}
        for path in inputs:
            img = square_crop(load(path), int(size))
            images[_unique(Path(path).stem, images)] = img
    else:
        images = sample_images(int(size))

    rows: list[list[np.ndarray]] = []
    keys = list(images)
    for i, (key, img) in enumerate(images.items()):
        clean = to_uint8(img)
        # Ops that mix in other images get the next preview images (a mirrored copy of
        # this one when there is only one).
        others = [images[keys[(i + j) % len(keys)]] for j in range(1, len(keys))] or [None]
        partners = [_partner(img, others[j % len(others)]) for j in range(8)]
        context = lambda pos, op, partners=partners: {  # noqa: E731
            "partners": partners[: max(op.partners, 1)]
        }
        recipe = pipeline.recipe(key, clean.shape)
        if mode == "absolute" and not pipeline.monotone:
            # Absolute steps are independent: compute only the columns shown.
            recipe["steps"] = [s for s in recipe["steps"] if s["k"] in columns]
            frames, _ = execute(clean, recipe, context=context)
            rows.append(frames)
        else:
            if pipeline.monotone:  # per-image adjustment needs every step (degrade.calibrate)
                from degrade.calibrate import monotone_execute

                frames, _ = monotone_execute(clean, recipe, context=context)
            else:
                frames, _ = execute(clean, recipe, context=context)
            rows.append([frames[k] for k in columns])

    col_labels = [f"k={k}\nt={_fmt_t(pipeline.ts[k])}" for k in columns]
    title = f"{pipeline.spec} | T={steps} | {mode} | {schedule} | seed {seed}"
    if len(columns) < steps + 1:
        title += f" | {len(columns)} of {steps + 1} steps shown"
    sheet = contact_sheet(rows, col_labels, list(images), cell=int(size), title=title)
    # Written to a temporary name and renamed, so a failed write leaves no half-written PNG.
    tmp = out_path.with_name(out_path.name + ".tmp")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sheet).save(tmp, format="PNG")
        os.replace(tmp, out_path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise DegradeError(f"cannot write '{out_path}': {exc.strerror or exc}") from None
    return out_path


def _partner(image: np.ndarray, other: np.ndarray | None) -> np.ndarray:
    """A partner image of ``image``'s shape: ``other`` with its channels matched, or a mirror."""
    if other is None:
        return np.ascontiguousarray(image[::-1, ::-1])
    if other.shape[2] == image.shape[2]:
        return other
    if image.shape[2] == 1:
        return np.ascontiguousarray(other.mean(axis=2, keepdims=True, dtype=np.float32))
    return np.ascontiguousarray(np.repeat(other, 3, axis=2))


def _unique(name: str, taken: dict[str, np.ndarray]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"
