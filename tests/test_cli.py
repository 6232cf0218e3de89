"""The command line (`degrade ops`, `degrade preview`, error handling) and contact sheets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import degrade
from degrade import cli, registry
from degrade.cli import main
from degrade.errors import DegradeError
from degrade.image import encode_png
from degrade.preview import (
    GAP,
    HEADER_H,
    ROW_LABEL_W,
    TITLE_H,
    contact_sheet,
    preview_columns,
    square_crop,
)

ROOT = Path(__file__).resolve().parents[1]


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("degrade: error: "), err
    return lines[0]


def _sheet_size(
    n_rows: int, n_cols: int, cell: int, *, row_labels: bool, title: bool
) -> tuple[int, int]:
    """Expected (height, width) from the layout constants."""
    width = (ROW_LABEL_W if row_labels else 0) + GAP + n_cols * (cell + GAP)
    height = (TITLE_H if title else 0) + HEADER_H + n_rows * (cell + GAP)
    return height, width


def _cell(
    sheet: np.ndarray, r: int, c: int, cell: int, *, row_labels: bool, title: bool
) -> np.ndarray:
    y0 = (TITLE_H if title else 0) + HEADER_H + r * (cell + GAP)
    x0 = (ROW_LABEL_W if row_labels else 0) + GAP + c * (cell + GAP)
    return sheet[y0 : y0 + cell, x0 : x0 + cell]


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (32, 32, 1), dtype=np.uint8)
    a, b = tmp_path / "colour.png", tmp_path / "grey.png"
    a.write_bytes(encode_png(rgb))
    b.write_bytes(encode_png(gray))
    return a, b, rgb, gray


# -- degrade ops ------------------------------------------------------------------------------


def test_ops_table_lists_blur_with_aliases_and_sigma(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "FAMILY", "ALIASES"]
    blur = next(i for i, line in enumerate(lines) if line.startswith("blur "))
    assert "gaussian_blur" in lines[blur]
    assert "sigma 0 → 4 px" in lines[blur]
    assert "Gaussian blur" in lines[blur]
    # Every registered op has a row, and rows are sorted by family, then name.
    names = [line.split()[0] for line in lines[1:] if line and not line.startswith(" ")]
    names = [n for n in names if n in degrade.list_ops()]
    assert sorted(names) == degrade.list_ops()
    families = [degrade.get_op(n).family for n in names]
    assert list(zip(families, names, strict=True)) == sorted(zip(families, names, strict=True))


def test_ops_detail_accepts_alias(capsys):
    assert main(["ops", "gaussian_blur"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("blur — ")
    for text in (
        "family",
        "version",
        "monotone",
        "stochastic",
        "gaussian_blur",
        "sigma (float)",
        "t=0: 0 px",
        "t=1: 4 px",
        "curve: linear",
        "bounds [0, 64]",
        "kernel (int)",
        "--ops blur:sigma=4",
        "advances    yes",
    ):
        assert text in out, text
    assert main(["ops", "noise"]) == 0
    assert "advances" not in capsys.readouterr().out


def test_ops_json(capsys):
    assert main(["ops", "--json"]) == 0
    infos = json.loads(capsys.readouterr().out)
    assert sorted(i["name"] for i in infos) == degrade.list_ops()
    blur = next(i for i in infos if i["name"] == "blur")
    assert blur["aliases"] == ["gaussian_blur"]
    sigma = blur["params"][0]
    assert (sigma["name"], sigma["t0"], sigma["t1"], sigma["unit"]) == ("sigma", "0", "4", "px")

    assert main(["ops", "gaussian_blur", "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert one == blur


def test_ops_unknown_is_one_line_exit_2(capsys):
    assert main(["ops", "nosuch"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert _one_error_line(captured.err).startswith("degrade: error: unknown op")
    assert "Traceback" not in captured.err


def test_ops_subprocess():
    proc = subprocess.run(
        [sys.executable, "-m", "degrade", "ops"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert any(line.startswith("blur ") for line in proc.stdout.splitlines())
    assert "Traceback" not in proc.stderr


# -- degrade preview --------------------------------------------------------------------------


def test_preview_layout_and_clean_column(tmp_path, inputs, capsys):
    a, b, rgb, gray = inputs
    out = tmp_path / "sheet.png"
    rc = main(
        [
            *"preview --ops blur --steps 4 --size 32 --input".split(),
            str(a),
            str(b),
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    stdout = capsys.readouterr().out.splitlines()
    assert stdout[0] == str(out)
    assert "2 images (colour, grey)" in stdout[1]

    sheet = np.asarray(Image.open(out).convert("RGB"))
    assert sheet.shape[:2] == _sheet_size(2, 5, 32, row_labels=True, title=True)
    # Column 0 is the clean input, pixel for pixel; grayscale is shown as grey.
    np.testing.assert_array_equal(_cell(sheet, 0, 0, 32, row_labels=True, title=True), rgb)
    np.testing.assert_array_equal(
        _cell(sheet, 1, 0, 32, row_labels=True, title=True), np.repeat(gray, 3, axis=2)
    )
    grey_row = _cell(sheet, 1, 4, 32, row_labels=True, title=True)
    assert (grey_row[..., 0] == grey_row[..., 1]).all() and (
        grey_row[..., 1] == grey_row[..., 2]
    ).all()
    # The last column (t = 1, sigma 4) is blurred: far less variance than the noise input.
    last = _cell(sheet, 0, 4, 32, row_labels=True, title=True).astype(np.float64)
    assert last.std() < 0.5 * rgb.std()


def test_preview_many_steps_shows_evenly_spaced_columns(tmp_path, inputs, capsys):
    a, *_ = inputs
    out = tmp_path / "many.png"
    argv = "preview --ops blur --steps 50 --columns 6 --size 32 --mode chained --schedule cosine"
    rc = main([*argv.split(), "--input", str(a), "--out", str(out)])
    assert rc == 0
    assert "6 of 51 steps (k=0, 10, 20, 30, 40, 50)" in capsys.readouterr().out
    sheet = np.asarray(Image.open(out).convert("RGB"))
    assert sheet.shape[:2] == _sheet_size(1, 6, 32, row_labels=True, title=True)


def test_preview_default_images(tmp_path, capsys):
    out = tmp_path / "sub" / "default.png"
    assert main([*"preview --ops blur --steps 2 --size 16 --out".split(), str(out)]) == 0
    assert "astronaut, coffee, chelsea" in capsys.readouterr().out
    assert np.asarray(Image.open(out)).shape[:2] == _sheet_size(
        3, 3, 16, row_labels=True, title=True
    )


def test_preview_bad_input_file(tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    argv = ["preview", "--ops", "blur", "--input", str(bad), "--out", str(tmp_path / "p.png")]
    assert main(argv) == 2
    assert "not an image" in _one_error_line(capsys.readouterr().err)
    assert main(["preview", "--ops", "blur", "--input", str(tmp_path / "missing.png")]) == 2
    assert "cannot read" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "p.png").exists()


def test_preview_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(["preview", "--ops", "blur", "--out", str(blocker / "p.png")]) == 2
    assert "cannot write" in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--steps", "0"], "steps"),
        (["--steps", "x"], "invalid int value"),
        (["--size", "2"], "--size"),
        (["--mode", "sideways"], "invalid choice"),
        (["--out", "sheet.jpg"], ".png"),
        (["--columns", "1"], "max_columns"),
    ],
)
def test_preview_bad_options(tmp_path, capsys, argv, needle):
    rc = main(["preview", "--ops", "blur", "--out", str(tmp_path / "p.png"), *argv])
    assert rc == 2
    assert needle in _one_error_line(capsys.readouterr().err)


def test_preview_out_of_range_param(tmp_path, capsys):
    assert main(["preview", "--ops", "blur:sigma=-1", "--out", str(tmp_path / "p.png")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "out of range" in line and "sigma" in line


def test_preview_partner_op_gets_another_image(tmp_path, inputs, monkeypatch):
    def take_partner(image, *, amount, partners):
        return (1 - amount) * image + amount * partners[0]

    op = degrade.Op(
        "partner_test",
        take_partner,
        (degrade.Param("amount", 0.0, 1.0),),
        family="test",
        description="replace by the partner",
        needs=("partners",),
        partners=1,
    )
    monkeypatch.setitem(registry._OPS, op.name, op)
    a, b, _, gray = inputs
    out = tmp_path / "partner.png"
    argv = "preview --ops partner_test --steps 1 --size 32 --input"
    assert main([*argv.split(), str(a), str(b), "--out", str(out)]) == 0
    sheet = np.asarray(Image.open(out).convert("RGB"))
    # Row 0 at t = 1 shows row 1's image (grey, channels matched).
    np.testing.assert_array_equal(
        _cell(sheet, 0, 1, 32, row_labels=True, title=True), np.repeat(gray, 3, axis=2)
    )


# -- errors, flags ----------------------------------------------------------------------------


def test_debug_shows_traceback_before_or_after_command(capsys):
    for argv in (["--debug", "ops", "nosuch"], ["ops", "nosuch", "--debug"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err
        assert err.strip().splitlines()[-1].startswith("degrade: error: unknown op")


def test_usage_errors_are_one_line(capsys):
    for argv in (["nosuch-command"], ["preview"], ["ops", "--nosuch-flag"]):
        assert main(argv) == 2
        _one_error_line(capsys.readouterr().err)


def test_version_help_and_bare(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"degrade {degrade.__version__}"
    assert main(["preview", "-h"]) == 0
    assert "--ops" in capsys.readouterr().out
    assert main([]) == 0
    assert "preview" in capsys.readouterr().out


def test_internal_error_and_interrupt(monkeypatch, capsys):
    def boom(name):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(cli, "op_info", boom)
    assert main(["ops", "blur"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "degrade: internal error: RuntimeError: boom second line (run with --debug for the traceback)"
    ]

    def interrupt(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "op_info", interrupt)
    assert main(["ops", "blur"]) == 130
    assert capsys.readouterr().err.strip() == "degrade: interrupted"


# -- contact sheets ---------------------------------------------------------------------------


def test_contact_sheet_layout_without_labels():
    a = np.zeros((10, 10, 3), np.float32)
    b = np.ones((10, 10, 1), np.float32)
    sheet = contact_sheet([[a, b], [b]], ["k=0", "k=1"], cell=10)
    assert sheet.dtype == np.uint8 and sheet.shape == (
        *_sheet_size(2, 2, 10, row_labels=False, title=False),
        3,
    )
    assert (_cell(sheet, 0, 0, 10, row_labels=False, title=False) == 0).all()
    assert (_cell(sheet, 0, 1, 10, row_labels=False, title=False) == 255).all()
    # A short row leaves its last cell empty (background).
    assert (_cell(sheet, 1, 1, 10, row_labels=False, title=False) == 255).all()


def test_contact_sheet_fits_other_sizes_and_checks_input():
    wide = np.zeros((10, 40, 3), np.uint8)
    sheet = contact_sheet([[wide]], ["x"], cell=20)
    cell = _cell(sheet, 0, 0, 20, row_labels=False, title=False)
    # Aspect kept: 20×5, centred vertically on a white cell.
    assert (cell[:7] == 255).all() and (cell[8:12] == 0).all() and (cell[13:] == 255).all()
    with pytest.raises(DegradeError, match="row 0 has 2 images"):
        contact_sheet([[wide, wide]], ["x"])
    with pytest.raises(DegradeError, match="row labels"):
        contact_sheet([[wide]], ["x"], ["a", "b"])
    with pytest.raises(DegradeError, match="at least one"):
        contact_sheet([], ["x"])


def test_square_crop_and_columns():
    img = np.zeros((40, 80, 1), np.float32)
    img[:, 30:50] = 1.0
    out = square_crop(img, 20)
    assert out.shape == (20, 20, 1) and out.dtype == np.float32
    assert out[:, 5:15].min() == 1.0 and out[:, :4].max() == 0.0  # centre kept
    assert preview_columns(8) == list(range(9))
    cols = preview_columns(1000, 9)
    assert cols[0] == 0 and cols[-1] == 1000 and len(cols) == 9
