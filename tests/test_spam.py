"""The spam model end to end from raw text, CI-sized: the tokenizer fitted in
Python and saved in the model folder, the same ids in Node, the same
probabilities from `node predict.js --text` as from Keras, and verify on the
real test mails on every tfjs path. The model is the session's small one
(conftest.SMALL_TRAINING)."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from tfjs_bridge.core.paths import NODE_DIR, PROJECT_ROOT
from tfjs_bridge.core.quiet_tf import import_tensorflow
from tfjs_bridge.folder.artifacts import read_manifest, sha256
from tfjs_bridge.folder.tokenizer import OOV_ID, PAD_ID, TOKENIZER_FILE, Tokenizer
from tfjs_bridge.parity.verify import verify_models
from tfjs_bridge.runtime.node_process import node_env, node_executable, run_node_json
from tfjs_bridge.runtime.runtimes import RUNTIMES
from tfjs_bridge.training import data
from tfjs_bridge.training.registry import SPAM_TOKENIZER, get_spec
from tfjs_bridge.training.spam_corpus import load_spam

TOKENIZE = NODE_DIR / "scripts" / "tokenize.js"
TFJS_RUNTIMES = [rt for rt in RUNTIMES.values() if rt.format != "onnx"]
VERIFY_SAMPLES = 64  # real test mails, spread over the split: 2,074 distinct token ids, 31 % spam
PROBABILITY_ATOL = 1e-5
ARG_MAX_BYTES = 100_000


@pytest.fixture(scope="module")
def spam_model(small_models):
    return small_models / "spam"


@pytest.fixture(scope="module")
def split():
    return load_spam()


@pytest.fixture(scope="module")
def tokenizer(spam_model):
    return Tokenizer.load(spam_model / TOKENIZER_FILE)


@pytest.fixture(scope="module")
def keras_model(spam_model):
    import_tensorflow()
    import tf_keras

    return tf_keras.models.load_model(spam_model / "keras.h5", compile=False)


def python_probabilities(keras_model, ids):
    return keras_model(ids, training=False).numpy()[:, 0].astype(np.float64)


def run_predict(*args):
    return subprocess.run(
        [node_executable(), str(NODE_DIR / "predict.js"), *map(str, args)],
        cwd=PROJECT_ROOT,
        env=node_env(),
        capture_output=True,
        text=True,
    )


def one_error_line(proc, code=1):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert proc.stdout == ""
    return lines[0]


def test_the_model_folder_holds_its_tokenizer(spam_model, tokenizer, split):
    manifest = read_manifest(spam_model)
    path = spam_model / TOKENIZER_FILE
    assert manifest["files"][TOKENIZER_FILE] == sha256(path)
    assert manifest["tokenizer"] == {"file": TOKENIZER_FILE, **tokenizer.settings()}
    assert manifest["tokenizer"]["vocab_size"] == SPAM_TOKENIZER["vocab_size"]
    assert manifest["tokenizer"]["max_len"] == SPAM_TOKENIZER["max_len"]
    # Fitted on the whole training split, whatever the run's limit...
    assert manifest["data"]["tokenizer_fitted_on"] == split.info["train"]
    assert manifest["data"]["train"] == 1000 and manifest["data"]["train_mails"]["spam"] > 200
    # ...so it is the one verify's reference inputs are made with.
    assert tokenizer.to_json() == data.spam_tokenizer().to_json()
    (tokens,) = manifest["signature"]["inputs"]
    assert (tokens["dtype"], tokens["kind"], tokens["shape"]) == ("int32", "tokens", [200])
    assert (tokens["low"], tokens["high"], tokens["mask_value"]) == (0, tokenizer.vocab_size, 0)
    assert manifest["spec"]["task"] == "binary_classification"
    assert manifest["test"]["accuracy"] > 0.75  # the small model has learned something


def test_the_manifest_compares_the_model_with_its_baseline(spam_model):
    """train records the bag-of-words baseline on the same split (the run's
    1,000 mails) beside the model's accuracy, and the paired bootstrap
    interval of the difference; `train` prints them."""
    from tfjs_bridge.training.launcher import Trained

    manifest = read_manifest(spam_model)
    test = manifest["test"]
    low, high = test["difference_ci95"]
    assert low <= test["difference"] <= high
    # (accuracy is Keras's float32 metric; the difference is counted in mails)
    expected = test["accuracy"] - test["baseline_accuracy"]
    assert test["difference"] == pytest.approx(expected, abs=1e-6)
    # the disagreements are the difference, counted in mails
    mails = manifest["data"]["test"]
    net = test["only_model_right"] - test["only_baseline_right"]
    assert net / mails == pytest.approx(test["difference"], abs=1e-6)
    assert 0.75 < test["baseline_accuracy"] <= 1
    lines = Trained(get_spec("spam"), manifest, spam_model).lines()
    shown = f"{100 * test['baseline_accuracy']:.2f} % for the bag-of-words baseline"
    assert len(lines) == 2 and shown in lines[1] and "95 % interval" in lines[1], lines


def test_whole_test_split_same_ids_in_python_and_node(node_runtime, spam_model, tokenizer, split,
                                                      tmp_path):  # fmt: skip
    python_ids = tokenizer.encode(split.test_texts)
    jsonl = tmp_path / "test.jsonl"
    jsonl.write_text("".join(json.dumps(t) + "\n" for t in split.test_texts), encoding="utf-8")
    out = tmp_path / "ids.npy"
    result = run_node_json(TOKENIZE, spam_model / TOKENIZER_FILE, jsonl, out)
    node_ids = np.load(out)
    assert result["shape"] == [len(split.test_texts), 200] == list(node_ids.shape)
    assert node_ids.dtype == np.int32
    assert np.array_equal(python_ids, node_ids), np.flatnonzero(np.any(python_ids != node_ids, 1))
    # verify feeds exactly these ids, with the test labels.
    ids, labels = data.reference_inputs("spam", (200,), None)
    assert np.array_equal(ids, python_ids) and np.array_equal(labels, split.test_labels)
    # Not vacuous: mostly known words, some unknown, some mails cut at 200 tokens.
    used = python_ids[python_ids != PAD_ID]
    assert 0.8 < np.mean(used > OOV_ID) < 1.0
    assert 0.2 < np.mean(python_ids[:, -1] != PAD_ID) < 0.8


def _passable(mail):
    """Whether a mail can be one command-line argument: no NUL, no lone
    surrogate, and within Linux's 128 KiB per argument."""
    try:
        return "\x00" not in mail and len(mail.encode("utf-8")) < ARG_MAX_BYTES
    except UnicodeEncodeError:
        return False


