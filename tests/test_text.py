"""The spam corpus and the text tokenizer: fitted in Python, applied in both
Python (tfjs_bridge.folder.tokenizer) and Node (node/lib/io/tokenizer.js via
node/scripts/tokenize.js), with identical ids."""

import json
import subprocess
import sys
import unicodedata

import numpy as np
import pytest

from tfjs_bridge.core.errors import BridgeError
from tfjs_bridge.core.paths import NODE_DIR, PROJECT_ROOT
from tfjs_bridge.folder.tokenizer import OOV_ID, PAD_ID, TOKEN_CATEGORIES, Tokenizer
from tfjs_bridge.runtime.node_process import node_env, node_executable, run_node_json
from tfjs_bridge.training.spam_corpus import load_corpus, load_spam, mail_text
from tfjs_bridge.training.text_baseline import bag_of_words_baseline

TOKENIZE = NODE_DIR / "scripts" / "tokenize.js"
VOCAB_SIZE = 10_000
MAX_LEN = 200


@pytest.fixture(scope="module")
def spam():
    return load_spam()


@pytest.fixture(scope="module")
def fitted(spam, tmp_path_factory):
    tokenizer = Tokenizer.fit(spam.train_texts, VOCAB_SIZE, MAX_LEN)
    return tokenizer, tokenizer.save(tmp_path_factory.mktemp("tokenizer") / "tokenizer.json")


def write_jsonl(path, texts):
    # json.dumps escapes every non-ASCII character: the file is ASCII, and lone
    # surrogates survive the trip.
    path.write_text("".join(json.dumps(t) + "\n" for t in texts), encoding="utf-8")
    return path


def node_encode(tokenizer_path, texts, tmp_path, name="ids"):
    jsonl = write_jsonl(tmp_path / f"{name}.jsonl", texts)
    out = tmp_path / f"{name}.npy"
    result = run_node_json(TOKENIZE, tokenizer_path, jsonl, out)
    ids = np.load(out)
    max_len = json.loads(tokenizer_path.read_text(encoding="utf-8"))["max_len"]
    assert ids.dtype == np.int32
    assert result["shape"] == list(ids.shape) == [len(texts), max_len]
    return ids


def run_tokenize(*args):
    return subprocess.run(
        [node_executable(), str(TOKENIZE), *map(str, args)],
        cwd=PROJECT_ROOT,
        env=node_env(),
        capture_output=True,
        text=True,
    )


def mismatched_rows(a, b):
    return int(np.any(a != b, axis=1).sum())


# --- the corpus and its split -----------------------------------------------


def test_corpus_and_split(spam):
    info = spam.info
    assert info["corpus"] == {"mails": 6046, "ham": 4150, "spam": 1896}
    kept = info["corpus"]["mails"] - info["duplicates_dropped"]
    assert info["train"]["mails"] + info["test"]["mails"] == kept
    for cls in ("ham", "spam"):  # stratified: 20 % of each class
        total = info["train"][cls] + info["test"][cls]
        assert info["test"][cls] == round(total * 0.2)
    assert set(spam.train_keys).isdisjoint(spam.test_keys)
    assert set(spam.train_texts).isdisjoint(spam.test_texts)  # no mail in both
    assert spam.train_labels.dtype == np.int32 and set(np.unique(spam.test_labels)) == {0, 1}
    assert info["train"]["spam"] == int(spam.train_labels.sum())
    # The same seed gives the same split; another seed another one.
    again = load_spam()
    assert again.test_keys == spam.test_keys
    assert load_spam(seed=1).test_keys != spam.test_keys


def test_mail_text_keeps_the_subject_and_the_body():
    raw = (
        "From someone  Thu Aug 22 12:36:23 2002\n"
        "Received: from a.example (a.example [10.0.0.1])\n"
        "\tby b.example\n"
        "SUBJECT: Cheap\n  meds\n"
        "List-Id: <list.example>\n"
        "\n"
        "Body line\n\nSecond paragraph\n"
    )
    assert mail_text(raw) == "Cheap\n  meds\nBody line\n\nSecond paragraph\n"
    assert mail_text("Subject: hi\r\nX: y\r\n\r\nbody\r\n") == "hi\nbody\r\n"
    assert mail_text("Subject: only headers\n") == "only headers\n"
    assert mail_text("X-No-Subject: 1\n\nbody") == "\nbody"


