import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import REPO
from seqnlp import tasks
from seqnlp.cli import build_parser


def load(path):
    return yaml.safe_load((REPO / path).read_text())


def test_params_yaml_passes_the_schema_and_a_typo_does_not():
    schema, params = load("workflow/schemas/params.schema.yaml"), load("params.yaml")
    jsonschema.validate(params, schema)
    params["topics"]["train"]["learning_rat"] = 0.1
    params["topics"]["train"].pop("learning_rate")
    with pytest.raises(jsonschema.ValidationError, match="learning_rate"):
        jsonschema.validate(params, schema)


@pytest.mark.slow
@pytest.mark.parametrize("section, key, value", [
    ("topics", "learning_rat", 0.1),  # the schema's: an unknown key
    ("questions", "bucket_batch_sizes", [128, 64, 32]),  # a cross-field rule's: one batch size per bucket
])
def test_under_snakemake_a_params_mistake_is_seqnlps_one_line_before_any_job(tmp_path, section, key, value):
    from seqnlp import small_slice

    root = small_slice.make(tmp_path / "copy", source=REPO)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[section]["train"][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    seqnlp = subprocess.run(["seqnlp", "train", "topics"], cwd=root, capture_output=True, text=True, env=environment)
    snakemake = subprocess.run(["snakemake", "--profile", "workflow/profiles/default"], cwd=root, capture_output=True,
                               text=True, env=environment)
    [line] = seqnlp.stderr.splitlines()
    assert seqnlp.returncode == snakemake.returncode == 1 and re.match(r"seqnlp train: error: params.yaml:\d+: ", line)
    assert snakemake.stderr.splitlines()[-1] == line.replace("seqnlp train:", "snakemake:")
    assert snakemake.stderr.count("params.yaml:") == 1 and "rule " not in snakemake.stdout + snakemake.stderr
    assert not (root / "data").exists() and not (root / ".snakemake" / "metadata").exists()


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
        program, subcommand, _ = stage.get("do", stage)["cmd"].split()
        assert program == "seqnlp" and subcommand in commands


def test_help_explains_every_subcommand(capsys):
    for command in ("download", "filter", "tokenize", "train", "evaluate", "classify", "generate", "tag", "samples",
                    "variant", "duplicates", "similar", "index", "export", "regenerate", "report", "results"):
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


def venv_tool(*arguments):
    import subprocess
    import sys
    from pathlib import Path

    return subprocess.run([str(Path(sys.executable).parent / arguments[0]), *arguments[1:]], cwd=REPO,
                          capture_output=True, text=True)


@pytest.mark.slow
def test_the_workflow_passes_snakemakes_linter():
    linted = venv_tool("snakemake", "--lint")
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "Congratulations, your workflow is in a good condition!" in linted.stdout + linted.stderr


def test_the_workflow_is_formatted_with_snakefmt():
    checked = venv_tool("snakefmt", "--check", "workflow/")
    assert checked.returncode == 0, venv_tool("snakefmt", "--diff", "workflow/").stdout


def test_the_conda_environment_is_the_lock_file():
    from seqnlp import environment

    lock = (REPO / "requirements.lock").read_text()
    declared = load("workflow/envs/seqnlp.yaml")
    assert (REPO / "workflow/envs/seqnlp.yaml").read_text() == environment.conda_environment(lock), \
        "regenerate it: python -m seqnlp.environment > workflow/envs/seqnlp.yaml"
    [pip] = [entry["pip"] for entry in declared["dependencies"] if isinstance(entry, dict)]
    assert pip == [line for line in lock.splitlines() if line] and "python=3.11" in declared["dependencies"]
    assert "trax==1.4.1" in pip and any(pin.startswith("snakemake-executor-plugin-slurm==") for pin in pip)


def test_every_stage_declares_its_resources_and_training_takes_the_cores():
    from seqnlp import resources

    declared = load("workflow/resources.yaml")
    kinds = set(load("dvc.yaml")["stages"])
    assert set(declared["stages"]) <= kinds | {f"{kind}@{task}" for kind in kinds for task in load("params.yaml")["tasks"]}
    for kind in kinds:
        stage_resources = resources.declared(kind, REPO / "workflow/resources.yaml")
        assert set(stage_resources) == {"threads", "mem_mb", "runtime", "gpu"}, kind
        assert all(isinstance(value, int) and value >= 0 for value in stage_resources.values()), kind
    # trax's XLA spreads over every core: two trainings never share this 2-core reference machine
    assert declared["stages"]["train"]["threads"] == 2


def test_on_a_cluster_each_tasks_short_stages_share_a_job_and_training_has_its_own():
    groups = load("workflow/resources.yaml")["groups"]
    grouped = [kind for kinds in groups.values() for kind in kinds]
    assert len(grouped) == len(set(grouped)) and set(grouped) <= set(load("dvc.yaml")["stages"])
    assert "train" not in grouped  # the cluster test counts the jobs a run submits


def test_a_slice_refuses_a_folder_in_use_and_an_unknown_key(tmp_path):
    from seqnlp import small_slice
    from seqnlp.errors import UserError

    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        small_slice.make(tmp_path / "used", source=REPO)
    (tmp_path / "typo.yaml").write_text("topics.train.stepz: 10\n")
    with pytest.raises(UserError, match="typo.yaml: topics.train.stepz is not a key of params.yaml"):
        small_slice.make(tmp_path / "new", source=REPO, overrides=tmp_path / "typo.yaml")
    assert not (tmp_path / "new").exists()


def test_a_slice_is_a_committed_copy_of_the_code_with_the_test_params(tmp_path):
    import subprocess

    from seqnlp import small_slice

    copy = small_slice.make(tmp_path / "slice", source=REPO)
    params = yaml.safe_load((copy / "params.yaml").read_text())
    for dotted, value in load(".test/config/params.yaml").items():
        section = params
        for part in dotted.split("."):
            section = section[part]
        assert section == value, dotted
    assert (copy / "dvc.yaml").read_text() == (REPO / "dvc.yaml").read_text()
    assert not (copy / "dvc.lock").exists() and not (copy / "metrics").exists() and not (copy / "data").exists()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=copy, capture_output=True, text=True, check=True)
    assert status.stdout == ""


