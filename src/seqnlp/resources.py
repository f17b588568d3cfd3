"""What each pipeline stage asks of the machine (workflow/resources.yaml), read the same way by the
Snakemake rules and by the pipeline benchmark that checks the declared numbers against measurements."""

from pathlib import Path

import yaml

RESOURCES = Path("workflow/resources.yaml")


def declared(stage, path=RESOURCES, table=None):
    """The threads, mem_mb, runtime and gpu of ``stage`` (its DVC address, e.g. train@topics): the
    defaults, updated by the stage's kind, then by its own name. ``table`` is the file already read."""
    table = table or yaml.safe_load(Path(path).read_text())
    return {**table["default"], **table["stages"].get(stage.split("@")[0], {}), **table["stages"].get(stage, {})}
