"""params.yaml: found, read and checked before any stage reads, writes or deletes anything.

One JSON schema (workflow/schemas/params.schema.yaml, which Snakemake applies too) checks keys, types,
ranges and enumerations; the rules that span several keys are below. Every error names the line of
params.yaml, the dotted key and what is allowed.
"""

import os
import re
from pathlib import Path

import jsonschema
import yaml

from seqnlp.errors import UserError

PARAMS_FILE = "params.yaml"
SCHEMA_FILE = Path("workflow") / "schemas" / "params.schema.yaml"


class ParamsError(UserError):
    def __init__(self, path, key, message, line=None):
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {key or '(top level)'}: {message}")
        self.key = key


def repository_root(start=None):
    """The nearest directory at or above ``start`` that holds params.yaml and dvc.yaml."""
    start = Path(start or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        if (directory / PARAMS_FILE).is_file() and (directory / "dvc.yaml").is_file():
            return directory
    raise UserError(f"{start} is not inside a seqnlp repository (no params.yaml and dvc.yaml here or above); "
                    "run seqnlp from the repository's folder")


def own_data_paths(params):
    """Each path of the tasks' ``download.local`` (the user's own files), as (dotted key, path)."""
    for task_name in params.get("tasks", {}):
        local = (params.get(task_name) or {}).get("download", {}).get("local")
        entries = local.items() if isinstance(local, dict) else [(None, local)]
        for key, path in entries:
            if isinstance(path, str):
                yield ".".join(filter(None, [task_name, "download", "local", key])), path


def enter_repository_root():
    """Run from the repository root, as dvc.yaml's relative paths expect, wherever the user started."""
    os.chdir(repository_root())


def _line_of(node, keys):
    """1-based line of ``keys`` in a composed YAML node (a mapping's key, a sequence's item), or of its nearest
    existing parent."""
    line = None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            match = next(((name, value) for name, value in node.value if name.value == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            match = (node.value[key], node.value[key])
        else:
            match = None
        if match is None:
            break
        key_node, node = match
        line = key_node.start_mark.line + 1
    return line


def _dotted(keys):
    return ".".join(str(key) for key in keys)


def _unknown_keys(error):
    """The keys an additionalProperties error is about: neither named in the schema nor matching its patterns."""
    named, patterns = error.schema.get("properties", {}), error.schema.get("patternProperties", {})
    return sorted(key for key in error.instance
                  if key not in named and not any(re.search(pattern, str(key)) for pattern in patterns))


def _error_keys(error):
    """Where an error points: an unknown key itself rather than the mapping that holds it."""
    keys = list(error.absolute_path)
    if error.validator == "additionalProperties":
        keys.append(_unknown_keys(error)[0])
    return keys


def _describe(error):
    """A jsonschema error in words a params.yaml editor can act on."""
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {})) + [
            f"keys matching {pattern}" for pattern in error.schema.get("patternProperties", {})]
        return f"unknown key(s) {', '.join(map(repr, _unknown_keys(error)))}; allowed: {', '.join(allowed)}"
    if error.validator == "pattern" and error.schema.get("description"):
        return f"{error.instance!r} is not {error.schema['description']}"
    if error.validator == "oneOf" and error.schema.get("description"):
        return f"{error.instance!r} is not valid here; expected null or {error.schema['description']}"
    return error.message


def _cross_field_errors(everything):
    """(keys, message) for each rule that one key's schema cannot express."""
    from seqnlp import tasks

    known = tasks.modules()
    for name, module in everything["tasks"].items():
        if module not in known:
            yield ["tasks", name], f"no task module {module!r}; the modules are {', '.join(known)}"
        elif name not in everything:
            yield ["tasks", name], f"task {name!r} is listed but params.yaml has no {name}: section"
    for name in everything["tasks"]:
        section = everything.get(name)
        if not isinstance(section, dict):
            continue
        train = section.get("train", {})
        boundaries, sizes = train.get("bucket_boundaries", []), train.get("bucket_batch_sizes", [])
        if any(later <= earlier for earlier, later in zip(boundaries, boundaries[1:])):
            yield [name, "train", "bucket_boundaries"], f"{boundaries} must be strictly increasing"
        if len(sizes) != len(boundaries) + 1:
            yield ([name, "train", "bucket_batch_sizes"],
                   f"has {len(sizes)} entries; it needs one per bucket, len(bucket_boundaries) + 1 = "
                   f"{len(boundaries) + 1}")
        max_length = train.get("max_length")
        if boundaries and max_length is not None and boundaries[-1] < max_length:
            yield ([name, "train", "bucket_boundaries"],
                   f"the last boundary {boundaries[-1]} is below max_length {max_length}: trax pads the bucket above "
                   "it to each batch's longest example, so every new length compiles the training step again and "
                   "keeps it (~100 MB each); make the last boundary at least max_length")
        corpus = section.get("download", {}).get("corpus")
        split = section.get("filter", {}).get("split")
        if corpus is not None and (split is None) != (corpus == "conll2003"):
            yield ([name, "filter", "split"],
                   "conll2003 has its own split (set null)" if split else f"{corpus} needs {{valid, test}} fractions")
        local = section.get("download", {}).get("local")
        if corpus == "conll2003" and isinstance(local, dict) and not {"valid", "test"} <= set(local):
            yield [name, "download", "local"], "conll2003 needs train, valid and test files"
        if corpus == "gmb" and isinstance(local, dict) and set(local) != {"train"}:
            yield [name, "download", "local"], "gmb takes one file: {train: PATH} (the split is made by filter)"
        if split and split["valid"] + split["test"] >= 1:
            yield ([name, "filter", "split"],
                   f"valid + test = {split['valid'] + split['test']:g} leaves no lines for training; "
                   "the two fractions must sum below 1")
        filter_params = section.get("filter", {})
        train_rows = (filter_params.get("max_rows") or {}).get("train")
        fraction = filter_params.get("validation_fraction")
        if train_rows is not None and fraction is not None:
            held_out = round(train_rows * fraction)
            if held_out < 1 or held_out >= train_rows:
                yield ([name, "filter", "max_rows", "train"],
                       f"{train_rows} rows with validation_fraction {fraction:g} leave {held_out} validation and "
                       f"{train_rows - held_out} training rows; both need at least one")
        subwords = section.get("tokenize", {}).get("subwords")
        if isinstance(subwords, dict) and subwords.get("n_min", 0) > subwords.get("n_max", 0):
            yield ([name, "tokenize", "subwords", "n_min"],
                   f"{subwords['n_min']} is above n_max {subwords['n_max']}: no n-gram length is left")
        model_vocab = section.get("model", {}).get("vocab_size")
        token_vocab = section.get("tokenize", {}).get("vocab_size")
        if model_vocab is not None and token_vocab is not None and model_vocab < token_vocab:
            yield ([name, "model", "vocab_size"],
                   f"{model_vocab} is smaller than tokenize.vocab_size {token_vocab}: ids beyond it would be "
                   "silently clamped")


def check(everything, path=PARAMS_FILE, schema_path=SCHEMA_FILE, document=None):
    """Raise ParamsError for the first problem of the parsed params, in file order."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    problems = [(_error_keys(error), _describe(error))
                for error in jsonschema.Draft202012Validator(schema).iter_errors(everything)]
    if not problems:
        problems = list(_cross_field_errors(everything))
    if not problems:
        return
    if document is None:
        document = yaml.compose(Path(path).read_text()) if Path(path).exists() else None
    located = sorted(((_line_of(document, keys) or 0), keys, message) for keys, message in problems)
    line, keys, message = located[0]
    raise ParamsError(path, _dotted(keys), message, line)


def load(path=PARAMS_FILE):
    """The checked contents of params.yaml."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    try:
        document, everything = yaml.compose(text), yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise ParamsError(path, None, f"not valid YAML ({getattr(error, 'problem', error)})",
                          mark.line + 1 if mark else None) from None
    if not isinstance(everything, dict):
        raise ParamsError(path, None, "expected a mapping of tasks: and one section per task")
    check(everything, path, document=document)
    return everything
