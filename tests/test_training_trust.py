"""Training you can trust: exact resume after kills, checkpoints as units, params checked before anything.

Each test trains the real Shakespeare task (a tiny GRU) in a small copy of the repository whose token
files are made here, through the real `seqnlp train` command, in-process or as a process that is killed.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO
from seqnlp import checkpoints, cli, layout, trained
from seqnlp.artifacts import read_json, save_sequences, sha256_of, write_json
from seqnlp.batching import CountingStream
from seqnlp.stages import train as train_stage

STEPS, EVERY = 30, 10
TASK = "shakespeare"
WEIGHT_FILES = ("model.weights.npy.gz", "model.opt_slots0.npy.gz")


class SimulatedKill(BaseException):
    """Stands for kill -9: nothing after it runs, no handler sees it."""


def make_repo(root, steps=STEPS):
    """The project's dvc.yaml, schema and source, small params, synthetic token files and the records of the
    data stages that made them (which evaluate reports)."""
    root.mkdir()
    shutil.copy(REPO / "dvc.yaml", root)
    shutil.copytree(REPO / "workflow" / "schemas", root / "workflow" / "schemas")
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params[TASK]["model"].update(d_model=16, dropout=0.1)
    params[TASK]["train"].update(steps=steps, checkpoint_every=EVERY, eval_every=5, eval_batches=2,
                                 bucket_boundaries=[32], bucket_batch_sizes=[8, 8], warmup_steps=5)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    tokens = root / layout.tokens(TASK)
    tokens.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, lines in (("train", 300), ("valid", 40), ("test", 40), ("folio", 40)):
        save_sequences(tokens / f"{split}.npz",
                       [list(rng.integers(97, 110, size=rng.integers(2, 30))) + [1] for _ in range(lines)])
    write_json(root / layout.raw(TASK) / "source.json", {"source": "synthetic", "pinned": True})
    write_json(root / layout.filtered(TASK) / "stats.json",
               {"works": 1, "kept": 420, "splits": {"train": 300, "valid": 40, "test": 40}})
    return root


def train_in_process(root, monkeypatch):
    monkeypatch.chdir(root)
    return cli.main(["train", TASK])


def trained_arrays(root):
    from trax import layers as tl

    model = root / layout.model(TASK)
    return {name: tl.np_from_file(str(model / name), compresslevel=2) for name in WEIGHT_FILES}


def assert_same_training(root, reference):
    found, expected = trained_arrays(root), trained_arrays(reference)
    for name in WEIGHT_FILES:
        assert len(found[name]) == len(expected[name])
        for got, want in zip(found[name], expected[name]):
            np.testing.assert_array_equal(got, want, err_msg=name)
    curves = layout.training_log(TASK)
    for tsv in sorted((reference / curves).rglob("*.tsv")):
        assert (root / curves / tsv.relative_to(reference / curves)).read_text() == tsv.read_text(), tsv.name
    assert not (root / layout.checkpoints(TASK)).exists()


def file_hashes(directory):
    """sha256 of each file under ``directory``: what DVC records for it in dvc.lock."""
    return {path.relative_to(directory).as_posix(): sha256_of(path) for path in sorted(directory.rglob("*"))
            if path.is_file()}


def record(root):
    return read_json(root / layout.model(TASK) / trained.TRAINING_RECORD)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run, and its export and package for `seqnlp generate`."""
    root = make_repo(tmp_path_factory.mktemp("reference") / "repo")
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert train_in_process(root, monkeypatch) == 0
        for stage in ("evaluate", "export", "package"):
            assert cli.main([stage, TASK]) == 0, stage
    assert record(root)["resumed_from_steps"] == [] and record(root)["steps"] == STEPS
    return root


def stop_after_saves(monkeypatch, count):
    """Make the run die right after its ``count``-th complete checkpoint."""
    save, saved = checkpoints.CheckpointStore.save, []

    def save_then_die(self, *args, **kwargs):
        unit = save(self, *args, **kwargs)
        saved.append(unit)
        if len(saved) == count:
            raise SimulatedKill
        return unit

    monkeypatch.setattr(checkpoints.CheckpointStore, "save", save_then_die)


