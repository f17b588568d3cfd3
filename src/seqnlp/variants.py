"""Named variants: sets of params overrides kept in variants/NAME.yaml, run as DVC experiments."""

import copy
import json
from pathlib import Path

import yaml

from seqnlp.errors import UserError

VARIANTS_DIR = Path("variants")


def names(directory=VARIANTS_DIR):
    return sorted(path.stem for path in Path(directory).glob("*.yaml"))


def overrides(name, directory=VARIANTS_DIR):
    path = Path(directory) / f"{name}.yaml"
    if not path.exists():
        raise UserError(f"no variant {name!r}; known variants: {', '.join(names(directory)) or 'none'}")
    return yaml.safe_load(path.read_text())


def dvc_set_params(name, directory=VARIANTS_DIR):
    """The `dvc exp run` arguments that apply the variant: ['-S', 'key=value', ...].

    Values carry no spaces or quotes, so the shell can split ``$(seqnlp variant NAME)`` as it is.
    """
    arguments = []
    for key, value in overrides(name, directory).items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        arguments += ["-S", f"{key}={text}"]
    return arguments


def set_param(params, dotted, value):
    """Set ``params["a"]["b"]["c"]`` for ``dotted="a.b.c"``; the key must already exist."""
    *parents, key = dotted.split(".")
    section = params
    for parent in parents:
        section = section[parent]
    if key not in section:
        raise UserError(f"{dotted} is not a key of params.yaml")
    section[key] = value


def apply_overrides(params, dotted_values, origin):
    """A copy of the params dict with ``{dotted key: value}`` set; an unknown key is named with ``origin``."""
    params = copy.deepcopy(params)
    for dotted, value in (dotted_values or {}).items():
        try:
            set_param(params, dotted, value)
        except UserError as error:
            raise UserError(f"{origin}: {error}") from None
    return params


def apply(params, name, directory=VARIANTS_DIR):
    """A copy of the params dict with the variant's overrides applied."""
    return apply_overrides(params, overrides(name, directory), f"variant {name!r}")
