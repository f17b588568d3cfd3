"""In-progress training state: checkpoints written as one unit, verified before they are resumed.

A task's store lives outside the stage's declared outputs (``checkpoints/TASK``), so neither DVC nor
Snakemake deletes it before rerunning the stage, and the published model is replaced only when a run
finishes. Each checkpoint is a directory ``step_NNNNNNNN`` written under a scratch name and renamed
once every file and its manifest (sha256 of each file) are on disk: a kill leaves either the whole
unit or a scratch directory that is never resumed. A unit that fails its manifest is set aside under
``*.corrupt`` and the next older one is tried.

One process writes a store at a time: it holds an OS lock on ``checkpoints/TASK.lock``, which the kernel
releases however the process ends, so a crashed writer never blocks the next run.

Life cycle: a store lives while its training is unfinished. A run with another fingerprint moves it to
``TASK.set-aside`` (the previous set-aside one is dropped); a finished run removes the store, its
``*.corrupt`` units and the set-aside store, and leaves only the (empty) lock file.
"""

import contextlib
import fcntl
import gzip
import json
import os
import pickle
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

from seqnlp.artifacts import make_scratch_directory, read_json, sha256_of
from seqnlp.errors import UserError

MANIFEST = "manifest.json"
FINGERPRINT = "fingerprint.json"
RESUME_STATE = "resume.json"
UNIT_PREFIX, PARTIAL_PREFIX = "step_", ".partial-"
KEEP_UNITS = 2


def _say(message):
    tqdm.write(message, file=sys.stderr)


