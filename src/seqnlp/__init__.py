"""seqnlp: the four classic sequence models of the NLP-with-sequence-models curriculum as a DVC pipeline."""

__version__ = "0.1.0"


def load(source):
    """A trained model's predictor, from a model package folder or, inside a checkout, a task name.

    >>> model = seqnlp.load("packages/topics")   # or seqnlp.load("topics") inside the repository
    >>> model.predict(["Stocks fell after the central bank raised rates"])
    """
    from seqnlp.packages import load as load_package

    return load_package(source)