@pytest.mark.slow
def test_a_finished_run_leaves_no_checkpoints_and_the_next_run_starts_from_scratch(reference, tmp_path,
                                                                                   monkeypatch, capsys):
    root = make_repo(tmp_path / "repo")
    assert train_in_process(root, monkeypatch) == 0
    assert_same_training(root, reference)  # the same params give the same bits, run after run
    assert file_hashes(root / layout.model(TASK)) == file_hashes(reference / layout.model(TASK))
    assert cli.main(["export", TASK]) == 0
    assert file_hashes(root / layout.exported(TASK)) == file_hashes(reference / layout.exported(TASK))
    assert train_in_process(root, monkeypatch) == 0  # what `dvc repro -f` does
    assert "resum" not in capsys.readouterr().err
    assert record(root)["resumed_from_steps"] == []


@pytest.mark.slow
def test_resuming_after_a_kill_gives_the_uninterrupted_result_and_records_it(reference, tmp_path, monkeypatch):
    root = make_repo(tmp_path / "repo")
    with pytest.MonkeyPatch.context() as dying, pytest.raises(SimulatedKill):
        stop_after_saves(dying, 2)
        train_in_process(root, monkeypatch)
    assert [unit.name for unit in checkpoints.CheckpointStore(root / layout.checkpoints(TASK), None).units()] == [
        "step_00000020", "step_00000010"]
    assert train_in_process(root, monkeypatch) == 0
    assert_same_training(root, reference)
    assert record(root)["resumed_from_steps"] == [20]