# --- Python and Node give the same ids --------------------------------------


def test_whole_test_split_same_ids_in_python_and_node(node_runtime, spam, fitted, tmp_path):
    tokenizer, path = fitted
    python_ids = tokenizer.encode(spam.test_texts)
    node_ids = node_encode(path, spam.test_texts, tmp_path)
    assert python_ids.shape == (len(spam.test_texts), MAX_LEN)
    assert mismatched_rows(python_ids, node_ids) == 0
    assert np.array_equal(python_ids, node_ids)
    # Not vacuous: real words, a few unknown ones, some truncated mails.
    used = python_ids[python_ids != PAD_ID]
    assert 0.8 < np.mean(used > OOV_ID) < 1.0
    assert 0 < np.mean(python_ids[:, -1] != PAD_ID) < 1


EDGE_CASES = {
    "empty": "",
    "whitespace": " \t\n\r\u00a0\u2003\u3000 ",
    "accents": "Café crème brûlée, naïve façade, Ångström, Ærø",
    "combining": "Cafe\u0301 cre\u0300me q\u0301 x\u0323\u0302 \u0301lead",
    "cjk": "日本語のテキスト、中文电子邮件，한국어 스팸",
    "emoji": "Win 😀👍🏽 now 👨\u200d👩\u200d👧 🇫🇷 ✉️ 🫨",
    "ligatures": "ﬁnance ﬂow ﬀ ﬃ",
    "fullwidth": "ＦＲＥＥ　ＭＯＮＥＹ！！ １２３ ｆｒｅｅ",
    "compat": "① ² ½ Ⅻ ㎏ ℡ ™ ｶﾀｶﾅ",
    "html": (
        '<HTML><body bgcolor="#FFFFFF"><FONT color=#FF0000 size=+2>Click&nbsp;here</FONT>'
        " &amp; get &#36;100 &eacute;t&eacute; <a href='http://x.example/?a=1&b=2'>now</a>"
        "</body></HTML>"
    ),
    "mixed_case": "FrEe MoNeY NOW now Now nOW",
    "greek_sigma": "ΟΔΟΣ ΣΑΣ. ΣΑΣ ΟΔΟΣ! Σ σ ς",
    "special_casing": "STRASSE Straße ẞ İstanbul IıIi ǅ",
    "scripts": "हिन्दी ภาษาไทย العربية עברית Русский ١٢٣ ٤٥",
    "numbers": "3.14 1,000,000 2002-08-22 $5 0x1F 42nd",
    "invisible": "zero\u200bwidth soft\u00adhyphen non\u2060joiner bi\u200edi",
    "replacement": "caf\ufffd \ufffd\ufffd prix",
    "controls": "\x00\x1b[31mred\x1b[0m\x07 tab\tend",
    "lone_surrogates": "a\ud800b\udfffc",
    "new_unicode": "digit\U0001ccf0 ext-h\U00031350 kawi\U00011f04 \U0001fae8",
    "private_use": "pua\ue000x \U000f0000y",
    "line_separators": "one\u2028two\u2029three\x85four\x0bfive",
}


