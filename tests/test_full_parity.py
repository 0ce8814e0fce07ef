"""Full-size parity (`make verify`, marker `slow`): the models `make train
convert` wrote to shared_models/, the whole MNIST test set, every Node path.
Writes reports/verify/ (report.json, errors.png) and prints the table."""

import pytest

from tfjs_bridge.console import terminal_progress
from tfjs_bridge.core.paths import MODELS_DIR, PROJECT_ROOT
from tfjs_bridge.parity.report import print_table, write_report
from tfjs_bridge.parity.truth import subject_from_folder
from tfjs_bridge.parity.verify import record_parity, verify
from tfjs_bridge.runtime.runtimes import RUNTIMES, optional_missing
from tfjs_bridge.training.registry import MODELS

pytestmark = pytest.mark.slow


def test_every_path_agrees_on_the_full_test_sets(node_runtime):
    missing = [n for n in MODELS if not (MODELS_DIR / n / "tfjs_graph" / "model.json").exists()]
    if missing:
        pytest.fail(f"no converted models for {missing}: run `make train convert`")
    subjects = [subject_from_folder(MODELS_DIR / name) for name in MODELS]
    runtimes = [rt for rt in RUNTIMES.values() if not optional_missing(rt)]
    with terminal_progress() as progress:  # `make verify` runs pytest -s: a bar on a terminal
        report = verify(subjects, runtimes, samples=None, progress=progress)
    print_table(report)
    write_report(report, PROJECT_ROOT / "reports" / "verify")
    record_parity(report, subjects)  # the default Node path is chosen among these
    bad = [f"{r.model} {r.runtime}: {r.reason}" for r in report.results if r.status != "pass"]
    assert not bad
    for r in report.results:
        if MODELS[r.model].data == "mnist":
            assert r.figures["argmax_agree"] == r.figures["argmax_total"] == 10_000
        if r.runtime.startswith("tfjs-node/"):
            assert r.figures["max_abs"] <= 1e-5