def _mails(split, tokenizer):
    """A handful of real test mails (each passable as one argument), and an empty one."""
    fits = [i for i, t in enumerate(split.test_texts) if _passable(t)]
    texts = split.test_texts
    labels = split.test_labels
    unicode_html = next(
        i for i in fits
        if "<html" in texts[i].lower() and any(ord(c) > 0x7F and c != "\ufffd" for c in texts[i])
    )  # fmt: skip
    lengths = {i: len(tokenizer.tokens(texts[i])) for i in fits}
    chosen = {
        "unicode_html": texts[unicode_html],
        "ham": texts[next(i for i in fits if labels[i] == 0)],
        "spam": texts[next(i for i in fits if labels[i] == 1)],
        "short": texts[min(fits, key=lambda i: (lengths[i], i))],
        "truncated": texts[max(fits, key=lambda i: (lengths[i], -i))],
        "empty": "",
    }
    return chosen


@pytest.mark.parametrize("fmt", ["layers", "graph"])
def test_predict_text_gives_the_python_probability(node_runtime, spam_model, tokenizer,
                                                   keras_model, split, fmt):  # fmt: skip
    mails = _mails(split, tokenizer)
    assert len(tokenizer.tokens(mails["truncated"])) > 200
    assert any(0x4E00 <= ord(c) <= 0x9FFF for c in mails["unicode_html"])  # CJK, not only U+FFFD
    ids = tokenizer.encode(list(mails.values()))
    expected = python_probabilities(keras_model, ids)
    assert expected.max() - expected.min() > 0.1  # the mails get different answers
    for (name, mail), want, row in zip(mails.items(), expected, ids, strict=True):
        result = run_predict("--model", spam_model, "--format", fmt, "--text", mail, "--json")
        assert result.returncode == 0, (name, result.stderr)
        got = json.loads(result.stdout.strip().splitlines()[-1])
        assert got["format"] == fmt and got["output_shape"] == [1, 1], name
        assert got["length"] == int(np.count_nonzero(row)), name
        assert got["max_len"] == 200 and got["tokens"] == len(tokenizer.tokens(mail)), name
        assert got["oov"] == int(np.sum(row == OOV_ID)), name
        assert abs(got["probability"] - want) <= PROBABILITY_ATOL, (name, got["probability"], want)
    # the empty mail: one unknown token, not all padding (a mean over no step is NaN)
    assert ids[-1, 0] == OOV_ID and np.all(ids[-1, 1:] == PAD_ID)


