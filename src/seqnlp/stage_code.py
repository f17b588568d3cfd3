"""The source files each pipeline stage runs, from the import graph, to check dvc.yaml's code dependencies.

DVC reruns a stage when one of its declared dependencies changes, and the train stage's checkpoint
fingerprint covers the same files, so a module a stage runs but does not declare is an edit that no tool
notices. :func:`required` follows every import a module can make, statically: ``import`` and
``from ... import`` statements anywhere in it (inside functions too), and string constants naming a
seqnlp module (``LazyModule("seqnlp.layers")``, ``trax_module``'s ``first="seqnlp.compat"``). The task
module a stage loads by name (``tasks.load``) is the stage's ``${item}``.

A few modules every stage imports are left out on purpose, because no edit to them can change an output
(each reason is checked by a test in tests/test_stage_code.py):
"""

import ast
from pathlib import Path

PACKAGE = "seqnlp"
SOURCE_ROOT = Path("src")

UNDECLARED = {
    "seqnlp/__init__.py": "the package's version and the Python API's entry point (seqnlp.load), which no stage "
                          "calls; stages import it only because Python runs a package's __init__ first",
    "seqnlp/cli.py": "parses the command line and hands the stage's own arguments to the stage module's run()",
    "seqnlp/errors.py": "exception classes: an error stops a stage before it replaces any output, so their "
                        "wording reaches only the terminal",
    "seqnlp/params.py": "finds params.yaml and checks it, then returns its contents unchanged: it can refuse a "
                        "run, never change one",
}

# The `seqnlp SUBCOMMAND` of each stage in dvc.yaml, and the module that runs it.
STAGE_MODULES = {
    "download": "seqnlp.stages.data",
    "filter": "seqnlp.stages.data",
    "tokenize": "seqnlp.stages.data",
    "train": "seqnlp.stages.train",
    "evaluate": "seqnlp.stages.evaluate",
    "export": "seqnlp.stages.export",
    "samples": "seqnlp.stages.samples",
    "index": "seqnlp.stages.index",
    "plots": "seqnlp.stages.plots",
    "package": "seqnlp.stages.package",
}

__doc__ += "".join(f"\n* ``{path}``: {reason}." for path, reason in UNDECLARED.items())


def module_file(name, source_root=SOURCE_ROOT):
    """The file of seqnlp module ``name`` (dotted), or None when there is no such module."""
    path = Path(source_root, *name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_packages(name):
    """``name`` and the packages above it: importing a.b.c runs a/__init__ and a/b/__init__ first."""
    parts = name.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts) + 1)]


def referenced_modules(path, source_root=SOURCE_ROOT):
    """The seqnlp modules that the module in ``path`` can import, directly."""
    names = set()
    for node in ast.walk(ast.parse(Path(path).read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)
    found = set()
    for name in names:
        if name.split(".")[0] == PACKAGE and module_file(name, source_root):
            found.update(module for module in _with_packages(name) if module_file(module, source_root))
    return found


def required(entry_modules, source_root=SOURCE_ROOT):
    """Every source file (relative to ``source_root``) that running ``entry_modules`` can execute, less
    the modules in UNDECLARED, whose imports are not followed either."""
    seen, pending = set(), [module for name in entry_modules for module in _with_packages(name)]
    while pending:
        name = pending.pop()
        path = module_file(name, source_root)
        if name in seen or path is None or path.relative_to(source_root).as_posix() in UNDECLARED:
            continue
        seen.add(name)
        pending.extend(referenced_modules(path, source_root) - seen)
    return sorted({module_file(name, source_root).relative_to(source_root).as_posix() for name in seen})


def stage_entry_modules(command, task_module=None):
    """The modules a stage command starts from: its stage module and, for a task's stage, the task's."""
    words = command.split()
    if words[0] != PACKAGE or len(words) < 2 or words[1] not in STAGE_MODULES:
        raise ValueError(f"{command!r} is not a seqnlp stage command")
    return [STAGE_MODULES[words[1]]] + ([f"{PACKAGE}.tasks.{task_module}"] if task_module else [])


def gaps(dvc_stages, task_modules, source_root=SOURCE_ROOT):
    """For each stage of dvc.yaml's ``stages:``, the source files it runs but does not declare and those it
    declares but never runs: {stage: (missing, unused)}, as dvc.yaml names them (``src/seqnlp/...``, with
    ``${item}`` standing for the task module), the code being read under ``source_root``.

    A ``foreach`` stage's one list of deps serves every task, so it must hold what each task's run needs.
    """
    found = {}
    for name, stage in dvc_stages.items():
        template = stage.get("do", stage)
        foreach = stage.get("foreach")
        modules = sorted(set(task_modules)) if foreach == "${tasks}" else (foreach or [None])
        declared = [dep for dep in template.get("deps", []) if dep.startswith(f"{SOURCE_ROOT}/")]
        missing, used = set(), set()
        for module in modules:
            as_declared = {dep.replace("${item}", str(module)): dep for dep in declared}
            for path in required(stage_entry_modules(template["cmd"], module), source_root):
                path = f"{SOURCE_ROOT}/{path}"
                if path in as_declared:
                    used.add(as_declared[path])
                else:
                    missing.add(path.replace(f"/tasks/{module}.py", "/tasks/${item}.py"))
        found[name] = (sorted(missing), sorted(set(declared) - used))
    return found
