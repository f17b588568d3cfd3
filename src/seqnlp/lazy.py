"""Modules imported at their first use, so that a stage or command imports only what it uses.

trax pulls in TensorFlow and jax: ~10 s before anything happens. The task modules name trax, scikit-learn,
pandas and seqeval at the top, as usual, but through :class:`LazyModule`, so that ``seqnlp filter``, which
only reads and writes files, starts in about a second while ``seqnlp train`` imports trax as it builds the
model.
"""

import importlib


class LazyModule:
    """Stands for module ``name`` and imports it at the first attribute access.

    ``first`` is a module to import before it: ``seqnlp.compat`` for trax, whose fixes must be in place
    before any trax module is loaded.
    """

    def __init__(self, name, first=None):
        self._name = name
        self._first = first

    def __getattr__(self, attribute):
        if self._first:
            importlib.import_module(self._first)
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self):
        return f"<module {self._name!r}, imported at first use>"


def trax_module(name="trax"):
    """A trax module (``trax.layers``, ...), imported through seqnlp.compat at its first use."""
    return LazyModule(name, first="seqnlp.compat")