def test_a_slice_reads_your_own_files_from_the_checkout_it_was_made_from(tmp_path):
    """A relative download.local path names a file of the checkout; the slice runs elsewhere, so it gets the
    absolute path (an absolute one is kept)."""
    from seqnlp import small_slice

    (tmp_path / "own.yaml").write_text(yaml.safe_dump({
        "shakespeare.download.local": "../own/works.tar.gz",
        "topics.download.local": {"train": "reviews/train.csv", "test": "/data/test.csv"}}))
    copy = small_slice.make(tmp_path / "slice", source=REPO, overrides=tmp_path / "own.yaml")
    params = yaml.safe_load((copy / "params.yaml").read_text())
    assert params["shakespeare"]["download"]["local"] == str(REPO.parent / "own" / "works.tar.gz")
    assert params["topics"]["download"]["local"] == {"train": str(REPO / "reviews" / "train.csv"),
                                                     "test": "/data/test.csv"}
    assert params["questions"]["download"]["local"] is None


def test_every_task_has_its_package_declared_as_a_dvc_model_artifact():
    artifacts = load("dvc.yaml")["artifacts"]
    assert sorted(artifact["path"] for artifact in artifacts.values()) == sorted(
        f"packages/{task}" for task in load("params.yaml")["tasks"])
    for name, artifact in artifacts.items():
        assert artifact["type"] == "model" and artifact["desc"] and artifact["labels"], name
        assert name == artifact["path"].split("/")[1].replace("_", "-"), name


@pytest.mark.slow
def test_after_a_killed_snakemake_run_unlock_then_the_same_command_finishes(tmp_path, mirror):
    """The README's sequence: a run killed with -9 while a job runs leaves Snakemake's lock and the job's
    output marked incomplete; `snakemake --unlock`, then the same command again reruns the job."""
    from seqnlp import small_slice

    root = small_slice.make(tmp_path / "copy", source=REPO)
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                   "SEQNLP_DATA_MIRROR": str(mirror)}
    command = ["snakemake", "--profile", "workflow/profiles/default", "download_shakespeare"]
    running = subprocess.Popen(command, cwd=root, env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    locks, incomplete = root / ".snakemake" / "locks", root / ".snakemake" / "incomplete"
    try:
        for _ in range(1200):
            if incomplete.is_dir() and any(incomplete.iterdir()) or running.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        os.killpg(running.pid, signal.SIGKILL)
        running.wait()
    assert any(locks.iterdir()) and any(incomplete.iterdir()), "the run ended before it could be killed"
    refused = subprocess.run(command, cwd=root, env=environment, capture_output=True, text=True)
    assert refused.returncode == 1 and "LockException" in refused.stderr and "--unlock" in refused.stderr
    subprocess.run(["snakemake", "--unlock"], cwd=root, env=environment, capture_output=True, check=True)
    rerun = subprocess.run(command, cwd=root, env=environment, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert (root / "data" / "shakespeare" / "raw" / "source.json").exists()
