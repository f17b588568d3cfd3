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


def test_every_listed_task_has_a_module_and_a_params_section(monkeypatch):
    monkeypatch.chdir(REPO)
    params = load("params.yaml")
    assert set(params["tasks"].values()) <= set(tasks.modules())
    for name in params["tasks"]:
        assert name in params
        module = tasks.load(name)
        for function in ("download", "filter", "tokenize", "model", "loss", "eval_metrics", "training_batches",
                         "evaluate", "describe_data"):
            assert callable(getattr(module, function)), f"{name}.{function}"


def test_every_dvc_stage_command_is_a_cli_subcommand():
    commands = build_parser()._subparsers._group_actions[0].choices
    stages = load("dvc.yaml")["stages"]
    for stage in stages.values():
        program, subcommand, _ = stage["do"]["cmd"].split()
        assert program == "seqnlp" and subcommand in commands


def test_help_explains_every_subcommand(capsys):
    for command in ("download", "filter", "tokenize", "train", "evaluate", "classify", "generate", "tag", "samples",
                    "variant", "duplicates", "similar", "index", "regenerate", "report"):
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args([command, "--help"])
        assert exit_.value.code == 0
        assert "usage: seqnlp " + command in capsys.readouterr().out


def test_unknown_task_is_refused(capsys, monkeypatch):
    from seqnlp.cli import main

    monkeypatch.chdir(REPO)
    assert main(["train", "nosuchtask"]) == 1
    assert "unknown task 'nosuchtask'; params.yaml's tasks: are topics, shakespeare" in capsys.readouterr().err


def test_the_seed_variant_reproduces_the_seed_recipe(monkeypatch):
    from seqnlp import variants
    from seqnlp.tasks import topics
    from trax import layers as tl

    monkeypatch.chdir(REPO)
    seed = variants.apply(load("params.yaml"), "topics-seed")["topics"]
    assert str(topics.model(seed)) == str(tl.Serial(tl.Embedding(8192, 50), tl.Mean(axis=1), tl.Dense(4),
                                                    tl.LogSoftmax()))
    assert seed["filter"]["fields"] == ["description"]
    assert seed["train"] == {**seed["train"], "steps": 2000, "learning_rate": 0.01, "lr_factors": "constant",
                             "checkpoint_every": 500, "max_length": 2048,
                             "bucket_boundaries": [32, 128, 512, 2048], "bucket_batch_sizes": [512, 128, 32, 8, 1]}
    flags = variants.dvc_set_params("topics-seed")
    assert flags[:2] == ["-S", 'topics.filter.fields=["description"]']


def test_unknown_variant_key_is_refused(tmp_path):
    from seqnlp import variants
    from seqnlp.errors import UserError

    (tmp_path / "typo.yaml").write_text("topics.train.stepz: 10\n")
    with pytest.raises(UserError, match="topics.train.stepz"):
        variants.apply(load("params.yaml"), "typo", tmp_path)


def test_the_ner_course_variant_is_the_seed_model(monkeypatch):
    from seqnlp import variants
    from seqnlp.tasks import ner
    from trax import layers as tl

    monkeypatch.chdir(REPO)
    course = variants.apply(load("params.yaml"), "ner-course")["ner_gmb"]
    assert str(ner.model(course)) == str(tl.Serial(tl.Embedding(30000, 50), tl.LSTM(50), tl.Dense(17),
                                                   tl.LogSoftmax()))
    assert course["train"]["learning_rate"] == 0.01 and course["train"]["lr_factors"] == "constant"
    assert set(course["train"]["bucket_batch_sizes"]) == {64}


def test_the_questions_course_variant_is_the_seed_model(monkeypatch):
    from seqnlp import variants
    from seqnlp.tasks import questions
    from trax import layers as tl

    monkeypatch.chdir(REPO)
    course = variants.apply(load("params.yaml"), "questions-course")["questions"]
    vocab_size = course["tokenize"]["vocab_size"]
    encoder = tl.Serial(tl.Fn("WordIds", lambda ids: ids), tl.Embedding(vocab_size, 128), tl.LSTM(128), tl.Mean(axis=1),
                        tl.Fn("Normalize", lambda x: x))
    assert str(questions.model(course)) == str(tl.Serial(tl.Parallel(encoder, encoder)))
    assert course["model"]["pair_loss_weight"] == 0 and course["model"]["triplet_margin"] == 0.25
    assert course["tokenize"]["subwords"] is None
    assert course["train"]["learning_rate"] == 0.01 and set(course["train"]["bucket_batch_sizes"]) == {256}
