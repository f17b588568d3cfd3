"""train: run trax's training.Loop for a task, resuming exactly where an interrupted run of it stopped.

The run checkpoints every ``checkpoint_every`` steps into a CheckpointStore (checkpoints/TASK) keyed by
a fingerprint of everything that defines the model: its params, its data and the code the train stage
depends on in dvc.yaml. A rerun with the same fingerprint restores the weights, optimizer slots, history,
random key and both data streams' positions, so it ends bitwise identical to an uninterrupted run. The
trained model (models/TASK) is replaced only when a run finishes; then the store is removed, so the next
run (`dvc repro -f`, or any change) trains from scratch.

One trainer writes a task's store at a time (the store's lock), and a trainer started by DVC stops, its
checkpoints kept, when the `dvc` process that started it dies: no orphan goes on to publish a model that
no tool records, beside the rerun that follows.
"""

import _thread
import contextlib
import gzip
import io
import json
import os
import pickle
import signal
import sys
import threading
import time
from pathlib import Path

import yaml
from dvclive import Live
from tqdm import tqdm

from seqnlp import layout, tasks
from seqnlp.artifacts import sha256_of, staged_directory, write_json
from seqnlp.batching import CountingStream
from seqnlp.checkpoints import CheckpointStore, trax_checkpoint_readable
from seqnlp.compat import loop_rng, save_checkpoint_to, set_loop_rng, trax, without_summary_files
from seqnlp.errors import Interrupted, UserError
from seqnlp.trained import TRAINING_RECORD
from trax.supervised import callbacks as step_callbacks
from trax.supervised import lr_schedules, training

MODEL_FILES = ("model.pkl.gz", "model.weights.npy.gz", "model.opt_slots0.npy.gz")
TIMING_SERIES = "per second"  # trax's history names its measured speed "training/steps per second"


def code_dependencies(task_name, dvc_file="dvc.yaml"):
    """The source files dvc.yaml declares for the task's train stage (${item} is the task's module)."""
    deps = yaml.safe_load(Path(dvc_file).read_text())["stages"]["train"]["do"]["deps"]
    module = tasks.module_name(task_name)
    paths = [Path(dep.replace("${item}", module)) for dep in deps if dep.startswith("src/")]
    return sorted(file for path in paths for file in ([path] if path.is_file() else sorted(path.rglob("*.py"))))


def fingerprint(task_name, params, tokens):
    """Everything that decides what a checkpoint means: model and training params, data and code."""
    return {
        "model": params["model"],
        "train": params["train"],
        "data_sha256": {path.name: sha256_of(path) for path in sorted(Path(tokens).glob("*.npz"))},
        "code_sha256": {str(path): sha256_of(path) for path in code_dependencies(task_name)},
    }


def learning_rate_schedule(train_params):
    # trax's cosine decay is cyclic (progress % 1.0), and the Loop numbers its updates 1..steps: a cycle
    # of exactly steps - warmup would put the last update back at the peak rate, one step before saving.
    warmup_steps = max(train_params["warmup_steps"], 1)
    return lr_schedules.multifactor(
        factors=train_params["lr_factors"],
        constant=train_params["learning_rate"],
        warmup_steps=warmup_steps,
        steps_per_cycle=max(train_params["steps"] - warmup_steps + 1, 1),
    )


def build_loop(task, params, streams, output_dir, callbacks=()):
    """A Loop that never writes files by itself: :func:`train` writes each checkpoint as one unit."""
    train_params = params["train"]
    seed = train_params["seed"]
    train_task = training.TrainTask(
        labeled_data=streams["train"],
        loss_layer=task.loss(params),
        optimizer=trax.optimizers.Adam(train_params["learning_rate"], **train_params["adam"]),
        lr_schedule=learning_rate_schedule(train_params),
        n_steps_per_checkpoint=train_params["checkpoint_every"],
    )
    eval_task = training.EvalTask(
        labeled_data=streams["valid"],
        metrics=list(task.eval_metrics(params).values()),
        metric_names=list(task.eval_metrics(params)),
        n_eval_batches=train_params["eval_batches"],
    )
    eval_every, steps = train_params["eval_every"], train_params["steps"]
    return without_summary_files(training.Loop(
        task.model(params, mode="train"),
        [train_task],
        eval_model=task.model(params, mode="eval"),
        eval_tasks=[eval_task],
        output_dir=str(output_dir),
        eval_at=lambda step: step % eval_every == 0 or step == steps,
        checkpoint_at=lambda step: False,
        permanent_checkpoint_at=lambda step: False,
        random_seed=seed,
        callbacks=list(callbacks),
    ))