def test_edge_cases_same_tokens_in_python_and_node(node_runtime, spam, tmp_path):
    long_mail = "Subject: " + " ".join(f"w{i}" for i in range(5000))
    texts = [*EDGE_CASES.values(), long_mail, " ".join(["x"] * 64), " ".join(["x"] * 65)]
    # Fitted on the cases themselves (every token in the vocabulary): an id
    # mismatch would be a token mismatch, not hidden by the OOV id.
    tokenizer = Tokenizer.fit([*texts, *spam.train_texts[:50]], 100_000, 64)
    path = tokenizer.save(tmp_path / "edge.json")
    python_ids = tokenizer.encode(texts)
    assert not np.any(python_ids == OOV_ID)
    node_ids = node_encode(path, texts, tmp_path)
    for name, py_row, node_row in zip(
        [*EDGE_CASES, "long", "64", "65"], python_ids, node_ids, strict=True
    ):
        assert py_row.tolist() == node_row.tolist(), name
    # What the rule gives, case by case.
    tokens = tokenizer.tokens
    assert tokens(EDGE_CASES["empty"]) == tokens(EDGE_CASES["whitespace"]) == []
    assert tokens("Café brûlée") == tokens("Cafe\u0301 bru\u0302le\u0301e") == ["café", "brûlée"]
    assert tokens(EDGE_CASES["ligatures"]) == ["finance", "flow", "ff", "ffi"]
    assert tokens(EDGE_CASES["fullwidth"]) == ["free", "money", "123", "free"]
    assert tokens("① ² ½ Ⅻ") == ["1", "2", "1", "2", "xii"]
    assert tokens(EDGE_CASES["mixed_case"]) == ["free", "money"] + ["now"] * 4
    assert tokens("ΟΔΟΣ ΣΑΣ.") == ["οδος", "σας"]  # final sigma, in both languages
    assert tokens("İ") == ["i\u0307"]  # full lower-casing: two code points
    assert tokens("q\u0301 \u0301lead") == ["q\u0301", "\u0301lead"]  # marks are token characters
    assert tokens("hi😀there") == ["hi", "there"] and tokens("日本語") == ["日本語"]
    assert tokens(EDGE_CASES["html"])[:6] == ["html", "body", "bgcolor", "ffffff", "font", "color"]
    assert "nbsp" in tokens(EDGE_CASES["html"]) and "eacute" in tokens(EDGE_CASES["html"])
    assert tokens(EDGE_CASES["new_unicode"]) == ["digit", "ext", "h", "kawi"]
    # Truncation: the first max_len tokens, then post-padding.
    long_row, row64, row65 = python_ids[-3:]
    assert np.all(long_row != PAD_ID)
    assert long_row[0] == tokenizer.encode(["subject"])[0, 0]
    assert np.array_equal(row64, row65) and np.all(row64 != PAD_ID)
    assert np.all(python_ids[0] == PAD_ID)


def test_a_text_without_tokens_is_one_unknown_token_when_the_file_says_so(
    node_runtime, spam, tmp_path
):
    """`"empty_text": "unknown"` (the spam tokenizer's): a text with no token
    is [1, 0, 0, ...] in both languages; every other text is as before. The
    control: the same file with "padding" gives all zeros, in both."""
    texts = [EDGE_CASES["empty"], EDGE_CASES["whitespace"], "!!! ... $$$", *spam.test_texts[:20]]
    rows = {}
    for rule in ("unknown", "padding"):
        tokenizer = Tokenizer.fit(spam.train_texts[:200], 1000, 16, empty_text=rule)
        path = tokenizer.save(tmp_path / f"{rule}.json")
        python_ids = tokenizer.encode(texts)
        assert np.array_equal(python_ids, node_encode(path, texts, tmp_path)), rule
        assert Tokenizer.load(path).to_json() == tokenizer.to_json()
        rows[rule] = python_ids
    assert rows["unknown"][:3].tolist() == [[OOV_ID] + [PAD_ID] * 15] * 3
    assert np.all(rows["padding"][:3] == PAD_ID)
    assert np.array_equal(rows["unknown"][3:], rows["padding"][3:])


def test_a_different_rule_in_node_gives_different_ids(node_runtime, spam, fitted, tmp_path):
    """The negative control: Node with lower-casing off (only the flag changed,
    in a copy of the file) must disagree, or the parity test could not fail."""
    tokenizer, path = fitted
    spec = json.loads(path.read_text(encoding="utf-8"))
    spec["lowercase"] = False
    uncased = tmp_path / "uncased.json"
    uncased.write_text(json.dumps(spec), encoding="utf-8")
    python_ids = tokenizer.encode(spam.test_texts)
    node_ids = node_encode(uncased, spam.test_texts, tmp_path)
    assert mismatched_rows(python_ids, node_ids) > len(spam.test_texts) // 2


