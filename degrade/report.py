"""Reports of :mod:`degrade.evaluate`: tables, plots (matplotlib, Agg), a sample grid, summaries.

A report folder (``degrade eval --out REPORT``) holds

- ``metrics.csv``: columns exactly ``op,step,method,metric,value,convention``;
- ``metrics.json``: the same rows plus ``meta`` (checkpoint, data, split, images, steps,
  tuned baseline parameters, the convention of each metric);
- ``plots/psnr.png``, ``plots/ssim.png``, ``plots/swd.png``, ``plots/ms_per_image.png``: the
  metric against the step k, one line per method;
- ``samples.png``: clean | degraded | direct | alg1 | alg2 (| rollout) for a few images
  and steps;
- ``summary.md``: the key tables.

A benchmark folder (``degrade bench --out DIR``) adds ``leaderboard.md``, ``.csv``,
``.json`` and ``.png`` (:func:`write_leaderboard`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from degrade.errors import DegradeError

__all__ = ["plot_metric", "sample_grid", "summarise_bench", "summary_markdown", "write_leaderboard",
           "write_report"]

_STYLE = {
    "degraded": {"color": "0.45", "linestyle": ":", "marker": "x"},
    "direct": {"color": "tab:blue", "marker": "o"},
    "alg1": {"color": "tab:orange", "marker": "s"},
    "alg2": {"color": "tab:green", "marker": "^"},
    "alg2_fresh": {"color": "tab:green", "linestyle": "--", "marker": "v"},
    "rollout": {"color": "tab:purple", "marker": "D"},
}
_LABEL = {"psnr": "PSNR (dB, higher is better)", "ssim": "SSIM (higher is better)",
          "swd": "SWD ×1e3 (lower is better)", "ms_per_image": "ms per image", "calls": "network calls per image"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _series(rows: Sequence[Mapping[str, Any]], metric: str) -> dict[str, tuple[list[int], list[float]]]:
    out: dict[str, tuple[list[int], list[float]]] = {}
    for r in rows:
        if r["metric"] != metric:
            continue
        ks, vs = out.setdefault(r["method"], ([], []))
        ks.append(int(r["step"]))
        vs.append(float(r["value"]))
    return out


def _finite(v: float, cap: float = 100.0) -> float:
    return cap if v == float("inf") else v


def plot_metric(rows: Sequence[Mapping[str, Any]], metric: str, path: str | os.PathLike[str], *,
                title: str = "") -> Path:
    """Plot ``metric`` against the step k, one line per method; write a PNG.

    Infinite PSNR (an exact restoration) is drawn at 100 dB.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for i, (method, (ks, vs)) in enumerate(_series(rows, metric).items()):
        style = _STYLE.get(method, {"color": f"C{(i + 4) % 10}", "linestyle": "-.", "marker": "."})
        ax.plot(ks, [_finite(v) for v in vs], label=method, **style)
    ax.set_xlabel("step k")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(_LABEL.get(metric, metric))
    ax.set_title(title or metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p)
    plt.close(fig)
    return p


def sample_grid(grid: Mapping[str, Any], path: str | os.PathLike[str], *, cell: int | None = None,
                title: str | None = None) -> Path | None:
    """Write the sample grid (rows: image and step; columns: clean, degraded, methods).

    Returns None when there is nothing to show.
    """
    from PIL import Image

    from degrade.preview import contact_sheet

    rows = grid.get("rows") or []
    if not rows:
        return None
    size = max(max(im.shape[:2]) for _, ims in rows for im in ims)
    sheet = contact_sheet([list(ims) for _, ims in rows], list(grid["columns"]), [lab for lab, _ in rows],
                          cell=cell or max(96, size), title=title)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(p)
    return p


def _fmt(v: float, metric: str) -> str:
    if v == float("inf"):
        return "∞"
    if metric == "ssim":
        return f"{v:.3f}"
    if metric == "calls":
        return f"{v:.0f}"
    return f"{v:.2f}"


def _table(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str], methods: Sequence[str],
           steps: Sequence[int]) -> list[str]:
    vals = {(int(r["step"]), r["method"], r["metric"]): float(r["value"]) for r in rows}
    out = ["| k | " + " | ".join(methods) + " |", "|---:|" + "---:|" * len(methods)]
    for k in steps:
        cells = []
        for m in methods:
            got = [vals.get((k, m, met)) for met in metrics]
            cells.append(" / ".join("–" if g is None else _fmt(g, met) for g, met in zip(got, metrics, strict=True)))
        out.append(f"| {k} | " + " | ".join(cells) + " |")
    return out