def progress_bar_callback(bar, metric_names):
    """A trax step callback that advances ``bar`` and shows the latest validation metrics."""

    class ProgressBar(step_callbacks.TrainingStepCallback):
        def call_at(self, step):
            return True

        def on_step_begin(self, step):
            pass

        def on_step_end(self, step):
            bar.update(1)
            latest = {name: self._loop.history.get("eval", f"metrics/{name}") for name in metric_names}
            if all(latest.values()):
                bar.set_postfix({name: f"{values[-1][1]:.4f}" for name, values in latest.items()}, refresh=False)

    return ProgressBar


def write_training_log(history, loss_name, metric_names, directory):
    """Write the loop's whole history (it survives resumes) as DVCLive step plots."""
    series = {"train/loss": history.get("train", f"metrics/{loss_name}")}
    series.update({f"eval/{name}": history.get("eval", f"metrics/{name}") for name in metric_names})
    steps = sorted({step for values in series.values() for step, _ in values})
    with staged_directory(directory) as scratch:
        with Live(dir=str(scratch), dvcyaml=None, save_dvc_exp=False, report=None) as live:
            for step in steps:
                live.step = step
                for name, values in series.items():
                    value = dict(values).get(step)
                    if value is not None:
                        live.log_metric(name, float(value))
                live.next_step()


def data_streams(task, params, tokens):
    seed = params["train"]["seed"]
    return {split: CountingStream(task.training_batches(params, tokens, split, seed + offset))
            for offset, split in enumerate(("train", "valid"))}


def resume_state(loop, streams, resumed_from):
    return {"rng": loop_rng(loop).tolist(), "stream_positions": {name: s.consumed for name, s in streams.items()},
            "resumed_from_steps": resumed_from}


def restore(loop, streams, state):
    """Put the random key and the data streams where the checkpointed run had them."""
    if loop.step != state["step"]:
        raise UserError(f"the checkpoint is at step {state['step']} but trax restored step {loop.step}")
    set_loop_rng(loop, state["rng"])
    for name, position in state["stream_positions"].items():
        streams[name].skip_to(position)


COMMAND_SHELLS = {"sh", "dash", "bash", "zsh", "ksh", "fish"}


def the_starter():
    """The process that started this one: the nearest ancestor that is not a shell. DVC runs a stage's
    command through $SHELL, or /bin/sh when it is unset; bash execs a lone command, but dash (Debian's
    /bin/sh) stays as its parent, and a shell outlives a killed `dvc`."""
    import psutil

    process = psutil.Process().parent()
    while process is not None and process.name() in COMMAND_SHELLS:
        process = process.parent()
    return process


def has_ended(process):
    """Gone, or a zombie: a killed `dvc` stays one until whoever ran it reaps it, perhaps only after we end."""
    import psutil

    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@contextlib.contextmanager
