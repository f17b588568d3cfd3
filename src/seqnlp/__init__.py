"""seqnlp: the four classic sequence models of the NLP-with-sequence-models curriculum as a DVC pipeline."""

__version__ = "0.1.0"