def summary_markdown(result: Any) -> str:
    """The ``summary.md`` text of an :class:`~degrade.evaluate.EvalResult`."""
    m = result.meta
    methods = [x for x in m["methods"] if any(r["method"] == x for r in result.rows)]
    steps = m["steps_eval"]
    conv = m["conventions"]
    lines = [
        f"# Restoration report: `{m['op']}`",
        "",
        f"- checkpoint: `{m.get('checkpoint', '?')}` (step {m.get('checkpoint_step', '?')}, "
        f"model {m.get('model', '?')}, target {m['target']})",
        f"- data: `{m.get('data', '?')}`, split `{m.get('split', '?')}`, {m['images']} images, T = {m['steps']}",
        f"- PSNR / SSIM: {conv['psnr']}",
        f"- SWD: {conv['swd']}",
        f"- time: {conv['ms_per_image']}",
        "",
        "## PSNR (dB) / SSIM per step",
        "",
        *_table(result.rows, ("psnr", "ssim"), methods, steps),
        "",
        "## SWD ×1e3 per step (lower is better)",
        "",
        *_table(result.rows, ("swd",), methods, steps),
        "",
        "## Cost per image: network calls / ms",
        "",
        *_table(result.rows, ("calls", "ms_per_image"), methods, steps),
        "",
    ]
    best = []
    for k in steps:
        cand = [(result.value(k, x, "psnr"), x) for x in methods]
        v, x = max(cand)
        best.append(f"k={k}: {x} ({_fmt(v, 'psnr')} dB)")
    lines += ["## Best PSNR per step", "", "; ".join(best), "", "## Notes", ""]
    if m.get("stochastic_field") and "alg2" in methods:
        lines.append("- The pipeline has a stochastic op: `alg2` replays each sample's own random field "
                     "(its exact noise realisation), which no real restorer has — an oracle bound. "
                     "`alg2_fresh` uses another draw of the field: the practical number.")
    if m.get("baselines"):
        lines.append(f"- Baselines tuned per step on {m['baseline_tuning']} (grid in degrade.sampling.BASELINES); "
                     "chosen parameters are in metrics.json.")
    lines.append("- Plots: plots/psnr.png, plots/ssim.png, plots/swd.png, plots/ms_per_image.png; "
                 "sample grid: samples.png.")
    return "\n".join(lines) + "\n"


def write_report(result: Any, out: str | os.PathLike[str]) -> dict[str, Path]:
    """Write an evaluation's report folder; return the paths by name."""
    from degrade.evaluate import CSV_COLUMNS, write_json, write_rows_csv

    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    paths["csv"] = write_rows_csv(result.rows, root / "metrics.csv")
    paths["json"] = write_json({"meta": result.meta, "columns": list(CSV_COLUMNS), "rows": result.rows},
                               root / "metrics.json")
    for metric in ("psnr", "ssim", "swd", "ms_per_image"):
        paths[f"plot_{metric}"] = plot_metric(result.rows, metric, root / "plots" / f"{metric}.png",
                                              title=f"{result.meta['op']}: {metric} vs step")
    grid = sample_grid(result.grid, root / "samples.png", title=f"{result.meta['op']}")
    if grid is not None:
        paths["samples"] = grid
    paths["summary"] = root / "summary.md"
    paths["summary"].write_text(summary_markdown(result))
    return paths


# -- the benchmark leaderboard -------------------------------------------------------------------

_MODEL = ("direct", "alg1", "alg2", "alg2_fresh", "rollout")


