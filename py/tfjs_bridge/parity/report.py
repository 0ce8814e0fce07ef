"""Showing a verify report: a terminal table (one line per path, with its
verdict), report.json, and a PNG of the error distribution per path."""

from __future__ import annotations

import json
from pathlib import Path

from ..folder.artifacts import write_json_atomic
from ..folder.parity_record import ILL_CONDITIONED, MISMATCH, PASS, REFUSED, SKIP, UNSUPPORTED

MARKS = {
    PASS: "[green]✓[/]",
    MISMATCH: "[red]✗[/]",
    UNSUPPORTED: "[yellow]–[/]",
    REFUSED: "[magenta]?[/]",
    ILL_CONDITIONED: "[magenta]~[/]",
    SKIP: "[dim]–[/]",
}
# The summary line's words, in MARKS order.
COUNTED = {PASS: "passed", MISMATCH: "mismatched", UNSUPPORTED: "unsupported",
           REFUSED: "refused", ILL_CONDITIONED: "ill-conditioned", SKIP: "skipped"}  # fmt: skip
# An ill-conditioned path's step check, in its verdict cell.
STEP_MARKS = {"pass": "✓", "mismatch": "✗", "unavailable": "–"}


def _sci(value) -> str:
    return "" if value is None else f"{value:.1e}"


def _step_cell(step: dict | None) -> str:
    """`prefix 5/40 ✓ 1.5e-06`: which check, on how many steps, its verdict and max |err|."""
    if not step:
        return ""
    steps = f" {step['steps']}/{step['of_steps']}" if "steps" in step else ""
    err = f" {step['max_abs']:.1e}" if "max_abs" in step else ""
    return f"{step['check'] or ''}{steps} {STEP_MARKS[step['verdict']]}{err}".strip()


def print_table(report, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=120)  # a pipe or a CI log: do not wrap at 80
    table = Table(title="tfjs-bridge verify: Node paths against Python")
    stepped = any(r.step_check for r in report.results)
    for column in ("", "verdict", "model", "runtime", "samples", "max |err|", "max rel",
                   "outside", "argmax", *(("step check",) if stepped else ())):  # fmt: skip
        left = column in {"verdict", "model", "runtime"}
        table.add_column(column, justify="left" if left else "right")
    for r in report.results:
        f = r.figures
        argmax = f"{f['argmax_agree']}/{f['argmax_total']}" if "argmax_total" in f else ""
        if f.get("argmax_ties"):  # flips the tolerance spans (compare._tied)
            argmax += f" ({f['argmax_ties']} tied)"
        table.add_row(
            MARKS[r.status],
            # a pass with a reason is qualified (reduced precision, ill-conditioned): see below
            f"{r.status}*" if r.status == PASS and r.reason else r.status,
            r.model,
            r.runtime,
            str(f.get("samples", "")),
            _sci(f.get("max_abs")),
            _sci(f.get("max_rel")),
            str(f.get("outside", "")),
            argmax,
            *((_step_cell(f.get("step_check")),) if stepped else ()),
        )
    console.print(table)
    for r in report.results:
        if r.status != PASS or r.reason:
            # "model runtime: verdict: reason" (a refusal's reason already says "refused:")
            said = r.reason if r.reason.startswith(r.status) else f"{r.status}: {r.reason}"
            console.print(f"{MARKS[r.status]} {r.model} {r.runtime}: {said}", highlight=False)
    accuracy = {}
    for r in report.results:
        if "accuracy_node" in r.figures:
            accuracy.setdefault(r.model, (r.figures["accuracy_python"], set()))[1].add(
                r.figures["accuracy_node"]
            )
    for model, (python, node) in accuracy.items():
        shown = ", ".join(f"{100 * a:.2f} %" for a in sorted(node))
        console.print(f"{model}: accuracy {100 * python:.2f} % in Python, {shown} in Node")
    for r in report.results:  # what quantized weights cost (convert --quantize)
        q = r.figures.get("quantization")
        if q:
            cost = f"max |error| {r.figures.get('max_abs', 0):.1e}"
            if "argmax_total" in r.figures:
                cost += f", argmax {r.figures['argmax_agree']}/{r.figures['argmax_total']}"
            if "accuracy_drop_pp" in q:
                drop, budget = q["accuracy_drop_pp"], q["max_accuracy_drop_pp"]
                cost += f", accuracy drop {drop:.2f} pp (budget {budget} pp)"
            sizes = f"{q['weight_bytes']:,} bytes against {q['float32_weight_bytes']:,} as float32"
            console.print(
                f"{r.model} {r.runtime}: {q['dtype']} weights, {sizes} "
                f"({q['smaller']:.1f}× smaller): {cost}",
                highlight=False,
            )
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)
    counts = {s: sum(r.status == s for r in report.results) for s in MARKS}
    # ill-conditioned only when some path is, with how its step checks went
    steps = [r.step_check for r in report.results if r.status == ILL_CONDITIONED]
    how = ", ".join(f"{steps.count(v)} {v}" for v in STEP_MARKS if v in steps)
    words = {**COUNTED, ILL_CONDITIONED: f"ill-conditioned (step check: {how})"}
    summary = ", ".join(f"{counts[s]} {word}" for s, word in words.items()
                        if s != ILL_CONDITIONED or counts[s])  # fmt: skip
    # models judged at a coarser precision than float32, by dtype
    coarse: dict[str, list[str]] = {}
    for model, tol in report.tolerances.items():
        if tol.get("precision"):
            coarse.setdefault(tol["precision"], []).append(model)
    said = "; ".join(f"{', '.join(m)} at {d} precision" for d, m in coarse.items())
    console.print(f"{summary} ({said})" if said else summary, highlight=False)


def plot(report, path: Path) -> Path:
    """Histogram of |node - python| per path (log scale), and the error per
    timestep for outputs that are sequences."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in report.results if r.figures.get("outputs")]
    sequences = [
        (r, o) for r in measured for o in r.figures["outputs"] if "max_abs_per_timestep" in o
    ]
    panels = 2 if sequences else 1
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 4.5), squeeze=False)
    ax = axes[0][0]
    for r in measured:
        counts = [
            sum(c)
            for c in zip(
                *(o["abs_error_histogram"]["counts"] for o in r.figures["outputs"]), strict=True
            )
        ]
        total = sum(counts)
        labels = ["0"] + [f"1e{e}" for e in range(-12, 1)]
        ax.plot(labels, [c / total for c in counts], marker="o", label=f"{r.model} {r.runtime}")
    ax.set_yscale("symlog", linthresh=1e-6)
    ax.set_xlabel("|node − python| below")
    ax.set_ylabel("fraction of output values")
    ax.set_title("absolute error per path")
    ax.tick_params(axis="x", rotation=60)
    if measured:
        ax.legend(fontsize=6)
    if sequences:
        ax = axes[0][1]
        for r, o in sequences:
            ax.plot(o["max_abs_per_timestep"], label=f"{r.model} {r.runtime} {o['name']}")
        ax.set_yscale("symlog", linthresh=1e-9)  # exact agreement (0) stays on the plot
        ax.set_xlabel("timestep")
        ax.set_ylabel("max |node − python|")
        ax.set_title("error per timestep")
        ax.legend(fontsize=6)
    return save_figure(fig, path)


def save_figure(fig, path: Path) -> Path:
    """Write a matplotlib figure as PNG, atomically (a reader never sees half)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_report(report, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / "report.json"
    write_json_atomic(json_path, report.to_json())
    return [json_path, plot(report, folder / "errors.png")]


def read_report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())