def stop_requests():
    """An Event set, for the block, by each Ctrl-C or SIGTERM (and so by the starter watch, which raises one of
    them itself), before the handler that was there raises KeyboardInterrupt wherever the main thread is.

    Raised inside a library that catches exceptions, a KeyboardInterrupt can come out as another error (NumPy
    turns one raised while it builds an array into a ValueError); the Event tells the run it was still asked to
    stop. Outside the main thread, where no handler can be set, the Event is never set."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}

    def record_then(handler):
        def handle(number, frame):
            requested.set()
            handler(number, frame)
        return handle

    for number, handler in previous.items():
        if callable(handler):  # the default action ends the process at once: nothing to record for
            signal.signal(number, record_then(handler))
    try:
        yield requested
    finally:
        for number, handler in previous.items():
            if callable(handler):
                signal.signal(number, handler)


def stop_when_the_starter_ends(poll_seconds=0.5):
    """Under DVC (it sets DVC_STAGE; Snakemake's jobs run through DVC too), watch the process that started
    this one, and when it is gone, stop as Ctrl-C would. Returns an Event set when that happened.

    By hand (no DVC_STAGE), a run outlives its shell as any other command does (`nohup`, a closed ssh)."""
    starter_ended = threading.Event()
    starter = the_starter() if os.environ.get("DVC_STAGE") else None
    if starter is not None:
        def watch():
            while not has_ended(starter):
                time.sleep(poll_seconds)
            starter_ended.set()
            # SIGTERM when seqnlp handles it (the command does): a shell without job control starts background
            # commands with SIGINT ignored, and Python does nothing for an interrupt of an ignored signal
            stop = signal.SIGTERM if callable(signal.getsignal(signal.SIGTERM)) else signal.SIGINT
            _thread.interrupt_main(stop)

        threading.Thread(target=watch, name="starter watch", daemon=True).start()
    return starter_ended


def train(task_name, task, params, tokens, store, bar, starter_ended=None, stop_requested=None):
    """Run (or resume) the loop to ``steps``, checkpointing as it goes; return the loop and its resumes.

    A stop (Ctrl-C, SIGTERM, the starter's end) ends it with the checkpoints kept, also when the library it
    landed in turned the KeyboardInterrupt into another error (``stop_requested`` is set then)."""
    train_params = params["train"]
    steps, every = train_params["steps"], train_params["checkpoint_every"]
    store.prepare()
    state = store.restore_latest(trax_checkpoint_readable)
    streams = data_streams(task, params, tokens)
    loop = build_loop(task, params, streams, store.work, [progress_bar_callback(bar, list(task.eval_metrics(params)))])
    resumed_from = []
    if state is not None:
        with tqdm(total=1, desc=f"resuming at step {state['step']}: fast-forwarding the data streams",
                  bar_format="{desc}", leave=False):
            restore(loop, streams, state)
        resumed_from = state["resumed_from_steps"] + [state["step"]]
        tqdm.write(f"resumed {task_name} from the checkpoint at step {state['step']} in {store.directory}",
                   file=sys.stderr)
    bar.update(loop.step)
    try:
        while loop.step < steps:
            with contextlib.redirect_stdout(io.StringIO()):  # trax prints a report per eval; the bar shows it
                loop.run(min((loop.step // every + 1) * every, steps) - loop.step)
            store.save(loop.step, lambda directory: save_checkpoint_to(loop, directory),
                       resume_state(loop, streams, resumed_from))
    except BaseException as error:
        if not isinstance(error, KeyboardInterrupt) and not (stop_requested and stop_requested.is_set()):
            raise
        kept = store.latest_step()
        stopped = (f"training stopped at step {loop.step}: the dvc process that started it ended"
                   if starter_ended and starter_ended.is_set() else f"training interrupted at step {loop.step}")
        raise Interrupted(f"{stopped}; " + (
            f"checkpoint at step {kept} kept in {store.directory}: run the same command again to resume it"
            if kept else "no checkpoint was written yet")) from None
    return loop, resumed_from


def copy_reproducibly(source, destination):
    """Copy a gzipped trax checkpoint file so that its bytes are a function of the training alone.

    gzip stamps the time of writing into each file, and trax's pickled history holds the measured steps
    per second: left in, every run of the same training writes different bytes, and DVC stores and ships
    another copy of the same model.
    """
    with gzip.open(source) as stream:
        content = stream.read()
    if source.name.endswith(".pkl.gz"):
        checkpoint = pickle.loads(content)
        for series in checkpoint["history"]["_values"].values():
            for name in [name for name in series if TIMING_SERIES in name]:
                del series[name]
        content = pickle.dumps(checkpoint, protocol=pickle.HIGHEST_PROTOCOL)
    with open(destination, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=2,
                                                       mtime=0) as stream:
        stream.write(content)


def publish(task_name, params, store, loop, resumed_from):
    """Replace models/TASK with the finished run's model and its training record, all at once."""
    unit = store.units()[0]
    with staged_directory(layout.model(task_name)) as scratch:
        for name in MODEL_FILES:
            copy_reproducibly(unit / name, scratch / name)
        write_json(scratch / TRAINING_RECORD, {
            "steps": loop.step, "resumed_from_steps": resumed_from, "model": params["model"],
            "fingerprint": store.fingerprint,
        })


def run(task_name):
    task, params = tasks.load(task_name), tasks.params(task_name)
    tokens = layout.tokens(task_name)
    store = CheckpointStore(layout.checkpoints(task_name), fingerprint(task_name, params, tokens))
    with store.held(f"seqnlp train {task_name}"), stop_requests() as stop_requested:
        starter_ended = stop_when_the_starter_ends()
        with tqdm(total=params["train"]["steps"], desc="training", unit=" steps") as bar:
            loop, resumed_from = train(task_name, task, params, tokens, store, bar, starter_ended, stop_requested)
        publish(task_name, params, store, loop, resumed_from)
        metric_names = list(task.eval_metrics(params))
        write_training_log(loop.history, loop.tasks[0].loss_name, metric_names, layout.training_log(task_name))
        store.remove()
    last = {name: loop.history.get("eval", f"metrics/{name}")[-1][1] for name in metric_names}
    print(f"train {task_name}: {loop.step} steps"
          + (f" (resumed from step {', '.join(map(str, resumed_from))})" if resumed_from else "")
          + f", model {layout.model(task_name)}, validation "
          f"{json.dumps({name: round(float(v), 4) for name, v in last.items()})}")
