"""What a fuzz run found, as tables: verdicts × features, and the coverage of
the generator's space (COMET's habit: a table of verdicts is worth most
beside what fraction of the space it stands on).

Coverage counts two kinds of pairs:
  (layer, option=value)  every value OPTIONS (space.py) lists for a layer:
                         the space is that table, exactly;
  (layer, neighbour)     an edge producer -> consumer of a model's graph
                         (wrappers named with their layer: Bidirectional(GRU)).
                         Which edges the generator can make is not a table:
                         the space is estimated as those in SPACE_DRAWS specs
                         drawn from another seed (cheap: no model is built)."""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import cache
from pathlib import Path

from ..folder.artifacts import write_json_atomic
from ..folder.parity_record import STATUSES
from . import space

SPACE_SEED = 999_999  # the seed whose specs estimate the reachable neighbour pairs
SPACE_DRAWS = 5000
COLUMNS = (*STATUSES, "crash", "hang", "error")


@cache
def neighbour_space() -> frozenset:
    pairs = set()
    for i in range(SPACE_DRAWS):
        pairs |= space.neighbour_pairs(space.draw_spec(SPACE_SEED, i))
    return frozenset(pairs)


def coverage(specs: list[dict]) -> dict:
    options, neighbours = set(), set()
    for spec in specs:
        options |= space.option_pairs(spec)
        neighbours |= space.neighbour_pairs(spec)
    option_space = space.option_space()
    reachable = neighbour_space() | neighbours
    return {
        "layer_option": {
            "covered": len(options & option_space),
            "space": len(option_space),
            "fraction": round(len(options & option_space) / len(option_space), 3),
            "missing": sorted(f"{a} {b}" for a, b in option_space - options),
        },
        "layer_neighbour": {
            "covered": len(neighbours),
            "space": len(reachable),
            "space_estimate": f"edges in {SPACE_DRAWS} specs of seed {SPACE_SEED}",
            "fraction": round(len(neighbours) / len(reachable), 3),
        },
    }


def _model_verdicts(outcome) -> Counter:
    """One count per path, or the model's crash / error."""
    if outcome.failure:
        return Counter({outcome.failure["kind"]: 1})
    return Counter(outcome.verdicts.values())


def verdict_counts(outcomes) -> dict:
    paths = Counter()
    for o in outcomes:
        paths += _model_verdicts(o)
    placed = [o for o in outcomes if o.fault and o.fault.get("placed")]
    return {
        "models": len(outcomes),
        "paths": {k: paths[k] for k in COLUMNS if paths[k]},
        "models_with_a_pass": sum(1 for o in outcomes if "pass" in o.verdicts.values()),
        "faults_placed": len(placed),
        "faults_caught": sum(1 for o in placed if o.fault["caught"]),
    }


def by_feature(outcomes) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for o in outcomes:
        counts = _model_verdicts(o)
        for feature in space.features(o.spec):
            row = rows.setdefault(
                feature, {"models": 0, "with_pass": 0, **dict.fromkeys(COLUMNS, 0)}
            )
            row["models"] += 1
            row["with_pass"] += "pass" in o.verdicts.values()
            for k, n in counts.items():
                row[k] += n
    return dict(sorted(rows.items(), key=lambda kv: (_group(kv[0]), kv[0])))


def _group(feature: str) -> int:
    return ["layer", "option", "around", "structure", "source", "policy"].index(
        feature.split("=", 1)[0]
    )


def markdown(report_json: dict, outcomes) -> str:
    """table.md: the verdict × feature table, faults, coverage, and what failed."""
    cols = [c for c in COLUMNS if any(_model_verdicts(o)[c] for o in outcomes)] or ["pass"]
    v = report_json["verdicts"]
    cov = report_json["coverage"]
    lines = [
        f"Fuzz run: `{report_json['command']}`, {report_json['samples']} samples per model, "
        f"{report_json['machine']['cores']}-core {report_json['machine']['cpu']}; "
        f"{report_json['seconds']:.0f} s ({report_json['seconds_per_model']:.1f} s and "
        f"{report_json['cpu_seconds_per_model']:.1f} CPU-s per model).",
        "",
        f"{v['models']} models, {v['models_with_a_pass']} with at least one passing path; "
        f"faults caught {v['faults_caught']} of {v['faults_placed']} placed. "
        f"Coverage: (layer, option) {cov['layer_option']['covered']}/"
        f"{cov['layer_option']['space']} ({100 * cov['layer_option']['fraction']:.0f} %), "
        f"(layer, neighbour) {cov['layer_neighbour']['covered']}/"
        f"{cov['layer_neighbour']['space']} ({100 * cov['layer_neighbour']['fraction']:.0f} %, "
        f"space estimated from {cov['layer_neighbour']['space_estimate']}).",
        "",
        "Paths per verdict (a crash or error counts once per model); "
        "`models ✓` = models with at least one passing path.",
        "",
        "| feature | models | models ✓ | " + " | ".join(cols) + " |",
        "|---|---:|---:|" + "---:|" * len(cols),
    ]
    for feature, row in by_feature(outcomes).items():
        cells = " | ".join(str(row[c]) if row[c] else "" for c in cols)
        lines.append(f"| {feature} | {row['models']} | {row['with_pass']} | {cells} |")
    failing = [o for o in outcomes if o.failure]
    if failing:
        lines += ["", "Models without a verdict:", ""]
        lines += [
            f"- `{o.id}`: {o.failure['kind']} at {o.failure['step']}: {o.failure['message']}"
            for o in failing
        ]
    uncaught = [o for o in outcomes if o.uncaught]
    if uncaught:
        lines += ["", "Injected faults that passed:", ""]
        lines += [f"- `{o.id}`: {o.fault}" for o in uncaught]
    reasons = Counter()
    for o in outcomes:
        for runtime, reason in o.reasons.items():
            reasons[(o.verdicts[runtime], runtime.split("/")[1], _short(reason))] += 1
    if reasons:
        lines += ["", "Why paths did not pass (verdict, format, reason: paths):", ""]
        lines += [f"- {s}, {fmt}: {r} ({n})" for (s, fmt, r), n in reasons.most_common(25)]
    return "\n".join(lines) + "\n"


def _short(reason: str, width: int = 140) -> str:
    """A reason as the table groups it: without folders, layer numbers and counts."""
    reason = re.sub(r"(/[^\s/:]+)+/", "", reason)  # /tmp/.../0-fz0-005/tfjs_graph/model.json
    reason = re.sub(r"\b([a-z][a-z0-9]*)_\d+\b", r"\1_N", reason)  # dense_8 -> dense_N
    reason = re.sub(r"\b\d+ of \d+ values", "n of m values", reason)
    return reason if len(reason) <= width else reason[: width - 1] + "…"


def rewrite_table(folder: Path) -> Path:
    """table.md again from folder/fuzz.json (after a change to this module)."""
    from .harness import Outcome

    data = json.loads((folder / "fuzz.json").read_text())
    outcomes = [
        Outcome(m["spec"], m["verdicts"], m["reasons"], m["failure"], m["fault"], m["seconds"],
                m.get("cpu_seconds", 0.0))
        for m in data["models"]
    ]  # fmt: skip
    table = folder / "table.md"
    table.write_text(markdown(data, outcomes))
    return table


def write(report, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    data = report.to_json()
    json_path = folder / "fuzz.json"
    write_json_atomic(json_path, data)
    table = folder / "table.md"
    table.write_text(markdown(data, report.outcomes))
    return [json_path, table]
