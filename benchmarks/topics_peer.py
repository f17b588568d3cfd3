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
from tqdm import tqdm

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


def accuracies(train, test, fields, strengths):
    """Test accuracy for each (TF-IDF setting, C, normalise): features once per setting, a fit per C."""
    results = {}
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    with tqdm(total=2 * len(TFIDF_SETTINGS) * len(strengths), desc="fitting", unit=" fits") as bar:
        for normalise in (False, True):
            train_texts, test_texts = texts(train, fields, normalise), texts(test, fields, normalise)
            for name, settings in TFIDF_SETTINGS.items():
                vectorizer = TfidfVectorizer(ngram_range=(1, 2), **settings)
                train_features, test_features = vectorizer.fit_transform(train_texts), vectorizer.transform(test_texts)
                for strength in strengths:
                    classifier = LogisticRegression(C=strength, max_iter=3000).fit(train_features, train["label"])
                    predicted = classifier.predict(test_features)
                    results[name, strength, normalise] = float(np.mean(predicted == test["label"].to_numpy()))
                    bar.update()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fields", default="title,description", help="comma-separated CSV columns to read")
    parser.add_argument("--c", default="3,10,30", help="comma-separated inverse regularisation strengths")
    args = parser.parse_args()
    fields, strengths = args.fields.split(","), [float(c) for c in args.c.split(",")]
    train = topics.read_csv(layout.raw("topics") / "train.csv.gz")
    test = topics.read_csv(layout.raw("topics") / "test.csv.gz")
    results = accuracies(train, test, fields, strengths)
    print(f"{len(train)} training rows, {len(test)} test rows, fields {'+'.join(fields)}")
    print(f"{'tfidf':<22}{'C':>6}{'raw CSV text':>16}{'filtered text':>16}")
    for name in TFIDF_SETTINGS:
        for strength in strengths:
            print(f"{name:<22}{strength:>6g}{results[name, strength, False]:>16.4f}{results[name, strength, True]:>16.4f}")

if __name__ == "__main__":
    main()
