"""`tfjs-bridge verify` as one library call: the command's options as they are
given (registry names, folders, users' models, runtime names, input ranges)
resolved and verified; and the one error for a report that did not pass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.errors import BridgeError
from ..core.paths import models_root
from ..core.progress import NO_PROGRESS, Progress
from ..folder.signature import parse_ranges
from ..runtime.runtimes import resolve_runtimes
from ..training.registry import resolve
from .report import write_report
from .verify import VerifyReport, verify_models


@dataclass
class Verified:
    report: VerifyReport
    written: list[Path]  # report.json and errors.png, when asked for


def verify_command(
    models: tuple[str, ...] | list[str] = (),
    runtimes: tuple[str, ...] | list[str] = (),
    samples: int | None = 500,  # None: the whole test set (--full)
    atol: float | None = None,
    rtol: float | None = None,
    input_ranges: tuple[str, ...] | list[str] = (),
    inputs_file: Path | None = None,
    keras_models: tuple[Path, ...] | list[Path] = (),
    model_dirs: tuple[Path, ...] | list[Path] = (),
    report_dir: Path | None = None,
    max_accuracy_drop: float | None = None,
    out: Path | None = None,
    progress: Progress = NO_PROGRESS,
    trust_lambda: bool = False,
    required: tuple[str, ...] | list[str] = (),
) -> Verified:
    """`verify`: the registry MODELS in the models folder `out` (all of them
    when neither MODELS nor keras_models nor model_dirs name any), the
    model_dirs and the users' keras_models, on the runtimes named (none:
    every Node path); writes report_dir/report.json and errors.png if given.
    `required` paths (check_verified) are run even when `runtimes` names others."""
    ranges = parse_ranges(input_ranges)
    chosen = resolve_runtimes((*runtimes, *required) if runtimes else ())
    root = models_root(out)
    named = models or not (keras_models or model_dirs)
    dirs = [root / spec.name for spec in resolve(models)] if named else []
    report = verify_models(
        [*dirs, *model_dirs], list(keras_models), chosen, samples, atol=atol, rtol=rtol,
        explicit_runtimes=bool(runtimes), progress=progress, ranges=ranges,
        inputs_file=inputs_file, max_accuracy_drop=max_accuracy_drop, trust_lambda=trust_lambda,
    )  # fmt: skip
    written = write_report(report, report_dir) if report_dir is not None else []
    return Verified(report, written)


def check_verified(report: VerifyReport, required: tuple[str, ...] | list[str] = ()) -> None:
    """A BridgeError naming the paths that did not pass, if any did not;
    and, for `required` paths (names or backends, as --runtime takes them),
    naming each that did not pass (or did not run) for some model."""
    if not report.ok:
        bad = [f"{r.model} {r.runtime}" for r in report.results if not r.proven]
        raise BridgeError(
            f"{len(bad)} of {len(report.results)} paths did not pass: {', '.join(bad)}"
        )
    names = [rt.name for rt in resolve_runtimes(required)] if required else []
    missed = []
    for model in dict.fromkeys(r.model for r in report.results):
        for name in names:
            # an imported folder's results read "tf-keras vs tfjs-node/layers"
            mine = [r for r in report.results
                    if r.model == model and r.runtime.split(" vs ")[-1] == name]  # fmt: skip
            missed += (
                [f"{model} {name} (not run)"]
                if not mine
                else [f"{model} {r.runtime} ({r.status})" for r in mine if not r.proven]
            )
    if missed:
        raise BridgeError(f"required paths did not pass: {', '.join(missed)}")
