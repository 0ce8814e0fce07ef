"""What "a path passed" means in every matrix test (Node, browser, LiteRT.js,
ONNX Runtime Web): one assertion helper, so the paths are held to the same
figures."""


def assert_passed(result, samples: int, max_abs: float, classification: bool) -> dict:
    """The path's verdict is pass on `samples` samples: every value within
    tolerance, max |error| at most `max_abs`, and for a classifier every
    argmax agreeing. Returns the figures."""
    assert result.status == "pass", result.reason
    figures = result.figures
    assert figures["samples"] == samples > 0
    assert figures["outside"] == 0 and figures["elements"] > 0
    assert 0 <= figures["max_abs"] <= max_abs
    if classification:
        assert figures["argmax_agree"] == figures["argmax_total"] == samples
    return figures


def converted_copies(small_models, root, names, fmt: str, file: str):
    """Copies of the small models `names` under `root`, each holding `file`:
    converted to `fmt` there when the session's models lack it."""
    import shutil

    from tfjs_bridge.conversion.convert import convert

    for name in names:
        shutil.copytree(small_models / name, root / name)
        if not (root / name / file).exists():
            convert(root / name, (fmt,))
    return root


def verify_each(root, names, runtime, samples: int):
    """verify of the folders `names` under `root` on one runtime: the report,
    and its results by model."""
    from tfjs_bridge.parity.truth import subject_from_folder
    from tfjs_bridge.parity.verify import verify

    report = verify([subject_from_folder(root / m) for m in names], [runtime], samples)
    return report, {r.model: r for r in report.results}