def fsync_calls_per_save(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(checkpoints, "_fsync", lambda path: calls.append(path))
    store = checkpoints.CheckpointStore(tmp_path / "probe", {"f": 1})
    store.prepare()
    store.save(1, lambda directory: [(directory / name).write_text("x") for name in ("a", "b", "c", "d")], {})
    return len(calls)


@pytest.mark.slow
@pytest.mark.parametrize("dies_at", range(9))
def test_a_kill_at_any_point_of_a_checkpoint_write_never_breaks_the_next_run(reference, tmp_path, monkeypatch,
                                                                             dies_at):
    """The second checkpoint dies before its n-th file is synced (n = 0: inside trax's own writes)."""
    from trax import layers as tl

    assert fsync_calls_per_save(tmp_path, monkeypatch) == 8  # 5 files (4 from trax), manifest, unit, parent
    monkeypatch.undo()
    root = make_repo(tmp_path / "repo")
    saves = []
    with pytest.MonkeyPatch.context() as dying, pytest.raises(SimulatedKill):
        if dies_at == 0:
            original = tl.np_to_file

            def write_or_die(*args, **kwargs):
                original(*args, **kwargs)
                saves.append(args[1])
                if len(saves) == 3:  # the second checkpoint has its optimizer slots but not its weights
                    raise SimulatedKill

            dying.setattr(tl, "np_to_file", write_or_die)
        else:
            real_fsync, calls = checkpoints._fsync, []

            def fsync_or_die(path):
                calls.append(path)
                if len(calls) == 8 + dies_at:
                    raise SimulatedKill
                real_fsync(path)

            dying.setattr(checkpoints, "_fsync", fsync_or_die)
        train_in_process(root, monkeypatch)
    assert train_in_process(root, monkeypatch) == 0
    assert_same_training(root, reference)
    assert record(root)["resumed_from_steps"] == ([20] if dies_at == 8 else [10])  # 8: after the rename


@pytest.mark.slow
def test_a_corrupt_checkpoint_is_named_set_aside_and_the_one_before_it_resumed(reference, tmp_path, monkeypatch,
                                                                             capsys):
    root = make_repo(tmp_path / "repo")
    with pytest.MonkeyPatch.context() as dying, pytest.raises(SimulatedKill):
        stop_after_saves(dying, 2)
        train_in_process(root, monkeypatch)
    newest = root / layout.checkpoints(TASK) / "step_00000020"
    weights = newest / "model.weights.npy.gz"
    weights.write_bytes(weights.read_bytes()[:100])
    assert train_in_process(root, monkeypatch) == 0
    err = capsys.readouterr().err
    assert f"checkpoint {layout.checkpoints(TASK) / 'step_00000020'} is incomplete or corrupt" in err
    assert "model.weights.npy.gz does not match its sha256" in err
    assert_same_training(root, reference)
    assert record(root)["resumed_from_steps"] == [10]


@pytest.mark.slow
def test_edited_code_is_trained_from_scratch_not_resumed(reference, tmp_path, monkeypatch, capsys):
    root = make_repo(tmp_path / "repo")
    with pytest.MonkeyPatch.context() as dying, pytest.raises(SimulatedKill):
        stop_after_saves(dying, 1)
        train_in_process(root, monkeypatch)
    model_code = root / "src" / "seqnlp" / "tasks" / f"{TASK}.py"
    model_code.write_text(model_code.read_text() + "\n# an edit\n")
    assert train_in_process(root, monkeypatch) == 0
    assert "different code_sha256" in capsys.readouterr().err
    assert record(root)["resumed_from_steps"] == []
    assert record(root)["fingerprint"]["code_sha256"][f"src/seqnlp/tasks/{TASK}.py"] != \
        record(reference)["fingerprint"]["code_sha256"][f"src/seqnlp/tasks/{TASK}.py"]
    # The finished run ends the life of the set-aside store too: only the free lock file is left.
    assert [path.name for path in (root / "checkpoints").iterdir()] == [f"{TASK}.lock"]
    assert (root / "checkpoints" / f"{TASK}.lock").read_text() == ""


def test_the_fingerprint_covers_every_source_file_of_the_train_stage(monkeypatch):
    monkeypatch.chdir(REPO)
    declared = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"]["do"]["deps"]
    covered = set(train_stage.fingerprint(TASK, {"model": {}, "train": {}}, Path("no-tokens"))["code_sha256"])
    assert covered == {dep.replace("${item}", TASK) for dep in declared if dep.startswith("src/")}


MISTAKES = {  # dotted key: (bad value, what the message must say)
    "shakespeare.train.steps": ("many", "'many' is not of type 'integer'"),
    "shakespeare.train.stepz": (10, "unknown key(s) 'stepz'"),
    "shakespeare.train.eval_every": (0, "0 is less than the minimum of 1"),
    "shakespeare.train.lr_factors": ("constant * cosine_decy", "trax multifactor names"),
    "shakespeare.train.bucket_batch_sizes": ([8, 8, 8], "needs one per bucket"),
    "shakespeare.filter.split": ({"valid": 0.6, "test": 0.6}, "leaves no lines for training"),
    "shakespeare.train.learning_rate": (-0.01, "less than or equal to the minimum of 0"),
    "topics.filter.max_rows": ({"train": 10, "test": 5}, "leave 0 validation"),
    "tasks.shakespeare": ("shakespear", "no task module 'shakespear'"),
    "questions.tokenize.subwords": ({"n_min": 5, "n_max": 3, "per_word": 4, "buckets": 10}, "no n-gram length is left"),
    "questions.train.bucket_batch_sizes": ([1, 64, 32, 32], "1 is less than the minimum of 2"),
    "topics.train.bucket_boundaries": ([32, 128, 512, 1024], "last boundary 1024 is below max_length 2048"),
}


@pytest.mark.slow
@pytest.mark.parametrize("dotted", MISTAKES)
def test_a_params_mistake_is_named_before_anything_is_touched(reference, tmp_path, monkeypatch, capsys, dotted):
    root = tmp_path / "repo"
    shutil.copytree(reference, root)
    in_progress = root / layout.checkpoints(TASK) / "step_00000010"
    in_progress.mkdir(parents=True)
    params = yaml.safe_load((root / "params.yaml").read_text())
    *parents, key = dotted.split(".")
    section = params
    for parent in parents:
        section = section[parent]
    value, expected = MISTAKES[dotted]
    section[key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = {path: path.read_bytes() for path in (root / "models").rglob("*") if path.is_file()}
    for command in (["train", TASK], ["tokenize", TASK], ["evaluate", TASK]):
        monkeypatch.chdir(root)
        assert cli.main(command) == 1
        message = capsys.readouterr().err.strip()
        assert message.count("\n") == 0 and expected in message, message
        assert message.startswith(f"seqnlp {command[0]}: error: params.yaml:") and dotted.split(".")[0] in message
    assert {path: path.read_bytes() for path in (root / "models").rglob("*") if path.is_file()} == before
    assert in_progress.is_dir()


def test_the_params_error_names_the_line(tmp_path):
    from seqnlp import params

    path = tmp_path / "params.yaml"
    text = (REPO / "params.yaml").read_text().replace("    steps: 3000\n", "    steps: -3\n", 1)
    path.write_text(text)
    line = text.splitlines().index("    steps: -3") + 1
    with pytest.raises(params.ParamsError, match=rf"params.yaml:{line}: topics.train.steps: -3 is less than"):
        params.check(yaml.safe_load(text), path, REPO / params.SCHEMA_FILE)


def test_a_new_section_that_the_schema_does_not_know_is_the_one_named(tmp_path):
    """The ner_* sections are allowed by a pattern: an unknown section must not be blamed on them."""
    from seqnlp import params

    path = tmp_path / "params.yaml"
    text = (REPO / "params.yaml").read_text() + "sentiment:\n  train:\n    steps: 10\n"
    path.write_text(text)
    line = text.splitlines().index("sentiment:") + 1
    with pytest.raises(params.ParamsError) as error:
        params.check(yaml.safe_load(text), path, REPO / params.SCHEMA_FILE)
    assert f"params.yaml:{line}: sentiment: unknown key(s) 'sentiment'; allowed: " in str(error.value)
    assert "ner_gmb" not in str(error.value) and "keys matching ^ner_[a-z0-9_]+$" in str(error.value)


@pytest.mark.slow
def test_a_model_trained_with_other_params_is_refused_with_a_message(reference, tmp_path, monkeypatch, capsys):
    root = tmp_path / "repo"
    shutil.copytree(reference, root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[TASK]["model"]["n_layers"] = 3
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(root)
    for command in (["generate", "--length", "5"], ["evaluate", TASK], ["samples", TASK]):
        assert cli.main(command) == 1
        message = capsys.readouterr().err
        assert "models/shakespeare was trained with other model params" in message and "(n_layers)" in message


def seqnlp(arguments, cwd, **kwargs):
    return subprocess.Popen([str(Path(sys.executable).parent / "seqnlp"), *arguments], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def wait_for(condition, process, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


@pytest.mark.slow
def test_kill_9_during_training_and_during_a_checkpoint_write_then_rerun(reference, tmp_path):
    root = make_repo(tmp_path / "repo")
    store = root / layout.checkpoints(TASK)

    def writing_a_checkpoint():
        return store.is_dir() and any(path.name.startswith(checkpoints.PARTIAL_PREFIX) for path in store.iterdir())

    for condition in (writing_a_checkpoint, lambda: (store / "step_00000020").is_dir()):
        process = seqnlp(["train", TASK], root)
        wait_for(condition, process)
        process.send_signal(signal.SIGKILL)
        process.communicate()
    process = seqnlp(["train", TASK], root)
    out, err = process.communicate()
    assert process.returncode == 0, err
    assert_same_training(root, reference)
    assert record(root)["resumed_from_steps"][-1] == 20 and "resumed shakespeare from the checkpoint" in err


@pytest.mark.slow
@pytest.mark.parametrize("stop, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM)])
def test_ctrl_c_or_sigterm_exits_and_says_which_checkpoint_was_kept(tmp_path, stop, exit_code):
    """Ctrl-C, or SIGTERM as `kill` and SLURM's `scancel` send: the same one line, the checkpoints kept."""
    # Far more steps than it can run before the signal lands, so it cannot finish first.
    root = make_repo(tmp_path / "repo", steps=100_000)
    # A suite started as a background job (`cmd &` in a script) inherits SIGINT ignored, and a Python child then
    # never raises KeyboardInterrupt. A handled signal is reset to the default in the child, as under a terminal.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = seqnlp(["train", TASK], root)
    finally:
        signal.signal(signal.SIGINT, previous)
    wait_for(lambda: (root / layout.checkpoints(TASK) / "step_00000010").is_dir(), process)
    process.send_signal(stop)
    try:
        _, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"seqnlp train ignored {stop.name}: {process.communicate()}")
    assert process.returncode == exit_code
    last_line = err.strip().splitlines()[-1]
    assert "training interrupted at step" in last_line and "checkpoint at step" in last_line
    assert "run the same command again to resume" in last_line and "Traceback" not in err


class CtrlCWhileNumPyBuildsAnArray:
    """Stands for a Ctrl-C (or the starter watch's interrupt) that lands while NumPy reads a sequence: NumPy
    swallows the KeyboardInterrupt and raises a ValueError of its own instead."""

    def __len__(self):
        signal.raise_signal(signal.SIGINT)
        return 1

    def __getitem__(self, index):
        return 0


@pytest.mark.slow
def test_a_ctrl_c_that_numpy_turns_into_another_error_still_stops_the_run_as_asked(tmp_path, monkeypatch, capsys):
    root = make_repo(tmp_path / "repo", steps=100_000)
    build_streams = train_stage.data_streams

    def streams_with_a_ctrl_c_at_batch_15(*args):
        streams = build_streams(*args)
        train = streams["train"]

        def batches():
            for count, batch in enumerate(train, start=1):
                if count == 15:
                    np.array([[1, 2], CtrlCWhileNumPyBuildsAnArray()])
                yield batch

        streams["train"] = CountingStream(batches())
        return streams

    monkeypatch.setattr(train_stage, "data_streams", streams_with_a_ctrl_c_at_batch_15)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as under a terminal
    try:
        with pytest.raises(ValueError, match="inhomogeneous"):  # what the bug looked like: the stop was lost
            np.array([[1, 2], CtrlCWhileNumPyBuildsAnArray()])
        assert train_in_process(root, monkeypatch) == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"seqnlp train: error: training interrupted at step 1\d; checkpoint at step 10 kept in "
                        f"{re.escape(str(layout.checkpoints(TASK)))}: run the same command again to resume it",
                        err.splitlines()[-1]), err
    assert "Traceback" not in err and signal.getsignal(signal.SIGINT) is previous


@pytest.mark.slow
def test_a_second_trainer_of_the_same_store_is_refused_naming_the_first(tmp_path):
    root = make_repo(tmp_path / "repo", steps=100_000)
    first = seqnlp(["train", TASK], root)
    try:
        wait_for(lambda: (root / layout.checkpoints(TASK) / "step_00000010").is_dir(), first)
        second = seqnlp(["train", TASK], root)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 1 and first.poll() is None
        assert err == (f"seqnlp train: error: {layout.checkpoints(TASK)} is being written by process {first.pid} "
                       f"(seqnlp train {TASK}); wait for it to end (or stop it), then run the same command again\n")
    finally:
        first.kill()
        first.communicate()
    # The kernel released the dead writer's lock: the store is free for the next run.
    with checkpoints.CheckpointStore(root / layout.checkpoints(TASK), None).held("the next run"):
        pass


@pytest.mark.slow
@pytest.mark.parametrize("shell, sigint", [("/bin/sh", signal.SIG_IGN), ("/bin/bash", signal.default_int_handler)],
                         ids=["sh, SIGINT ignored", "bash"])
def test_a_trainer_started_by_dvc_stops_when_dvc_is_killed_and_publishes_nothing(reference, tmp_path, shell, sigint):
    """DVC runs the command through $SHELL: bash execs it, dash (Debian's /bin/sh, DVC's choice when SHELL is
    unset, as in CI) stays between dvc and the trainer and outlives a killed dvc. A shell without job control
    starts background commands (`nohup dvc repro &` in a script) with SIGINT ignored, and everything they start
    inherits that."""
    import psutil

    root = make_repo(tmp_path / "repo", steps=100_000)
    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=root, check=True)
    previous = signal.signal(signal.SIGINT, sigint)  # ignored is inherited; a handler is reset to the default
    try:
        repro = subprocess.Popen([dvc, "repro", "--single-item", f"train@{TASK}"], cwd=root, text=True,
                                 env={**os.environ, "SHELL": shell}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    finally:
        signal.signal(signal.SIGINT, previous)
    store = root / layout.checkpoints(TASK)
    wait_for(lambda: (store / "step_00000010").is_dir(), repro)
    trainer, = [process for process in psutil.Process(repro.pid).children(recursive=True)
                if process.cmdline()[-2:] == ["train", TASK]]
    repro.send_signal(signal.SIGKILL)
    _, err = repro.communicate(timeout=120)  # to its end: the orphaned trainer holds the same stderr
    assert not trainer.is_running() or trainer.status() == psutil.STATUS_ZOMBIE  # ended, perhaps not yet reaped
    last_line = err.strip().splitlines()[-1]
    assert last_line.startswith("seqnlp train: error: training stopped at step "), err
    assert ": the dvc process that started it ended; checkpoint at step " in last_line
    kept = checkpoints.CheckpointStore(store, None).latest_step()
    assert f"checkpoint at step {kept} kept in {layout.checkpoints(TASK)}" in last_line
    assert not (root / layout.model(TASK)).exists()
    assert (root / "checkpoints" / f"{TASK}.lock").read_text() == ""


@pytest.fixture
def small_file_system(tmp_path):
    """A 2 MiB tmpfs mounted on the repository's checkpoints/ folder: room for a few checkpoints."""
    root = make_repo(tmp_path / "repo")
    mount_point = root / "checkpoints"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def kept_message(cause):
    return (f"{cause}; the checkpoint at step 10 in {layout.checkpoints(TASK)} is kept: free some space (or make "
            "the folder writable), then run the same command again to resume it\n")


def assert_one_error_line(err, ending):
    assert err.count("error") == 1 and err.endswith(ending) and "Traceback" not in err


@pytest.mark.slow
def test_a_full_disk_during_training_is_one_line_and_the_last_checkpoint_resumes(reference, small_file_system,
                                                                                 monkeypatch, capsys):
    root = small_file_system
    ballast = root / "checkpoints" / "ballast"

    def fill_the_disk_after_the_first_save(self, *args, **kwargs):
        unit = save(self, *args, **kwargs)
        with open(ballast, "wb") as stream, contextlib.suppress(OSError):
            while True:
                stream.write(b"\0" * 65536)
                stream.flush()
        monkeypatch.setattr(checkpoints.CheckpointStore, "save", save)
        return unit

    save = checkpoints.CheckpointStore.save
    monkeypatch.setattr(checkpoints.CheckpointStore, "save", fill_the_disk_after_the_first_save)
    assert train_in_process(root, monkeypatch) == 1
    cause = "No space left on device"
    assert_one_error_line(capsys.readouterr().err, "seqnlp train: error: cannot write the checkpoint at step 20 "
                          f"in {layout.checkpoints(TASK)}: {kept_message(cause)}")
    assert [unit.name for unit in checkpoints.CheckpointStore(root / layout.checkpoints(TASK), None).units()] == [
        "step_00000010"]
    assert train_in_process(root, monkeypatch) == 1  # still full: resuming needs room for a copy
    assert_one_error_line(capsys.readouterr().err, kept_message(cause))
    assert not (root / layout.model(TASK)).exists()
    ballast.unlink()
    assert train_in_process(root, monkeypatch) == 0
    assert_same_training(root, reference)
    assert record(root)["resumed_from_steps"] == [10]


@pytest.mark.slow
def test_a_read_only_checkpoint_folder_is_one_line_and_the_checkpoint_resumes_once_writable(
        reference, small_file_system, monkeypatch, capsys):
    root = small_file_system
    with pytest.MonkeyPatch.context() as dying, pytest.raises(SimulatedKill):
        stop_after_saves(dying, 1)
        train_in_process(root, monkeypatch)
    subprocess.run(["mount", "-o", "remount,ro", str(root / "checkpoints")], check=True)
    assert train_in_process(root, monkeypatch) == 1
    assert_one_error_line(capsys.readouterr().err, "seqnlp train: error: cannot write checkpoints in checkpoints: "
                          + kept_message("Read-only file system"))
    subprocess.run(["mount", "-o", "remount,rw", str(root / "checkpoints")], check=True)
    assert train_in_process(root, monkeypatch) == 0
    assert_same_training(root, reference)
    assert record(root)["resumed_from_steps"] == [10]


@pytest.mark.slow
def test_seqnlp_finds_the_repository_root_or_says_where_to_run_it(reference, tmp_path):
    process = seqnlp(["generate", "--length", "12", "--prefix", "ab"], reference / "workflow")
    out, err = process.communicate()
    assert process.returncode == 0 and out.startswith("ab"), err
    process = seqnlp(["generate"], tmp_path)
    _, err = process.communicate()
    assert process.returncode == 1
    assert "is not inside a seqnlp repository" in err and "Traceback" not in err


@pytest.mark.parametrize("arguments, expected", [
    (["--length", "-5"], "must be >= 1, got -5"),
    (["--n", "0"], "must be >= 1, got 0"),
    (["--temperature", "hot"], "must be a number >= 0"),
])
def test_generate_refuses_arguments_that_cannot_work(arguments, expected, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(["generate", *arguments])
    assert exit_.value.code == 2 and expected in capsys.readouterr().err


def test_a_full_disk_ends_in_one_line_naming_the_file(monkeypatch, capsys):
    import errno

    def full_disk(task_name):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "models/shakespeare/model.pkl.gz")

    monkeypatch.chdir(REPO)
    monkeypatch.setattr(train_stage, "run", full_disk)
    assert cli.main(["train", TASK]) == 1
    assert capsys.readouterr().err == ("seqnlp train: error: cannot use models/shakespeare/model.pkl.gz: "
                                       "No space left on device\n")


@pytest.fixture(scope="module")
def small_alphabet_generator():
    from seqnlp.tasks import shakespeare
    from trax import shapes

    model = shakespeare.GRULM(d_model=16, n_layers=1, mode="predict")
    model.init(shapes.ShapeDtype((1, 1), np.int32))
    return shakespeare.Generator(model, alphabet=[shakespeare.EOS, *map(ord, "ab ")])


def test_samples_use_only_characters_seen_in_training(small_alphabet_generator):
    for seed in range(5):
        text = small_alphabet_generator.sample("", 60, temperature=5.0, seed=seed)
        assert set(text) <= set("ab \n") and len(text) == 60


def test_a_newline_in_the_prefix_starts_a_new_line(small_alphabet_generator):
    text = small_alphabet_generator.sample("ab ba\nab", 10, temperature=0.0, seed=0)
    assert text.startswith("ab ba\nab")
    same_last_line = small_alphabet_generator.sample("ab", 10, temperature=0.0, seed=0)
    assert text == "ab ba\n" + same_last_line


@pytest.mark.slow
def test_training_json_is_what_evaluate_reports(reference, monkeypatch):
    from seqnlp.stages.evaluate import training_summary

    assert training_summary(record(reference)) == {"steps": STEPS, "resumed": False, "resumed_from_steps": []}
    assert json.loads(json.dumps(record(reference)))["model"]["d_model"] == 16
