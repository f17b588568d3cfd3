"""trax's subword encoding (``trax.data.Tokenize`` with ``vocab_type="subword"``), without TensorFlow.

trax's ``SubwordTextEncoder`` and its tokenizer import TensorFlow at module level, seconds before they
encode anything, though the algorithm is plain Python: split the text into runs of letters and digits and
runs of other characters, escape each run, and cover it greedily with the longest subwords of the
vocabulary. This is that algorithm, for a vocabulary file trax wrote (trax still builds the vocabulary);
tests/test_subwords.py checks it against trax's encoder id for id.
"""

import unicodedata
from functools import lru_cache
from pathlib import Path

ESCAPE_CHARACTERS = frozenset("\\_u;0123456789")


def _is_alphanumeric(character):
    return unicodedata.category(character)[0] in "LN"


def split_runs(text):
    """trax.data.tokenizer.encode: alternating runs of alphanumeric and other characters, except that the
    single space between two words is dropped (decoding puts it back)."""
    if not text:
        return []
    runs, start = [], 0
    alphanumeric = [_is_alphanumeric(character) for character in text]
    for position in range(1, len(text)):
        if alphanumeric[position] != alphanumeric[position - 1]:
            run = text[start:position]
            if run != " " or start == 0:
                runs.append(run)
            start = position
    runs.append(text[start:])
    return runs


class SubwordEncoder:
    """Text -> subword ids with the vocabulary file of a ``trax.data.text_encoder.SubwordTextEncoder``."""

    def __init__(self, path):
        # One subword per "\n"-separated line, quoted: split on "\n" only, as trax's file reader does, since
        # a subword may hold any other line-breaking character.
        lines = Path(path).read_bytes().decode("utf-8").split("\n")
        subwords = []
        for line in lines[:-1] if lines[-1] == "" else lines:
            line = line.rstrip()
            quoted = any(line.startswith(quote) and line.endswith(quote) for quote in "'\"")
            subwords.append(line[1:-1] if quoted else line)
        self.vocab_size = len(subwords)
        self._ids = {subword: index for index, subword in enumerate(subwords) if subword}
        self._longest = max(len(subword) for subword in subwords)
        self._alphabet = {character for subword in subwords for character in subword} | ESCAPE_CHARACTERS
        self._run_ids = lru_cache(maxsize=2 ** 16)(self._encode_run)

    def _escape(self, run):
        run = run.replace("\\", "\\\\").replace("_", "\\u")
        return "".join(character if character in self._alphabet and character != "\n" else f"\\{ord(character)};"
                       for character in run) + "_"

    def _encode_run(self, run):
        escaped, ids, start = self._escape(run), [], 0
        while start < len(escaped):
            for end in range(min(len(escaped), start + self._longest), start, -1):
                if escaped[start:end] in self._ids:
                    ids.append(self._ids[escaped[start:end]])
                    start = end
                    break
            else:
                raise ValueError(f"{escaped[start:]!r} has no subword in the vocabulary")
        return ids

    def encode(self, text):
        return [index for run in split_runs(text) for index in self._run_ids(run)]
