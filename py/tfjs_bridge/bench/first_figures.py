"""The check `tfjs-bridge convert` runs on the folders it wrote, as trusted
exporters validate their output, so that Node's default path is verified and
chosen by measurement from the first run, without `verify` or `bench`:

1. a quick verify (SAMPLES inputs) of each folder on the Node paths that
   Node's default choice may pick (node/lib/runtime/choose.js's candidates:
   each installed runtime with a default_rank, for every format the folder
   holds), recorded in its parity.json as `tfjs-bridge verify` records it;
2. each path that passed timed briefly at B=1 and B=32 (bench's timing,
   BUDGET_S of repetitions per batch) on the same worker and the same load as
   its verify, and its cold start estimated from that worker's start, the
   path's load and its first call (routes.estimate_cold_starts: `node
   predict.js` per path would load and compile each path once more),
   recorded as `tfjs-bridge bench` records it. A full `tfjs-bridge bench`
   overwrites these figures, with cold starts measured whole.

`convert --no-verify` skips both. A failing path leaves the converted files
in place (they are complete); parity.json says which path failed, and Node
does not run it by default."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import BridgeError, NodeError
from ..core.paths import NODE_DIR, PROJECT_ROOT, models_root
from ..folder.parity_record import PASS
from ..parity.truth import Subject, subject_from_folder
from ..parity.verify import PathResult, VerifyReport, verify_models
from ..runtime.node_process import node_env, node_executable
from ..runtime.pool import SharedWorkers
from ..runtime.runtimes import RUNTIMES, Runtime, optional_missing
from ..training.registry import resolve
from .routes import BenchReport, bench_node, estimate_cold_starts, record_speed

# 96 samples: beside loading each path (and compiling XLA), predicting them
# is a few seconds at most; the check took 6-71 s per registry model, spam
# (two 200-step SavedModels, XLA) 487 s, on a busy 2-core machine
# (docs/parity.md). `tfjs-bridge verify` (500) and `make verify` (whole test
# sets) remain the full checks.
SAMPLES = 96
BATCHES = (1, 32)  # one request alone, and a service's full batch
# Node gets the samples in batches of 32 (and the first few alone): an XLA
# path then compiles for the two batch sizes the timing uses, once each,
# instead of for 100, 1, and again for 1 and 32 (about a minute each on spam).
CHUNK = BATCHES[-1]
BUDGET_S = 0.5  # seconds of timed calls per path and batch, after WARMUP untimed ones
# At least MIN_REPS calls, at most 200: a path at 1 s a call (spam's graph
# model, a While loop) costs ~5 s per batch size instead of ~8.
WARMUP, MIN_REPS = 2, 3

# Node's own choice (choose.js), asked of Node: for a long-lived process at
# batch 32 (the worker, `tfjs-bridge predict`) and for a one-shot
# `node predict.js` of one sample.
_ASK_NODE = """
const { chooseFormat } = require(process.argv[1]);
const dirs = process.argv.slice(2);
const asked = (dir) => ({
  long_lived: chooseFormat(dir, { batch: 32, backends: ['tensorflow'] }),
  one_shot: chooseFormat(dir, { batch: 1, oneShot: true }),
});
process.stdout.write(JSON.stringify(dirs.map(asked)));
"""


@dataclass
class FirstFigures:
    """What the check found, for every folder it checked."""

    subjects: list[Subject]
    verified: VerifyReport
    timed: BenchReport
    seconds: float = 0.0
    # model -> {"long_lived": {format, runtime, why}, "one_shot": {...}}: Node's choice
    chosen: dict[str, dict] = field(default_factory=dict)

    @property
    def failed(self) -> list[PathResult]:
        """What fails the check, as it fails verify: each mismatch (or failed
        step check), and every path of a model none of whose paths is proven."""
        proven = {r.model for r in self.verified.results if r.proven}
        return [
            r for r in self.verified.results if r.failed or (r.model not in proven and not r.proven)
        ]

    @property
    def ok(self) -> bool:
        return self.verified.ok

    def figure(self, model: str, runtime: str | None, batch: int) -> float | None:
        timing = self.timed.get(model, runtime, batch) if runtime else None
        return timing.throughput if timing else None

    def summary(self) -> list[str]:
        """A few lines per model: which paths passed, the default path and its figures."""
        lines = []
        for subject in self.subjects:
            mine = [r for r in self.verified.results if r.model == subject.name]
            passed = [r.runtime for r in mine if r.status == PASS]
            samples = self.verified.samples.get(subject.name)
            lines.append(
                f"{subject.name}: checked on {samples} samples: {len(passed)} of {len(mine)} "
                f"paths pass ({', '.join(passed) or 'none'})"
            )
            failed = self.failed
            for r in mine:
                if r.status != PASS:
                    mark = "✗" if r in failed else "-"
                    lines.append(f"  {mark} {r.runtime} {r.status}: {r.reason}")
            chosen = self.chosen.get(subject.name)
            if not chosen or not passed:
                continue
            long_lived, one_shot = chosen["long_lived"], chosen["one_shot"]
            runtime = long_lived["runtime"]
            one, full = (self.figure(subject.name, runtime, b) for b in BATCHES)
            rates = f"{one:,.0f} samples/s at B=1, {full:,.0f} at B=32" if one and full else ""
            cold = self.timed.cold_start_by_path.get((subject.name, one_shot["runtime"]))
            once = f", {cold['median_s']:.2f} s from a cold start (estimated)" if cold else ""
            lines.append(
                f"  default path: {runtime or long_lived['format']} ({rates}); "
                f"node predict.js: {one_shot['runtime'] or one_shot['format']}{once}"
            )
        return lines


def default_runtimes(subject: Subject) -> list[Runtime]:
    """The paths Node may choose by default for this folder (choose.js's
    candidates): installed runtimes with a default_rank, for the formats it holds."""
    return [
        rt
        for rt in RUNTIMES.values()
        if rt.default_rank is not None and rt.format in subject.formats and not optional_missing(rt)
    ]


def node_choices(model_dirs: list[Path]) -> list[dict]:
    """What Node's choose.js picks for each folder: long-lived and one-shot."""
    choose = NODE_DIR / "lib" / "runtime" / "choose.js"
    proc = subprocess.run(
        [node_executable(), "-e", _ASK_NODE, str(choose), *map(str, model_dirs)],
        cwd=PROJECT_ROOT, env=node_env(), capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise NodeError("node could not say which path it chooses", proc.stderr)
    return json.loads(proc.stdout)


def check(
    model_dirs: list[Path],
    samples: int = SAMPLES,
    batches: tuple[int, ...] = BATCHES,
    budget_s: float = BUDGET_S,
) -> FirstFigures:
    """Verify each folder on its default Node paths (recorded in parity.json
    as `verify` records it), then time the paths that passed (recorded as
    `bench` records it). Raises nothing for a failing path: see .ok."""
    started = time.perf_counter()
    subjects = [subject_from_folder(d) for d in model_dirs]
    wanted = {rt.name for s in subjects for rt in default_runtimes(s)}
    runtimes = [rt for name, rt in RUNTIMES.items() if name in wanted]
    # One worker per backend for both steps: each path is loaded (and its
    # XLA compiled) once, by verify, and timed on that load.
    with SharedWorkers() as shared:
        verified = verify_models(model_dirs, [], runtimes, samples, shared=shared, chunk=CHUNK)
        passed = {(r.model, r.runtime) for r in verified.results if r.status == PASS}
        pairs = [(s, rt) for rt in runtimes for s in subjects if (s.name, rt.name) in passed]
        timed = bench_node(
            pairs, list(batches), budget_s, shared=shared, warmup=WARMUP, min_reps=MIN_REPS
        )
    timed.verified = {pair: True for pair in passed}
    estimate_cold_starts(timed, pairs)
    record_speed(timed, subjects)
    figures = FirstFigures(subjects, verified, timed)
    if passed:
        chosen = node_choices(model_dirs)
        figures.chosen = {s.name: c for s, c in zip(subjects, chosen, strict=True)}
    figures.seconds = time.perf_counter() - started
    return figures


def check_converted(
    models: tuple[str, ...] | list[str],
    out: Path | None = None,
    say: Callable[[str], None] = print,
) -> FirstFigures:
    """What `convert` runs after converting the registry MODELS (none: all) in
    the models folder `out`: check(), its summary through say(), and a
    BridgeError (exit 1) naming every path that failed."""
    root = models_root(out)
    figures = check([root / spec.name for spec in resolve(models)])
    for line in figures.summary():
        say(line)
    if not figures.ok:
        bad = [f"{r.model} {r.runtime}" for r in figures.failed]
        raise BridgeError(
            f"the check after convert failed on {len(bad)} of {len(figures.verified.results)} "
            f"paths ({', '.join(bad)}): the converted files are kept, parity.json records "
            "the failures and Node does not run those paths by default"
        )
    say(f"checked and timed in {figures.seconds:.1f} s (convert --no-verify skips this)")
    return figures
