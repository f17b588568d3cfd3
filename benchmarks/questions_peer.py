"""The duplicate-questions peers: TF-IDF cosine, and logistic regression on TF-IDF pair features.

    python benchmarks/questions_peer.py [--c 1,3,10,30]

Uses the pipeline's own splits (data/questions/filtered: 9,000 training, 1,000 validation and 10,000
test pairs of the mirror). Two peers per TF-IDF setting (word 1-2-grams; character 2-5-grams within
words), the vocabulary fitted on the training questions:
- the cosine of the two questions' TF-IDF vectors, scored as the Siamese model is (the threshold that
  is best on validation, then test accuracy and ROC-AUC): a similarity with nothing learned;
- logistic regression on |a - b| and a * b of the two vectors: a supervised model that compares the
  questions feature by feature, which a Siamese encoder cannot (it sees one question at a time).
"""

import argparse

import numpy as np
import scipy.sparse as sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from seqnlp import layout
from seqnlp.tasks import questions

TFIDF_SETTINGS = {
    "word 1-2-grams": {"ngram_range": (1, 2), "sublinear_tf": True},
    "character 2-5-grams": {"analyzer": "char_wb", "ngram_range": (2, 5), "sublinear_tf": True, "min_df": 2},
}


def pairs(split):
    records = questions.read_filtered(layout.filtered("questions") / f"{split}.jsonl")
    return ([r["question1"] for r in records], [r["question2"] for r in records],
            np.array([r["label"] for r in records]))


def scored(valid_scores, valid_labels, test_scores, test_labels):
    threshold, _ = questions.best_threshold(valid_scores, valid_labels)
    return (f"test accuracy at the validation threshold {((test_scores > threshold) == test_labels).mean():.3f}, "
            f"ROC-AUC {roc_auc_score(test_labels, test_scores):.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--c", default="1,3,10,30", help="regularisation strengths C, comma-separated")
    args = parser.parse_args()
    splits = {split: pairs(split) for split in questions.SPLITS}
    for name, settings in TFIDF_SETTINGS.items():
        vectorizer = TfidfVectorizer(**settings).fit(splits["train"][0] + splits["train"][1])
        features, cosines, labels = {}, {}, {}
        for split, (first, second, split_labels) in splits.items():
            a, b = vectorizer.transform(first), vectorizer.transform(second)
            cosines[split] = np.asarray(a.multiply(b).sum(axis=1)).ravel()
            features[split] = sparse.hstack([abs(a - b), a.multiply(b)]).tocsr()
            labels[split] = split_labels
        print(f"{name}, cosine: {scored(cosines['valid'], labels['valid'], cosines['test'], labels['test'])}")
        for c in map(float, args.c.split(",")):
            model = LogisticRegression(C=c, max_iter=2000).fit(features["train"], labels["train"])
            probability = {split: model.predict_proba(features[split])[:, 1] for split in ("valid", "test")}
            print(f"{name}, logistic regression C={c:g}: "
                  f"{scored(probability['valid'], labels['valid'], probability['test'], labels['test'])}")


if __name__ == "__main__":
    main()