NODE_EVERY_CODE_POINT = r"""
const { loadTokenizer } = require(process.argv[1]);
const tok = loadTokenizer(process.argv[2]);
const own = /[\p{L}\p{M}\p{N}]+/gu;  // this Node's Unicode tables, for contrast
const ownTokens = (s) => [...s.normalize('NFKC').toLowerCase().matchAll(own)].map((m) => m[0]);
const lines = [];
for (let cp = 0; cp <= 0x10ffff; cp += 1) {
  if (cp >= 0xd800 && cp <= 0xdfff) continue;
  const s = String.fromCodePoint(cp);
  lines.push(`${tok.tokens(s).join(' ')}\t${ownTokens(s).join(' ')}`);
}
process.stdout.write(`${process.versions.unicode}\n${lines.join('\n')}\n`);
"""


def own_tokens(s):
    """The rule with this Python's unicodedata, character by character."""
    out, current = [], ""
    for ch in unicodedata.normalize("NFKC", s).lower():
        if unicodedata.category(ch)[0] in TOKEN_CATEGORIES:
            current += ch
        elif current:
            out.append(current)
            current = ""
    return [*out, current] if current else out


def test_every_code_point_tokenizes_the_same(node_runtime, fitted):
    """Each of the 1,112,064 code points (surrogates aside), alone, gives the
    same tokens in Python and Node: normalisation, lower-casing and the token
    ranges agree everywhere, not only on the corpus. With this Node's own
    \\p{L}|\\p{M}|\\p{N} instead of the file's ranges it would not (Node 20
    knows a newer Unicode than Python 3.11's 14.0)."""
    tokenizer, path = fitted
    proc = subprocess.run(
        [node_executable(), "-e", NODE_EVERY_CODE_POINT, NODE_DIR / "lib/io/tokenizer.js", path],
        env=node_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    node_unicode, *lines = proc.stdout.rstrip("\n").split("\n")
    code_points = [cp for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF]
    assert len(lines) == len(code_points)
    differ, differ_own = [], 0
    for cp, line in zip(code_points, lines, strict=True):
        ch = chr(cp)
        pinned, own = line.split("\t")
        python = " ".join(tokenizer.tokens(ch))
        assert python == " ".join(own_tokens(ch)), hex(cp)  # the ranges are this Python's
        if pinned != python:
            differ.append(hex(cp))
        differ_own += own != python
    assert differ == [], f"{len(differ)} code points differ, first {differ[:10]}"
    if node_unicode != unicodedata.unidata_version:
        assert differ_own > 0  # the ranges in the file are what makes the difference


# --- the Node script's interface and errors ---------------------------------


def test_tokenize_script_help_and_usage(node_runtime):
    proc = run_tokenize("--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: tokenize.js TOKENIZER.json")
    proc = run_tokenize("only-one-argument")
    assert proc.returncode == 2
    assert proc.stderr == "error: usage: tokenize.js TOKENIZER.json TEXTS.jsonl OUT.npy\n"


def _one_error_line(proc):
    assert proc.returncode == 1, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_tokenize_script_refuses_bad_files(node_runtime, fitted, tmp_path):
    _, path = fitted
    texts = write_jsonl(tmp_path / "t.jsonl", ["hello"])
    out = tmp_path / "out.npy"
    missing = tmp_path / "missing.json"
    assert "no tokenizer file" in _one_error_line(run_tokenize(missing, texts, out))
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": ')
    assert "not valid JSON" in _one_error_line(run_tokenize(broken, texts, out))
    spec = json.loads(path.read_text(encoding="utf-8"))
    for key, value, says in [
        ("max_len", 0, "max_len 0 is not a positive integer"),
        ("version", 2, "version 2, this reader knows 1"),
        ("normalization", "NFX", "normalization"),
        ("vocab", ["a", "a"], "vocab repeats a token"),
        ("token_ranges", [[5, 1]], "token_ranges is not a sorted list"),
        ("oov_id", 0, "pad_id and oov_id must be 0 and 1"),
    ]:
        bad = tmp_path / f"bad_{key}.json"
        bad.write_text(json.dumps({**spec, key: value}), encoding="utf-8")
        line = _one_error_line(run_tokenize(bad, texts, out))
        assert f"{bad}: not a tokenizer file (" in line and says in line, line
        with pytest.raises(BridgeError, match="not a tokenizer file") as err:
            Tokenizer.load(bad)  # Python refuses the same files
        assert says in str(err.value) and "\n" not in str(err.value)
    lines = tmp_path / "lines.jsonl"
    lines.write_text('"fine"\n42\n')
    assert "lines.jsonl line 2: not a JSON string" in _one_error_line(
        run_tokenize(path, lines, out)
    )
    lines.write_text('"fine"\n\n"after a blank line"\n')
    assert "line 2: not JSON" in _one_error_line(run_tokenize(path, lines, out))
    assert not out.exists()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert run_tokenize(path, empty, out).returncode == 0
    assert np.load(out).shape == (0, MAX_LEN)


# --- Python-side errors and the file format ---------------------------------


def test_missing_corpus_is_one_line_that_says_what_to_run(tmp_path):
    with pytest.raises(BridgeError) as err:
        load_spam(tmp_path / "nowhere")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'nowhere'}: SpamAssassin corpus not found")
    assert "run `make setup`" in message


