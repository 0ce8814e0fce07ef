"""A text model's tokenizer: fitted in Python, saved once in the model folder
(tokenizer.json, TOKENIZER_FILE), and applied by Node with an ``encode``
that repeats Python's exactly (node/lib/io/tokenizer.js).

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
   ``max_len`` tokens are kept, and the row is padded with 0 after them; a
   text with no token at all is one out-of-vocabulary id when the file says
   ``"empty_text": "unknown"`` (all padding otherwise, and in older files).

Steps 1 and 4 use code-point ranges that Python computes from its own
``unicodedata`` when fitting and saves in the tokenizer file, so Node never
classifies a character with its own tables (Python 3.11 knows Unicode 14.0,
Node 20 a later one, where \\p{L} matches more; General_Category is not a
stable property, so even assigned characters may be reclassified).
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..core.errors import BridgeError, first_line

TOKENIZER_FORMAT = "tfjs-bridge/tokenizer"
TOKENIZER_FILE = "tokenizer.json"  # its name in a model folder (node/predict.js --text reads it)
TOKENIZER_VERSION = 1
PAD_ID = 0
OOV_ID = 1
FIRST_WORD_ID = 2
NORMALIZATIONS = ("NFC", "NFD", "NFKC", "NFKD")
# A text without a single token: all padding, or one unknown token first. A
# model that averages its masked steps divides by zero on an all-padding row
# (Keras and every tfjs path give NaN); the spam tokenizer says "unknown".
EMPTY_TEXT = ("padding", "unknown")
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
        empty_text: str = "padding",
        unicode_version: str = unicodedata.unidata_version,
        token_ranges: Ranges | None = None,
        unassigned_ranges: Ranges | None = None,
    ):
        if not (isinstance(max_len, int) and max_len >= 1):
            raise ValueError(f"max_len must be a positive integer, not {max_len!r}")
        if normalization is not None and normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS} or None")
        if empty_text not in EMPTY_TEXT:
            raise ValueError(f"empty_text must be one of {EMPTY_TEXT}, not {empty_text!r}")
        if len(set(vocab)) != len(vocab) or not all(isinstance(w, str) and w for w in vocab):
            raise ValueError("vocab must be distinct non-empty strings")
        tokens, unassigned = unicode_tables()
        self.vocab = list(vocab)
        self.max_len = max_len
        self.normalization = normalization
        self.lowercase = bool(lowercase)
        self.empty_text = empty_text
        self.unicode_version = unicode_version
        self.token_ranges = [tuple(r) for r in (tokens if token_ranges is None else token_ranges)]
        self.unassigned_ranges = [
            tuple(r) for r in (unassigned if unassigned_ranges is None else unassigned_ranges)
        ]
        # what a text without a single token encodes as, before the padding
        self._no_tokens = [OOV_ID] if empty_text == "unknown" else []
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
        empty_text: str = "padding",
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
            empty_text=empty_text,
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
            or self._no_tokens
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
            "empty_text": self.empty_text,
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
            empty_text=spec.get("empty_text", "padding"),
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
    if spec.get("empty_text", "padding") not in EMPTY_TEXT:
        return f"empty_text {spec.get('empty_text')!r} is none of {', '.join(EMPTY_TEXT)}"
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
