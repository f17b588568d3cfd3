"""The topics task's peer: TF-IDF 1-2-grams + logistic regression, on the raw CSV text and on the filtered text.

    python benchmarks/topics_peer.py [--fields title,description] [--c 3,10,30]

Trains on every row of data/topics/raw/train.csv.gz (the mirror's 20k subset: the rows the Trax model
sees, plus its 1,000 validation rows) and scores the whole test split, for a few TF-IDF settings and
regularisation strengths C. The two text columns show what the filter stage's normalisation costs a
linear model: the raw CSV keeps each news feed's escape style (` #39;` for an apostrophe, `\\` line
breaks, escaped HTML), which differs between topics, while `seqnlp classify` and any real input
arrive as plain text.
"""

import argparse
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from seqnlp import layout
from seqnlp.tasks import topics

TFIDF_SETTINGS = {
    "plain": {},
    "min_df 2": {"min_df": 2},
    "sublinear, min_df 2": {"sublinear_tf": True, "min_df": 2},
}


def texts(frame, fields, normalise):
    columns = [frame[field].map(topics.clean_text) if normalise else frame[field] for field in fields]
    return [" ".join(parts).strip() for parts in zip(*columns)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fields", default="title,description", help="comma-separated CSV columns to read")
    parser.add_argument("--c", default="3,10,30", help="comma-separated inverse regularisation strengths")
    args = parser.parse_args()
    fields, strengths = args.fields.split(","), [float(c) for c in args.c.split(",")]
    train = topics.read_csv(layout.raw("topics") / "train.csv.gz")
    test = topics.read_csv(layout.raw("topics") / "test.csv.gz")
    print(f"{len(train)} training rows, {len(test)} test rows, fields {'+'.join(fields)}")
    print(f"{'tfidf':<22}{'C':>6}{'raw CSV text':>16}{'filtered text':>16}")
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    for name, settings in TFIDF_SETTINGS.items():
        for strength in strengths:
            accuracies = []
            for normalise in (False, True):
                vectorizer = TfidfVectorizer(ngram_range=(1, 2), **settings)
                features = vectorizer.fit_transform(texts(train, fields, normalise))
                classifier = LogisticRegression(C=strength, max_iter=3000).fit(features, train["label"])
                predicted = classifier.predict(vectorizer.transform(texts(test, fields, normalise)))
                accuracies.append(float(np.mean(predicted == test["label"].to_numpy())))
            print(f"{name:<22}{strength:>6g}{accuracies[0]:>16.4f}{accuracies[1]:>16.4f}", flush=True)


if __name__ == "__main__":
    main()
