"""`tfjs-bridge fuzz` as one library call, and the one error for a run that
found something."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import BridgeError
from . import tables
from .harness import SAMPLES, FuzzReport, run_fuzz
from .jobs import MODEL_TIMEOUT

DEFAULT_REPORT = Path("reports/fuzz")


@dataclass
class Fuzzed:
    report: FuzzReport
    written: list[Path]


def fuzz_command(
    seed: int = 0,
    count: int = 300,
    start: int = 0,
    samples: int = SAMPLES,
    report_dir: Path | None = DEFAULT_REPORT,
    log: Callable[[str], None] | None = None,
    jobs: int = 1,
    timeout: float = MODEL_TIMEOUT,
) -> Fuzzed:
    """Models start .. start+count-1 of `seed` through verify, each with one
    fault; writes report_dir/fuzz.json and table.md when given."""
    report = run_fuzz(
        seed, count, samples=samples, start=start, log=log, jobs=jobs, timeout=timeout
    )
    written = tables.write(report, report_dir) if report_dir is not None else []
    return Fuzzed(report, written)


def summary(report: FuzzReport) -> str:
    v = tables.verdict_counts(report.outcomes)
    paths = ", ".join(f"{n} {k}" for k, n in v["paths"].items())
    return (
        f"{v['models']} models ({paths}); {v['models_with_a_pass']} with a passing path; "
        f"faults caught {v['faults_caught']}/{v['faults_placed']}; "
        f"{report.seconds:.0f} s, {report.cpu_seconds / max(1, v['models']):.1f} CPU-s per model"
    )


def check_fuzz(report: FuzzReport) -> None:
    """A BridgeError naming what the run found, if anything: crashes, models
    left without a verdict, verdicts outside the closed set, faults that passed."""
    found = []
    for label, outcomes in (
        ("crashed", report.crashes),
        ("hung", report.hangs),
        ("got no verdict", report.errors),
        ("got a verdict outside the closed set", report.outside_closed_set),
        ("passed an injected fault", report.uncaught),
    ):
        if outcomes:
            found.append(f"{len(outcomes)} {label} ({', '.join(o.id for o in outcomes)})")
    if found:
        raise BridgeError(f"fuzz seed {report.seed}: " + "; ".join(found))