def test_predict_text_file_reads_one_mail(node_runtime, spam_model, tokenizer, keras_model, split,
                                          tmp_path):  # fmt: skip
    mail = _mails(split, tokenizer)["unicode_html"]
    path = tmp_path / "mail.txt"
    path.write_text(mail, encoding="utf-8", newline="")
    want = python_probabilities(keras_model, tokenizer.encode([mail]))[0]
    result = run_predict("--model", spam_model, "--format", "layers", "--text-file", path,
                         "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert abs(got["probability"] - want) <= PROBABILITY_ATOL
    plain = run_predict("--model", spam_model, "--format", "layers", "--text-file", path)
    assert plain.returncode == 0, plain.stderr
    shown = re.search(r"^spam probability: (\d\.\d{6})$", plain.stdout, re.M)
    assert shown and abs(float(shown.group(1)) - want) <= PROBABILITY_ATOL + 5e-7, plain.stdout
    assert re.search(r"^\d+ token ids", plain.stdout, re.M), plain.stdout


def test_verify_passes_on_every_tfjs_path_with_the_real_test_mails(node_runtime, spam_model,
                                                                   split):  # fmt: skip
    report = verify_models([spam_model], [], TFJS_RUNTIMES, VERIFY_SAMPLES)
    bad = [(r.runtime, r.reason) for r in report.results if r.status != "pass"]
    assert report.ok and not bad, bad
    assert sorted(r.runtime for r in report.results) == sorted(rt.name for rt in TFJS_RUNTIMES)
    for r in report.results:
        assert r.figures["samples"] == VERIFY_SAMPLES and r.figures["outside"] == 0
        limit = 1e-5 if r.runtime.startswith("tfjs-node/") else 1e-4
        assert r.figures["max_abs"] <= limit, (r.runtime, r.figures["max_abs"])
    (fed,) = report.inputs["spam"]
    # Real mails: the ids of test mails spread over the whole split, both classes.
    ids, labels = data.reference_inputs("spam", (200,), VERIFY_SAMPLES)
    assert fed["dtype"] == "int32" and fed["shape"] == [VERIFY_SAMPLES, 200]
    assert fed["distinct_samples"] == VERIFY_SAMPLES and fed["max"] < 10_000
    assert fed["distinct_values"] == len(np.unique(ids)) > 1000
    assert 0.05 < labels.mean() < 0.6
    chosen = data.spread(len(split.test_texts), VERIFY_SAMPLES)
    assert np.array_equal(labels, split.test_labels[chosen])


def test_bad_text_file_is_one_error_line(node_runtime, spam_model, tmp_path):
    missing = tmp_path / "no-such-mail.txt"
    line = one_error_line(run_predict("--model", spam_model, "--text-file", missing))
    assert line == f"error: {missing}: no such file"
    line = one_error_line(run_predict("--model", spam_model, "--text-file", tmp_path))
    assert line == f"error: {tmp_path}: a folder, not a text file"


def test_tokenizer_is_checked_against_the_manifest(node_runtime, spam_model, tmp_path):
    # A copy of what --text reads before any model: manifest.json and tokenizer.json.
    folder = tmp_path / "spam"
    folder.mkdir()
    for name in ("manifest.json", TOKENIZER_FILE):
        shutil.copyfile(spam_model / name, folder / name)
    tokenizer = folder / TOKENIZER_FILE
    spec = json.loads(tokenizer.read_text(encoding="utf-8"))
    spec["vocab"][0], spec["vocab"][1] = spec["vocab"][1], spec["vocab"][0]  # still valid
    tokenizer.write_text(json.dumps(spec), encoding="utf-8")
    line = one_error_line(run_predict("--model", folder, "--text", "hello"))
    assert line == (
        f"error: {tokenizer}: sha256 differs from manifest.json (corrupted or tampered with): "
        "refusing to load"
    )
    tokenizer.unlink()
    line = one_error_line(run_predict("--model", folder, "--text", "hello"))
    assert line == f"error: {tokenizer}: missing (listed in manifest.json)"


def test_verify_encodes_with_the_tokenizer_the_folder_ships(spam_model, tmp_path):
    """verify's ids come from the folder's tokenizer.json (what Node encodes
    with), not from a tokenizer fitted again: a changed file, its sha256
    re-recorded, changes them; changed without the record, it is refused."""
    from tfjs_bridge.core.errors import BridgeError

    folder = tmp_path / "spam"
    folder.mkdir()
    for name in ("manifest.json", TOKENIZER_FILE):
        shutil.copyfile(spam_model / name, folder / name)
    shipped, _ = data.reference_inputs("spam", (200,), 50, folder)
    assert np.array_equal(shipped, data.reference_inputs("spam", (200,), 50)[0])
    tokenizer = folder / TOKENIZER_FILE
    spec = json.loads(tokenizer.read_text(encoding="utf-8"))
    spec["lowercase"] = False
    tokenizer.write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(BridgeError, match="sha256 differs from manifest.json"):
        data.reference_inputs("spam", (200,), 50, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][TOKENIZER_FILE] = sha256(tokenizer)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    changed, _ = data.reference_inputs("spam", (200,), 50, folder)
    assert not np.array_equal(changed, shipped)


def test_text_needs_a_text_model_and_one_mode(node_runtime, small_models, spam_model):
    line = one_error_line(run_predict("--model", small_models / "gru", "--text", "hi"), code=2)
    assert "--text needs a text model" in line and "gru is not one" in line
    line = one_error_line(
        run_predict("--model", spam_model, "--text", "hi", "--text-file", "x.txt"), code=2
    )
    assert "--text TEXT | --text-file FILE" in line  # the usage


def test_registry_spam_spec():
    spec = get_spec("spam")
    assert spec.input_shape == (SPAM_TOKENIZER["max_len"],) and spec.input_dtype == "int32"
    assert spec.layers[0].config["input_dim"] == SPAM_TOKENIZER["vocab_size"]
    assert spec.layers[0].config["mask_zero"] is True
    assert not spec.node_trainable


def test_bench_cold_start_of_a_text_model_runs(node_runtime, spam_model):
    """bench times a cold start through predict.js: a text model takes --text
    (its --value would be refused: it takes token ids)."""
    from tfjs_bridge.bench.routes import cold_start

    figures = cold_start(spam_model, "layers", runs=1)
    assert figures["format"] == "layers" and figures["median_s"] > 0