def summarise_bench(results: Mapping[str, Mapping[str, Any]],
                    blind: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Leaderboard rows from per-op evaluations (and a blind model's).

    Per op, at the last step T and as the mean over the evaluated steps: PSNR/SSIM of
    ``degraded``, each model method and the best baseline; the gain of ``direct`` over the
    input; ``alg2`` − ``direct``; the steps at which ``alg2`` beats ``direct``.
    """
    ops = []
    curves: dict[str, dict[str, dict[int, float]]] = {}
    for op, entry in results.items():
        res = entry["result"]
        ks = res.meta["steps_eval"]
        T = ks[-1]
        methods = res.methods()
        bases = [x for x in methods if x not in ("degraded", *_MODEL)]

        def at(method: str, metric: str, k: int, res: Any = res) -> float | None:
            try:
                return res.value(k, method, metric)
            except KeyError:
                return None

        def mean(method: str, metric: str, res: Any = res, ks: Sequence[int] = ks) -> float | None:
            vals = [res.value(k, method, metric) for k in ks if (k, method) in
                    {(int(r["step"]), r["method"]) for r in res.rows}]
            return float(np.mean(vals)) if vals else None

        best_base = max(bases, key=lambda b: mean(b, "psnr") or -np.inf) if bases else None
        row: dict[str, Any] = {"op": op, "T": res.meta["steps"], "k": T, "images": res.meta["images"],
                               "stochastic": res.meta.get("stochastic_field", False),
                               "baseline": best_base, "train_seconds": entry.get("train_seconds"),
                               "eval_seconds": entry.get("eval_seconds")}
        for method in ("degraded", *_MODEL):
            if method in methods:
                row[f"{method}_psnr"] = at(method, "psnr", T)
                row[f"{method}_ssim"] = at(method, "ssim", T)
                row[f"{method}_swd"] = at(method, "swd", T)
                row[f"{method}_psnr_mean"] = mean(method, "psnr")
                row[f"{method}_ms"] = at(method, "ms_per_image", T)
        if best_base:
            row["baseline_psnr"] = at(best_base, "psnr", T)
            row["baseline_ssim"] = at(best_base, "ssim", T)
            row["baseline_swd"] = at(best_base, "swd", T)
            row["baseline_psnr_mean"] = mean(best_base, "psnr")
        if "direct" in methods:
            row["gain_direct"] = row["direct_psnr"] - row["degraded_psnr"]
        if "direct" in methods and "alg2" in methods:
            row["alg2_minus_direct"] = row["alg2_psnr"] - row["direct_psnr"]
            row["alg2_beats_direct_at"] = [k for k in ks if res.value(k, "alg2", "psnr") > res.value(k, "direct", "psnr")]
            if "alg2_fresh" in methods:
                row["alg2_fresh_beats_direct_at"] = [
                    k for k in ks if res.value(k, "alg2_fresh", "psnr") > res.value(k, "direct", "psnr")]
        ops.append(row)
        curves[op] = {x: {k: res.value(k, x, "psnr") for k in ks}
                      for x in methods if x in ("degraded", *_MODEL) or x == best_base}
    # How restorable: what the learned model recovers over its input at the last step (dB).
    ops.sort(key=lambda r: -(r.get("gain_direct") if r.get("gain_direct") is not None else -np.inf))
    blind_rows = None
    if blind:
        blind_rows = []
        for op, entry in blind.items():
            res = entry["result"]
            T = res.meta["steps_eval"][-1]
            row = {"op": op, "seen": entry["seen"], "k": T,
                   "degraded_psnr": res.value(T, "degraded", "psnr"),
                   "blind_direct_psnr": res.value(T, "direct", "psnr"),
                   "blind_direct_ssim": res.value(T, "direct", "ssim")}
            try:
                row["blind_alg2_psnr"] = res.value(T, "alg2", "psnr")
            except KeyError:
                row["blind_alg2_psnr"] = None
            spec = results.get(op)
            row["specialist_direct_psnr"] = spec["result"].value(T, "direct", "psnr") if spec else None
            blind_rows.append(row)
    return {"ops": ops, "blind": blind_rows, "curves": curves}


def _c(v: Any, nd: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if v == float("inf"):
            return "∞"
        return f"{v:.{nd}f}"
    return str(v)


def leaderboard_markdown(board: Mapping[str, Any], config: Mapping[str, Any], seconds: float) -> str:
    """The ``leaderboard.md`` text."""
    ops = board["ops"]
    k = ops[0]["k"] if ops else "T"
    lines = [
        "# Restoration leaderboard",
        "",
        f"Same UNet (base {config['base_channels']}, mults {tuple(config['channel_mults'])}), "
        f"{config['max_steps']} steps × batch {config['batch_size']} per op, sample pool "
        f"{config['limit']} images at {config['size']} px (test split: ~20 %), T = {config['steps']}; "
        f"{seconds:.0f} s in all.",
        "PSNR in dB per image then averaged (data range 1.0, RGB); SSIM 7×7 window, mean over channels.",
        "",
        f"## At the last step (k = {k}), ranked by what direct restoration recovers (direct − degraded)",
        "",
        "| rank | op | degraded | best baseline | direct | alg1 | alg2 | alg2 fresh field | "
        "direct − degraded | alg2 − direct | SSIM degraded → direct | alg2 beats direct at k |",
        "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for i, r in enumerate(ops, 1):
        base = f"{r['baseline']} {_c(r.get('baseline_psnr'))}" if r.get("baseline") else "–"
        lines.append(
            f"| {i} | {r['op']} | {_c(r.get('degraded_psnr'))} | {base} | {_c(r.get('direct_psnr'))} | "
            f"{_c(r.get('alg1_psnr'))} | {_c(r.get('alg2_psnr'))} | {_c(r.get('alg2_fresh_psnr'))} | "
            f"{_c(r.get('gain_direct'))} | {_c(r.get('alg2_minus_direct'))} | "
            f"{_c(r.get('degraded_ssim'), 3)} → {_c(r.get('direct_ssim'), 3)} | "
            f"{', '.join(map(str, r.get('alg2_beats_direct_at', []))) or 'none'} |")
    lines += [
        "",
        "## Mean PSNR over the evaluated steps",
        "",
        "| op | degraded | best baseline | direct | alg1 | alg2 | alg2 fresh field |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in ops:
        lines.append(
            f"| {r['op']} | {_c(r.get('degraded_psnr_mean'))} | {_c(r.get('baseline_psnr_mean'))} | "
            f"{_c(r.get('direct_psnr_mean'))} | {_c(r.get('alg1_psnr_mean'))} | {_c(r.get('alg2_psnr_mean'))} | "
            f"{_c(r.get('alg2_fresh_psnr_mean'))} |")
    lines += [
        "",
        f"## SWD ×1e3 to the clean set at k = {k} (lower is better: closer image statistics)",
        "",
        "| op | degraded | best baseline | direct | alg1 | alg2 | alg2 fresh field |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in ops:
        lines.append(
            f"| {r['op']} | {_c(r.get('degraded_swd'), 1)} | {_c(r.get('baseline_swd'), 1)} | "
            f"{_c(r.get('direct_swd'), 1)} | {_c(r.get('alg1_swd'), 1)} | {_c(r.get('alg2_swd'), 1)} | "
            f"{_c(r.get('alg2_fresh_swd'), 1)} |")
    if board.get("blind"):
        lines += [
            "",
            f"## Blind model (no step input) trained on {', '.join(o for o in config['ops'] if o not in config['blind_holdout'])}",
            "",
            "| op | in its training | degraded | blind direct | blind alg2 | specialist direct |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for r in board["blind"]:
            lines.append(f"| {r['op']} | {'yes' if r['seen'] else 'held out'} | {_c(r['degraded_psnr'])} | "
                         f"{_c(r['blind_direct_psnr'])} | {_c(r.get('blind_alg2_psnr'))} | "
                         f"{_c(r.get('specialist_direct_psnr'))} |")
    if any(r.get("stochastic") for r in ops):
        lines += ["", "`alg2` on a stochastic op replays the sample's own noise realisation (an oracle "
                  "bound); `alg2 fresh field` draws another one, as a restorer would have to."]
    lines += ["", "Per-op reports (tables, plots, sample grids): `<op>/report/summary.md`; plot: leaderboard.png."]
    return "\n".join(lines) + "\n"


def write_leaderboard(board: Mapping[str, Any], out: str | os.PathLike[str], *,
                      config: Mapping[str, Any], seconds: float) -> dict[str, Path]:
    """Write ``leaderboard.{md,csv,json,png}`` into ``out``."""
    import csv

    from degrade.evaluate import write_json

    if not board.get("ops"):
        raise DegradeError("nothing to put on the leaderboard")
    root = Path(out)
    paths = {"md": root / "leaderboard.md"}
    paths["md"].write_text(leaderboard_markdown(board, config, seconds))
    paths["json"] = write_json({"config": config, "seconds": seconds, "ops": board["ops"],
                                "blind": board["blind"], "psnr_curves": board["curves"]},
                               root / "leaderboard.json")
    cols = ["op", "T", "k", "images", "degraded_psnr", "baseline", "baseline_psnr", "direct_psnr", "alg1_psnr",
            "alg2_psnr", "alg2_fresh_psnr", "rollout_psnr", "gain_direct", "alg2_minus_direct",
            "degraded_ssim", "direct_ssim", "alg2_ssim", "direct_ms", "alg2_ms", "train_seconds"]
    paths["csv"] = root / "leaderboard.csv"
    with open(paths["csv"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in board["ops"]:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in cols])
    plt = _pyplot()
    curves = board["curves"]
    n = len(curves)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n + 0.6, 3.6), dpi=100, squeeze=False)
    for ax, r in zip(axes[0], board["ops"], strict=True):
        for i, (method, series) in enumerate(curves[r["op"]].items()):
            style = _STYLE.get(method, {"color": f"C{(i + 4) % 10}", "linestyle": "-.", "marker": "."})
            ks = sorted(series)
            ax.plot(ks, [_finite(series[k]) for k in ks], label=method, **style)
        ax.set_title(r["op"])
        ax.set_xlabel("step k")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("PSNR (dB)")
    fig.tight_layout()
    paths["png"] = root / "leaderboard.png"
    fig.savefig(paths["png"])
    plt.close(fig)
    return paths