def _fsync(path):
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class CheckpointStore:
    """The checkpoints of one training run, identified by the fingerprint of what defines the model."""

    def __init__(self, directory, fingerprint):
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        self.work = self.directory / "work"
        self.set_aside = self.directory.with_name(self.directory.name + ".set-aside")
        self.lock_file = self.directory.with_name(self.directory.name + ".lock")

    @contextlib.contextmanager
    def held(self, holder):
        """Hold the store for the block, or refuse in one line naming the process that holds it.

        ``holder`` describes this process (the command) for such a refusal."""
        try:
            self.lock_file.parent.mkdir(parents=True, exist_ok=True)
            lock = open(self.lock_file, "a+")  # not "w": that would erase the holder's name before locking
        except OSError as error:
            raise self._cannot_write("checkpoints", self.lock_file.parent, error) from None
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                raise UserError(f"{self.directory} is being written by {lock.read().strip() or 'another process'}; "
                                "wait for it to end (or stop it), then run the same command again") from None
            lock.truncate(0)
            lock.write(f"process {os.getpid()} ({holder})\n")
            lock.flush()
            try:
                yield self
            finally:
                lock.truncate(0)

    def units(self):
        """Complete checkpoint units, newest first."""
        if not self.directory.is_dir():
            return []
        return sorted((path for path in self.directory.iterdir()
                       if path.name.startswith(UNIT_PREFIX) and path.name[len(UNIT_PREFIX):].isdigit()),
                      reverse=True)

    def latest_step(self):
        units = self.units()
        return int(units[0].name[len(UNIT_PREFIX):]) if units else None

    def prepare(self):
        """Set aside a store made for another fingerprint, drop unfinished writes, start an empty work dir."""
        found = self._found_fingerprint()
        if self.directory.exists() and found != self.fingerprint:
            aside = self.set_aside
            changed = sorted(key for key in self.fingerprint if (found or {}).get(key) != self.fingerprint[key])
            shutil.rmtree(aside, ignore_errors=True)
            self.directory.rename(aside)
            _say(f"{self.directory} holds checkpoints made with different {', '.join(changed) or 'settings'}; "
                 f"moved to {aside}, training from scratch")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for partial in self.directory.glob(PARTIAL_PREFIX + "*"):
                _say(f"removing {partial}: a checkpoint whose writing was interrupted")
                shutil.rmtree(partial)
            if self.work.exists():
                shutil.rmtree(self.work)
            self.work.mkdir()
            (self.directory / FINGERPRINT).write_text(json.dumps(self.fingerprint, indent=2, sort_keys=True) + "\n")
        except OSError as error:
            raise self._cannot_write("checkpoints", self.directory, error) from None

    def _found_fingerprint(self):
        try:
            return read_json(self.directory / FINGERPRINT)
        except (OSError, ValueError):
            return None

    def save(self, step, write_files, resume_state):
        """Write one unit: ``write_files(directory)`` writes the checkpoint files, then the resume state.

        A write that fails (a full disk, a folder made read-only) removes its scratch unit and raises one
        UserError naming the folder and the cause; the units written before stay as they are."""
        try:
            scratch = make_scratch_directory(f"{PARTIAL_PREFIX}{UNIT_PREFIX}{step:08d}.", self.directory)
        except OSError as error:
            raise self._cannot_write(f"the checkpoint at step {step}", self.directory, error) from None
        try:
            write_files(scratch)
            return self._complete(step, scratch, resume_state)
        except Exception as error:
            shutil.rmtree(scratch, ignore_errors=True)
            if _is_file_error(error):
                raise self._cannot_write(f"the checkpoint at step {step}", self.directory, error) from None
            raise

    def _cannot_write(self, what, folder, error):
        kept = self.latest_step()
        return UserError(f"cannot write {what} in {folder}: {_cause(error)}; "
                         + (f"the checkpoint at step {kept} in {self.directory} is kept: free some space (or make "
                            "the folder writable), then run the same command again to resume it" if kept else
                            "no checkpoint is kept yet"))

    def _complete(self, step, scratch, resume_state):
        (scratch / RESUME_STATE).write_text(json.dumps({"step": step, **resume_state}, sort_keys=True) + "\n")
        files = {path.name: sha256_of(path) for path in sorted(scratch.iterdir())}
        for name in files:
            _fsync(scratch / name)
        manifest = {"step": step, "fingerprint": self.fingerprint, "files": files}
        (scratch / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _fsync(scratch / MANIFEST)
        _fsync(scratch)
        unit = self.directory / f"{UNIT_PREFIX}{step:08d}"
        shutil.rmtree(unit, ignore_errors=True)
        scratch.rename(unit)
        _fsync(self.directory)
        for old in self.units()[KEEP_UNITS:]:
            shutil.rmtree(old)
        return unit

    def problem_with(self, unit):
        """Why ``unit`` cannot be resumed, or None when every file matches its manifest."""
        try:
            manifest = read_json(unit / MANIFEST)
        except (OSError, ValueError) as error:
            return f"no readable {MANIFEST} ({error})"
        if manifest.get("fingerprint") != self.fingerprint:
            return "made for another fingerprint"
        if f"{UNIT_PREFIX}{manifest.get('step', -1):08d}" != unit.name:
            return f"its manifest is for step {manifest.get('step')}"
        present = {path.name for path in unit.iterdir()} - {MANIFEST}
        if present != set(manifest["files"]):
            return f"holds {sorted(present)}, its manifest lists {sorted(manifest['files'])}"
        for name, expected in manifest["files"].items():
            if sha256_of(unit / name) != expected:
                return f"{name} does not match its sha256"
        return None

    def restore_latest(self, loadable):
        """Copy the newest sound unit into the work dir and return its resume state (None: start afresh).

        ``loadable(directory)`` raises if the copied checkpoint cannot be read; such a unit is set aside too.
        """
        for unit in self.units():
            problem = self.problem_with(unit)
            if problem is None:
                try:
                    shutil.rmtree(self.work)
                    self.work.mkdir()
                    for path in unit.iterdir():  # a unit is flat (its manifest says so); copytree would bury
                        shutil.copy2(path, self.work / path.name)  # the system's reason in a list of them
                except OSError as error:
                    raise self._cannot_write(f"a copy of {unit.name} to resume", self.work, error) from None
                try:
                    loadable(self.work)
                    return read_json(self.work / RESUME_STATE)
                except Exception as error:  # any failure to read a verified unit means it cannot be resumed
                    problem = f"cannot be read ({type(error).__name__}: {error})"
                shutil.rmtree(self.work)
                self.work.mkdir()
            aside = unit.with_name(unit.name + ".corrupt")
            shutil.rmtree(aside, ignore_errors=True)
            unit.rename(aside)
            _say(f"checkpoint {unit} is incomplete or corrupt ({problem}); set aside as {aside.name}")
        return None

    def remove(self):
        """End of life: the finished run's store and any set-aside one (the lock file stays, empty)."""
        shutil.rmtree(self.directory, ignore_errors=True)
        shutil.rmtree(self.set_aside, ignore_errors=True)


def _is_file_error(error):
    # TensorFlow's file errors (a full disk: ResourceExhaustedError) are not OSErrors.
    return isinstance(error, OSError) or type(error).__module__.startswith("tensorflow")


def _cause(error):
    """The reason in a few words: the system's; from TensorFlow, whose message is "FILE; REASON" and then a
    call stack, the reason."""
    if getattr(error, "errno", None):
        return os.strerror(error.errno)
    lines = str(error).strip().splitlines()
    return lines[0].rsplit("; ", 1)[-1] if lines else type(error).__name__


def trax_checkpoint_readable(directory, basename="model"):
    """Raise unless trax's checkpoint in ``directory`` unpickles and names its step."""
    with gzip.open(Path(directory) / f"{basename}.pkl.gz") as stream:
        return pickle.load(stream)["step"]
