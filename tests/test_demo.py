"""The demo page (node/demo.js) in headless Chromium: real MNIST test digits
painted onto the canvas go through the page's MNIST-style preprocessing and
come out as themselves, classified as Keras classifies that input; a mail
pasted into it gets Python's answer; a pen stroke is preprocessed into
MNIST's box; the sine is forecast and scored against baselines the test
recomputes; each panel's "try an example" shows Keras's answer beside the
page's; a screenshot of the page lands in reports/demo/.

TFJS_BRIDGE_DEMO_MODELS=shared_models runs it on full-size models instead of
the small_models fixture: then the screenshot's own answers must be right and
confident too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tfjs_bridge.core.paths import NODE_DIR, PROJECT_ROOT
from tfjs_bridge.folder.tokenizer import Tokenizer
from tfjs_bridge.training import data
from tfjs_bridge.training.data import mnist_split
from tfjs_bridge.training.demo_examples import write_demo_examples

# Test digits of four different classes (7, 2, 1, 0 in the MNIST test set).
DIGITS = [0, 1, 2, 3]
ATOL = 1e-5  # the spec's; WebGL on SwiftShader matched Node within 7.2e-7 (PITFALLS)
MAIL = "Congratulations! You have WON a FREE prize. Click here to claim your cash reward now."
SCREENSHOT = PROJECT_ROOT / "reports" / "demo" / "demo.png"
EXAMPLES = 2  # of each panel's, clicked through


def _chromium_missing() -> str | None:
    own = os.environ.get("TFJS_BRIDGE_CHROMIUM")
    if own or shutil.which("chromium") or shutil.which("chromium-browser"):
        return None
    return "chromium is not installed: run `make browser`"


def demo_check(url: str, *args) -> dict:
    """demo-check.js drives the demo page at `url` in Chromium; its JSON report."""
    check = subprocess.run(
        ["node", str(NODE_DIR / "scripts" / "demo-check.js"), "--url", url, *map(str, args)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    return json.loads(check.stdout)


@pytest.fixture(scope="module")
def demo_models(request):
    own = os.environ.get("TFJS_BRIDGE_DEMO_MODELS")
    return Path(own).resolve() if own else request.getfixturevalue("small_models")


@pytest.fixture(scope="module")
def page_answers(demo_models, tmp_path_factory):
    missing = _chromium_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing}; CI must run the browser tests")
        pytest.skip(missing)
    tmp = tmp_path_factory.mktemp("demo")
    images = mnist_split("test", max(DIGITS) + 1)[0]
    pixels = [np.rint(images[i] * 255).astype(int).ravel().tolist() for i in DIGITS]
    (tmp / "digits.json").write_text(json.dumps(pixels))
    (tmp / "mail.txt").write_text(MAIL)
    examples = write_demo_examples(demo_models, tmp / "examples.json", EXAMPLES)
    server = subprocess.Popen(
        [
            "node",
            str(NODE_DIR / "demo.js"),
            "--models",
            str(demo_models),
            "--port",
            "0",
            "--examples",
            str(examples),
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()
        assert line.startswith("demo: http://127.0.0.1:"), line + server.stderr.read()
        url = line.split()[1]
        return demo_check(url, "--digits", tmp / "digits.json", "--text", tmp / "mail.txt",
                          "--examples", EXAMPLES, "--screenshot", SCREENSHOT)  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)


def _keras(models, name):
    import tf_keras

    from tfjs_bridge.core.quiet_tf import import_tensorflow

    import_tensorflow()
    return tf_keras.models.load_model(models / name / "keras.h5", compile=False)


def test_the_page_runs_on_the_backend_asked_for(page_answers):
    assert page_answers["backend"] == "webgl"  # tfjs falls back silently: checked
    assert page_answers["version"].startswith("Chrome/")
    assert page_answers["page_errors"] == []


def test_digits_drawn_through_the_page_get_kerass_answer(page_answers, demo_models):
    images = mnist_split("test", max(DIGITS) + 1)[0][DIGITS]
    seen = np.array(page_answers["seen"], dtype=np.float32).reshape(-1, 28, 28)
    keras = _keras(demo_models, "gru")
    python = keras.predict(seen, verbose=0)
    page = np.array(page_answers["digits"], dtype=np.float32)
    np.testing.assert_allclose(page, python, atol=ATOL, rtol=0)
    # The control: the check tells the digits apart, so a page that fed the
    # model another digit (or the same one each time) would fail it.
    for i in range(len(DIGITS)):
        for j in range(len(DIGITS)):
            if i != j:
                assert np.abs(page[i] - python[j]).max() > 100 * ATOL
    # An MNIST digit is already MNIST-like: the preprocessing gives it back
    # (up to a resampling error), and Keras answers the same for both.
    own = np.abs(seen - images).mean(axis=(1, 2))
    assert own.max() < 0.02, own
    assert (keras.predict(images, verbose=0).argmax(1) == python.argmax(1)).all()
    # ... and the check would see a preprocessing that moved or changed it.
    others = [
        np.abs(seen[i] - images[j]).mean()
        for i in range(len(DIGITS))
        for j in range(len(DIGITS))
        if i != j
    ]
    shifted = np.abs(np.roll(images, 1, axis=2) - images).mean(axis=(1, 2))
    assert min(others) > 5 * own.max() and shifted.min() > 2 * own.max()


def test_the_page_reads_the_canvas_as_python_reads_mnist():
    # The page's input is round(mean of a 10x10 block) / 255 in float64,
    # stored as float32; Python's is float32(byte) / float32(255). Same for every byte.
    b = np.arange(256)
    assert (np.float32(b / 255.0) == b.astype(np.float32) / np.float32(255)).all()


def test_a_pen_stroke_is_made_mnist_like(page_answers):
    stroke = np.array(page_answers["stroke"])
    assert stroke.shape == (10,) and abs(stroke.sum() - 1) < 1e-4
    # A vertical line drawn 200 canvas pixels long at x = 140 from the top:
    # gru is given it 20 pixels tall, centred by mass, MNIST-wide.
    seen = np.array(page_answers["stroke_seen"]).reshape(28, 28)
    rows, cols = np.nonzero(seen > 0.1)
    assert rows.max() - rows.min() + 1 in (20, 21)
    mass = seen.sum()
    centre = ((seen.sum(1) * (np.arange(28) + 0.5)).sum() / mass,
              (seen.sum(0) * (np.arange(28) + 0.5)).sum() / mass)  # fmt: skip
    assert np.allclose(centre, (14.5, 14.5), atol=0.5), centre
    width = mass / (rows.max() - rows.min() + 1)
    assert 1.5 < width < 4.5, width  # MNIST's strokes: 1.86 to 4.04 pixels for 80 % of digits


def test_a_pasted_mail_gets_pythons_spam_probability(page_answers, demo_models):
    if not (demo_models / "spam").exists():
        pytest.skip("spam is not in the models folder")
    ids = Tokenizer.load(demo_models / "spam" / "tokenizer.json").encode([MAIL])
    python = float(_keras(demo_models, "spam").predict(ids, verbose=0)[0, 0])
    assert abs(page_answers["spam"] - python) <= ATOL


def test_the_sine_is_forecast_and_scored_against_naive_baselines(page_answers):
    forecast = page_answers["forecast"]
    assert len(forecast["predicted"]) == 48 and len(forecast["truth"]) == 72
    assert np.isfinite(forecast["predicted"]).all()
    # The page's errors, recomputed here from what it observed and forecast.
    truth = np.array(forecast["truth"][24:])
    history, lag = np.array(forecast["history"]), forecast["lag"]
    window = history[lag:]
    assert np.allclose(window, forecast["window"])
    steps = np.arange(48)

    def seasonal(lag_used):
        return history[lag + 24 + steps - lag_used * np.ceil((steps + 1) / lag_used).astype(int)]

    forecasts = {
        "lstm_sine": np.array(forecast["predicted"]),
        "last value": np.full(48, window[-1]),
        "seasonal naive": seasonal(lag),
    }
    for name, values in forecasts.items():
        errors = [
            ((values[a - 1 : b] - truth[a - 1 : b]) ** 2).mean() for a, b in forecast["horizons"]
        ]
        np.testing.assert_allclose(forecast["errors"][name], errors, rtol=1e-9, atol=1e-12)
    # The control: a seasonal naive one step off its period scores otherwise.
    wrong = [
        ((seasonal(lag + 1)[a - 1 : b] - truth[a - 1 : b]) ** 2).mean()
        for a, b in forecast["horizons"]
    ]
    assert not np.allclose(forecast["errors"]["seasonal naive"], wrong, rtol=1e-3)
    # The observations carry the training noise: seasonal naive (told the
    # period, integer at the page's defaults) is off by about that much.
    assert (
        0.2 * data.SINE_NOISE**2 < forecast["errors"]["seasonal naive"][-1] < 5 * data.SINE_NOISE**2
    )


def test_the_sliders_span_lstm_sines_training_range(page_answers):
    sliders = page_answers["sliders"]
    assert sliders["period"] == list(data.SINE_PERIOD)
    assert sliders["amplitude"] == [100 * a for a in data.SINE_AMPLITUDE]
    assert sliders["phase"] == [0, int(100 * data.SINE_PHASE[1])]
    assert "period 12–40" in page_answers["shown"]["sine-domain"]


def test_each_panel_says_what_its_model_scored(page_answers, demo_models):
    manifest = json.loads((demo_models / "gru" / "manifest.json").read_text())
    shown = page_answers["shown"]
    assert f"test accuracy {100 * manifest['test']['accuracy']:.1f} %" in shown["gru-test"]
    sine = json.loads((demo_models / "lstm_sine" / "manifest.json").read_text())
    assert f"test MSE {sine['test']['loss']:.4f}" in shown["lstm_sine-test"]
    for panel in ("gru-meta", "lstm_sine-meta"):
        assert shown[panel].startswith("tfjs · backend webgl · last prediction ")


def test_litert_is_offered_disabled_without_a_tflite(page_answers, demo_models):
    """The runtime select's LiteRT.js option (tests/test_demo_litert.py runs
    it): disabled when no model folder has a verified .tflite, saying why."""
    if any((demo_models / name / "tflite").exists() for name in ("gru", "lstm_sine", "spam")):
        pytest.skip("a model here has a .tflite")
    option = page_answers["litert_option"]
    assert option["disabled"] is True
    assert "gru: no tflite: run `tfjs-bridge convert gru --format tflite`" in option["title"]
    assert page_answers["runtime"] == {"runtime": "tfjs", "backend": "webgl"}


def test_the_examples_show_kerass_answer_beside_the_pages(page_answers):
    examples = page_answers["examples"]
    for name in ("gru", "lstm_sine", "spam"):
        if not any(examples[name]):
            assert name == "spam", examples  # only spam may be missing from small_models
            continue
        assert len(examples[name]) == EXAMPLES
        for example in examples[name]:
            np.testing.assert_allclose(example["page"], example["keras"], atol=ATOL, rtol=0)
    # The control: two different examples' answers differ, so a page that
    # showed one answer for every example would fail the check.
    first, second = examples["lstm_sine"]
    assert abs(first["page"] - second["keras"]) > 100 * ATOL


def test_the_screenshots_own_answers_are_confident_and_right(page_answers, demo_models):
    manifest = json.loads((demo_models / "gru" / "manifest.json").read_text())
    if manifest["test"]["accuracy"] < 0.95:
        pytest.skip("small models (TFJS_BRIDGE_DEMO_MODELS=shared_models checks full-size ones)")
    stroke = np.array(page_answers["stroke"])
    assert stroke.argmax() == 1 and stroke.max() > 0.9, stroke  # a vertical line: 1
    assert page_answers["spam"] > 0.9  # MAIL is spam by any reading


def test_a_screenshot_of_the_page_is_written(page_answers):
    from PIL import Image  # pillow: matplotlib's dependency, pinned in constraints.txt

    shot = page_answers["screenshot"]
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(SCREENSHOT) as image:
        assert image.format == "PNG"
        width, height = image.size
        pixels = np.asarray(image.convert("RGB"))
    assert (width, height) == (shot["width"], shot["height"]) == (1280, 800)
    # Not blank: the page's dark header, the black canvas and white panels.
    colors = {tuple(p) for p in pixels[::8, ::8].reshape(-1, 3)}
    assert len(colors) > 50 and pixels.std() > 20


def test_demo_examples_are_computed_once_per_set_of_models(tmp_path, monkeypatch):
    """`tfjs-bridge demo` computes Keras's answers once: a second start reuses
    the cached file; a retrained model (another keras.h5 sha256) gets a new
    one, and the stale file goes."""
    from tfjs_bridge.training.demo_examples import cached_demo_examples

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "models"
    (root / "gru").mkdir(parents=True)
    manifest = root / "gru" / "manifest.json"
    manifest.write_text(json.dumps({"files": {"keras.h5": "a" * 64}}))
    first = cached_demo_examples(root)
    stamp = first.stat().st_mtime_ns
    assert cached_demo_examples(root) == first and first.stat().st_mtime_ns == stamp
    manifest.write_text(json.dumps({"files": {"keras.h5": "b" * 64}}))
    second = cached_demo_examples(root)
    assert second != first and second.exists() and not first.exists()
    assert list(second.parent.iterdir()) == [second]
