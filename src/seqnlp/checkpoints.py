"""In-progress training state: checkpoints written as one unit, verified before they are resumed.

A task's store lives outside the stage's declared outputs (``checkpoints/TASK``), so neither DVC nor
Snakemake deletes it before rerunning the stage, and the published model is replaced only when a run
finishes. Each checkpoint is a directory ``step_NNNNNNNN`` written under a scratch name and renamed
once every file and its manifest (sha256 of each file) are on disk: a kill leaves either the whole
unit or a scratch directory that is never resumed. A unit that fails its manifest is set aside under
``*.corrupt`` and the next older one is tried.
"""

import gzip
import json
import os
import pickle
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

from seqnlp.artifacts import make_scratch_directory, read_json, sha256_of

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
            aside = self.directory.with_name(self.directory.name + ".set-aside")
            changed = sorted(key for key in self.fingerprint if (found or {}).get(key) != self.fingerprint[key])
            shutil.rmtree(aside, ignore_errors=True)
            self.directory.rename(aside)
            _say(f"{self.directory} holds checkpoints made with different {', '.join(changed) or 'settings'}; "
                 f"moved to {aside}, training from scratch")
        self.directory.mkdir(parents=True, exist_ok=True)
        for partial in self.directory.glob(PARTIAL_PREFIX + "*"):
            _say(f"removing {partial}: a checkpoint whose writing was interrupted")
            shutil.rmtree(partial)
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir()
        (self.directory / FINGERPRINT).write_text(json.dumps(self.fingerprint, indent=2, sort_keys=True) + "\n")

    def _found_fingerprint(self):
        try:
            return read_json(self.directory / FINGERPRINT)
        except (OSError, ValueError):
            return None

    def save(self, step, write_files, resume_state):
        """Write one unit: ``write_files(directory)`` writes the checkpoint files, then the resume state."""
        scratch = make_scratch_directory(f"{PARTIAL_PREFIX}{UNIT_PREFIX}{step:08d}.", self.directory)
        write_files(scratch)
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
                shutil.rmtree(self.work)
                shutil.copytree(unit, self.work)
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
        shutil.rmtree(self.directory, ignore_errors=True)


def trax_checkpoint_readable(directory, basename="model"):
    """Raise unless trax's checkpoint in ``directory`` unpickles and names its step."""
    with gzip.open(Path(directory) / f"{basename}.pkl.gz") as stream:
        return pickle.load(stream)["step"]
