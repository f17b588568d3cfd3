"""Where each stage of a task reads and writes, relative to the repository root (as in dvc.yaml)."""

from pathlib import Path


def raw(task):
    return Path("data") / task / "raw"


def filtered(task):
    return Path("data") / task / "filtered"


def tokens(task):
    return Path("data") / task / "tokens"


def model(task):
    return Path("models") / task


def metrics(task):
    return Path("metrics") / f"{task}.json"


def plots(task):
    return Path("plots") / task


def training_log(task):
    return plots(task) / "train"


def samples(task):
    return Path("samples") / f"{task}.txt"


def checkpoints(task):
    """In-progress training state; outside the declared outputs, so that no tool deletes it before a rerun."""
    return Path("checkpoints") / task


def index(task):
    """The encoded questions a retrieval task searches, built from its trained model."""
    return Path("data") / task / "index"


def exported(task):
    """The trained model's forward pass and weights, for the commands that run it without trax."""
    return Path("models") / "serving" / task


def package(task):
    """The trained model as a self-contained folder that works outside the repository (seqnlp.packages)."""
    return Path("packages") / task