def test_damaged_corpus_is_one_line(tmp_path):
    (tmp_path / "file_list.json").write_text('["spam-1/00001.abc.txt"]')
    with pytest.raises(BridgeError, match=r"00001\.abc\.json: corpus file missing") as err:
        load_corpus(tmp_path)
    assert "\n" not in str(err.value)
    (tmp_path / "spam-1").mkdir()
    (tmp_path / "spam-1" / "00001.abc.json").write_text('{"id": "00001", "group": "spam-1"')
    with pytest.raises(BridgeError, match="unreadable corpus file") as err:
        load_corpus(tmp_path)
    assert "\n" not in str(err.value)


def test_tokenizer_file_round_trip(fitted, spam, tmp_path):
    tokenizer, path = fitted
    spec = json.loads(path.read_text(encoding="utf-8"))
    assert spec["format"] == "tfjs-bridge/tokenizer" and spec["version"] == 1
    assert spec["normalization"] == "NFKC" and spec["lowercase"] is True
    assert (spec["max_len"], spec["pad_id"], spec["oov_id"]) == (MAX_LEN, 0, 1)
    assert spec["vocab_size"] == len(spec["vocab"]) + 2 == VOCAB_SIZE
    assert spec["unicode_version"] == unicodedata.unidata_version
    assert spec["vocab"][:3] == ["the", "a", "3d"]  # 3d: quoted-printable's "=3D"
    loaded = Tokenizer.load(path)
    sample = spam.test_texts[:100]
    assert np.array_equal(loaded.encode(sample), tokenizer.encode(sample))
    with pytest.raises(BridgeError, match="no tokenizer file"):
        Tokenizer.load(tmp_path / "missing.json")
    with pytest.raises(TypeError, match="not one string"):
        tokenizer.encode("a single string")


def test_vocabulary_ties_are_broken_by_code_point():
    tokenizer = Tokenizer.fit(["b a c b", "c a é d"], vocab_size=6, max_len=4)
    assert tokenizer.vocab == ["a", "b", "c", "d"]  # counts 2, 2, 2, then d < é
    assert tokenizer.encode(["d é zz", ""]).tolist() == [[5, 1, 1, 0], [0, 0, 0, 0]]


def test_bag_of_words_baseline_is_deterministic(spam, fitted):
    tokenizer, _ = fitted
    train = tokenizer.encode(spam.train_texts)
    test = tokenizer.encode(spam.test_texts)
    args = (train, spam.train_labels, test, spam.test_labels, tokenizer.vocab_size)
    first = bag_of_words_baseline(*args, steps=50)
    assert first == bag_of_words_baseline(*args, steps=50)
    assert first > 0.9
