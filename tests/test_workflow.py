import jsonschema
import pytest
import yaml

from conftest import REPO
from seqnlp import tasks
from seqnlp.cli import build_parser


def load(path):
    return yaml.safe_load((REPO / path).read_text())


def test_params_yaml_passes_the_snakemake_schema_and_a_typo_does_not():
    schema, params = load("workflow/schemas/params.schema.yaml"), load("params.yaml")
    jsonschema.validate(params, schema)
    params["topics"]["train"]["learning_rat"] = 0.1
    params["topics"]["train"].pop("learning_rate")
    with pytest.raises(jsonschema.ValidationError, match="learning_rate"):
        jsonschema.validate(params, schema)


def test_every_listed_task_has_a_module_and_a_params_section():
    params = load("params.yaml")
    assert set(params["tasks"]) <= set(tasks.names())
    for name in params["tasks"]:
        assert name in params
        module = tasks.load(name)
        for function in ("download", "filter", "tokenize", "model", "training_batches", "evaluate", "describe_data"):
            assert callable(getattr(module, function)), f"{name}.{function}"


def test_every_dvc_stage_command_is_a_cli_subcommand():
    commands = build_parser()._subparsers._group_actions[0].choices
    stages = load("dvc.yaml")["stages"]
    for stage in stages.values():
        program, subcommand, _ = stage["do"]["cmd"].split()
        assert program == "seqnlp" and subcommand in commands


def test_help_explains_every_subcommand(capsys):
    for command in ("download", "filter", "tokenize", "train", "evaluate", "classify", "generate", "samples"):
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args([command, "--help"])
        assert exit_.value.code == 0
        assert "usage: seqnlp " + command in capsys.readouterr().out


def test_unknown_task_is_refused(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "nosuchtask"])
    assert "invalid choice: 'nosuchtask'" in capsys.readouterr().err
