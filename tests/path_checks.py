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
