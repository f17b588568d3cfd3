"""train: run trax's training.Loop for a task, resuming from its checkpoint when the params match."""

import contextlib
import io
import json
import random
import shutil
import sys

import numpy as np
from dvclive import Live
from tqdm import tqdm

from seqnlp import layout, tasks
from seqnlp.artifacts import read_json, sha256_of, staged_directory, write_json
from seqnlp.compat import trax
from trax.supervised import callbacks as step_callbacks
from trax.supervised import lr_schedules, training

FINGERPRINT_FILE = "fingerprint.json"
CHECKPOINT_FILE = "model.pkl.gz"


def fingerprint(params, tokens):
    """Everything that decides what a checkpoint means: model and training params, and the data."""
    return {
        "model": params["model"],
        "train": params["train"],
        "data_sha256": {path.name: sha256_of(path) for path in sorted(tokens.glob("*.npz"))},
    }


def prepare_output_dir(output_dir, expected):
    """Keep a checkpoint only if it was made with the same fingerprint; say so either way."""
    fingerprint_path = output_dir / FINGERPRINT_FILE
    if (output_dir / CHECKPOINT_FILE).exists():
        found = read_json(fingerprint_path) if fingerprint_path.exists() else None
        if found == expected:
            tqdm.write(f"resuming from {output_dir / CHECKPOINT_FILE}", file=sys.stderr)
            return
        changed = sorted(key for key in expected if found is None or found.get(key) != expected[key])
        tqdm.write(f"{output_dir} holds a checkpoint made with different {', '.join(changed)}; "
                   "starting from scratch instead of resuming it", file=sys.stderr)
    if output_dir.exists():
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True)
    write_json(fingerprint_path, expected)


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


def build_loop(task, params, tokens, output_dir, callbacks=()):
    train_params = params["train"]
    seed = train_params["seed"]
    train_task = training.TrainTask(
        labeled_data=task.training_batches(params, tokens, "train", seed),
        loss_layer=task.loss(),
        optimizer=trax.optimizers.Adam(train_params["learning_rate"], **train_params["adam"]),
        lr_schedule=learning_rate_schedule(train_params),
        n_steps_per_checkpoint=train_params["checkpoint_every"],
    )
    eval_task = training.EvalTask(
        labeled_data=task.training_batches(params, tokens, "valid", seed + 1),
        metrics=[metric() for metric in task.eval_metrics],
        metric_names=list(task.metric_names),
        n_eval_batches=train_params["eval_batches"],
    )
    eval_every, steps = train_params["eval_every"], train_params["steps"]
    return training.Loop(
        task.model(params, mode="train"),
        [train_task],
        eval_model=task.model(params, mode="eval"),
        eval_tasks=[eval_task],
        output_dir=str(output_dir),
        eval_at=lambda step: step % eval_every == 0 or step == steps,
        random_seed=seed,
        callbacks=list(callbacks),
    )


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


def run(task_name):
    task, params = tasks.load(task_name), tasks.params(task_name)
    tokens, output_dir = layout.tokens(task_name), layout.model(task_name)
    train_params = params["train"]
    random.seed(train_params["seed"])
    np.random.seed(train_params["seed"])
    prepare_output_dir(output_dir, fingerprint(params, tokens))
    with tqdm(total=train_params["steps"], desc="training", unit=" steps") as bar:
        loop = build_loop(task, params, tokens, output_dir, [progress_bar_callback(bar, task.metric_names)])
        bar.update(loop.step)
        with contextlib.redirect_stdout(io.StringIO()):  # trax prints a report per eval; the bar shows it
            loop.run(max(train_params["steps"] - loop.step, 0))
    loop.save_checkpoint("model")
    write_training_log(loop.history, loop.tasks[0].loss_name, task.metric_names, layout.training_log(task_name))
    last = {name: loop.history.get("eval", f"metrics/{name}")[-1][1] for name in task.metric_names}
    print(f"train {task_name}: {loop.step} steps, checkpoint {output_dir / CHECKPOINT_FILE}, "
          f"validation {json.dumps({name: round(float(v), 4) for name, v in last.items()})}")
