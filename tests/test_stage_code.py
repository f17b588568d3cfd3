"""dvc.yaml declares every source file each stage runs (from the import graph), and the modules it leaves
out on purpose cannot change an output."""

import ast
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from seqnlp import cli, params, stage_code

SOURCE = REPO / "src"
DVC_STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_dvc_yaml_declares_exactly_the_code_each_stage_runs():
    task_modules = yaml.safe_load((REPO / "params.yaml").read_text())["tasks"].values()
    gaps = {stage: found for stage, found in stage_code.gaps(DVC_STAGES, task_modules, SOURCE).items() if any(found)}
    assert not gaps, "dvc.yaml's code deps differ from the import graph: " + "; ".join(
        f"{stage}: add {missing or 'nothing'}, remove {unused or 'nothing'}" for stage, (missing, unused) in gaps.items())


def write_package(root, files):
    for name, text in files.items():
        path = root / "seqnlp" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def package(tmp_path):
    return write_package(tmp_path, {
        "__init__.py": "from seqnlp import api\n",
        "api.py": "",
        "cli.py": "",
        "errors.py": "",
        "lazy.py": "def trax_module(name, first='seqnlp.compat'):\n    pass\n",
        "compat.py": "",
        "layers.py": "",
        "helpers.py": "",
        "unused.py": "",
        "stages/__init__.py": "",
        "stages/train.py": """
            from seqnlp.errors import UserError
            def run(task):
                from seqnlp import helpers
        """,
        "tasks/__init__.py": "",
        "tasks/topics.py": """
            from seqnlp.lazy import trax_module
            layers = trax_module("seqnlp.layers")
        """,
        "tasks/fifth.py": "from seqnlp.tasks import topics\n",
    })


def test_the_import_graph_follows_local_and_lazy_imports(package):
    assert stage_code.required(["seqnlp.stages.train", "seqnlp.tasks.topics"], package) == [
        "seqnlp/compat.py", "seqnlp/helpers.py", "seqnlp/layers.py", "seqnlp/lazy.py", "seqnlp/stages/__init__.py",
        "seqnlp/stages/train.py", "seqnlp/tasks/__init__.py", "seqnlp/tasks/topics.py"]


def test_a_task_reusing_another_tasks_code_must_declare_it(package):
    stages = {"train": {"foreach": "${tasks}", "do": {"cmd": "seqnlp train ${key}", "deps": [
        f"src/seqnlp/{name}" for name in ("compat.py", "helpers.py", "layers.py", "lazy.py", "stages/__init__.py",
                                                 "stages/train.py", "tasks/__init__.py", "tasks/${item}.py",
                                                 "unused.py")]}}}
    missing, unused = stage_code.gaps(stages, ["topics", "fifth"], package)["train"]
    assert missing == ["src/seqnlp/tasks/topics.py"]
    assert unused == ["src/seqnlp/unused.py"]


def test_the_undeclared_modules_exist():
    for path in stage_code.UNDECLARED:
        assert (SOURCE / path).is_file(), path


def test_the_cli_hands_a_stage_only_its_own_arguments(monkeypatch, tmp_path):
    calls = []
    for command, module in stage_code.STAGE_MODULES.items():
        stage = __import__(module, fromlist=["run"])
        monkeypatch.setattr(stage, "run", lambda *args, module=module: calls.append((module, args)))
    monkeypatch.chdir(REPO)
    for name, stage in DVC_STAGES.items():
        template = stage.get("do", stage)
        foreach = stage.get("foreach")
        item = foreach[0] if isinstance(foreach, list) else "topics"
        words = template["cmd"].replace("${key}", item).replace("${item}", item).split()
        calls.clear()
        assert cli.main(words[1:]) in (None, 0)
        module = stage_code.STAGE_MODULES[words[1]]
        expected = {"seqnlp.stages.data": (words[1], words[2]), "seqnlp.stages.plots": (Path(words[2]), "svg")}
        assert calls == [(module, expected.get(module, (words[2],)))], name


def test_params_returns_the_file_unchanged():
    assert params.load(REPO / "params.yaml") == yaml.safe_load((REPO / "params.yaml").read_text())


def test_errors_holds_only_exception_classes():
    tree = ast.parse((SOURCE / "seqnlp" / "errors.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            assert all(isinstance(base, ast.Name) and (base.id.endswith("Error") or base.id == "Exception")
                       for base in node.bases), node.name
        else:
            assert isinstance(node, (ast.Expr, ast.ImportFrom, ast.Import)), ast.dump(node)


def test_no_stage_code_uses_the_package_init():
    """The package's __init__ only defines names; no module a stage runs uses any of them."""
    init = ast.parse((SOURCE / "seqnlp" / "__init__.py").read_text())
    defined = {target.id for node in init.body if isinstance(node, ast.Assign) for target in node.targets} | {
        node.name for node in init.body if isinstance(node, ast.FunctionDef)}
    assert all(isinstance(node, (ast.Expr, ast.Assign, ast.FunctionDef)) for node in init.body)
    task_modules = yaml.safe_load((REPO / "params.yaml").read_text())["tasks"].values()
    for command, module in stage_code.STAGE_MODULES.items():
        for path in stage_code.required([module, *(f"seqnlp.tasks.{task}" for task in task_modules)], SOURCE):
            for node in ast.walk(ast.parse((SOURCE / path).read_text())):
                if isinstance(node, ast.ImportFrom) and node.module == "seqnlp":
                    assert not {alias.name for alias in node.names} & defined, path
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "seqnlp":
                    assert node.attr not in defined, path
