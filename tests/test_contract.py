"""The task contract (seqnlp.contract): every task module provides it, and the pipeline and the commands find
a task's optional stages and commands from its module, never from a list of task names."""

import importlib
import types

import pytest
import yaml

from conftest import REPO
from seqnlp import cli, contract, tasks
from seqnlp import params as params_file


@pytest.mark.parametrize("name", tasks.modules())
def test_every_task_module_provides_the_contract(name):
    module = importlib.import_module(f"seqnlp.tasks.{name}")
    assert contract.problems(module) == []
    assert isinstance(module, contract.Task)


def test_a_missing_function_or_a_different_signature_is_named():
    def download(params):
        """takes one argument too few"""

    def model(params, mode):
        """mode lost its default"""

    module = types.ModuleType("seqnlp.tasks.sentiment")
    module.download, module.model = download, model
    found = contract.problems(module)
    assert "seqnlp.tasks.sentiment.download(params) should take (params, out)" in found
    assert "seqnlp.tasks.sentiment.model(params, mode) should take (params, mode='train')" in found
    assert "seqnlp.tasks.sentiment has no evaluate(params, model, tokens)" in found
    assert len(found) == len(contract.problems(types.ModuleType("seqnlp.tasks.empty")))  # one line per function
    assert not isinstance(module, contract.Task)


def dvc_stages():
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_every_task_goes_through_the_common_stages_and_only_capable_ones_through_the_optional_ones(monkeypatch):
    monkeypatch.chdir(REPO)
    stages = dvc_stages()
    for stage in contract.EVERY_TASKS_STAGES:
        assert stages[stage]["foreach"] == "${tasks}", stage  # params.yaml's tasks:, each with its module
    for stage in contract.STAGES:
        assert stages[stage]["foreach"] == contract.tasks_with(stage=stage), stage
    assert set(stages) == {*contract.EVERY_TASKS_STAGES, *contract.STAGES, "render_plots"}


def test_the_commands_belong_to_the_tasks_whose_predictors_answer_them(monkeypatch):
    monkeypatch.chdir(REPO)
    assert {command: contract.tasks_with(command=command) for command in contract.COMMANDS} == {
        "classify": ["topics"], "generate": ["shakespeare"], "tag": ["ner_gmb", "ner_conll"],
        "duplicates": ["questions"], "similar": ["questions"]}


@pytest.mark.parametrize("command, task, message", [
    ("samples", "topics", "task 'topics' has no generate stage: its module seqnlp.tasks.topics has no write_samples; "
                          "tasks with one: shakespeare"),
    ("index", "ner_gmb", "task 'ner_gmb' has no index stage: its module seqnlp.tasks.ner has no build_index; "
                         "tasks with one: questions"),
])
def test_an_optional_stage_of_a_task_without_it_is_one_line(command, task, message, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    assert cli.main([command, task]) == 1
    assert capsys.readouterr().err == f"seqnlp {command}: error: {message}\n"


def test_the_tasks_command_lists_each_tasks_stages_and_commands(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    assert cli.main(["tasks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["task", "module", "stages", "commands"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert list(rows) == list(params_file.load()["tasks"])
    assert rows["shakespeare"][-2:] == ["generate", "generate"]  # the generate stage, then the command
    assert rows["questions"][-3:] == ["index", "duplicates", "similar"]
    assert rows["ner_conll"][1] == "ner" and rows["ner_conll"][-1] == "tag"
