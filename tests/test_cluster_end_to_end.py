"""The small slice through Snakemake's unchanged SLURM profile on a real single-node SLURM: a failed job, the
rest of the run, the rerun that continues from what finished, and the same results as `dvc repro`."""

import contextlib
import json
import os
import re
import shutil

import pytest
import yaml

import slurm_cluster
from conftest import MIRROR
from end_to_end import COMPUTED_ON_SLURM, jobs_run, run, slice_run_made_once, small_copy, snakemake_log
from seqnlp import regenerate

pytestmark = pytest.mark.slow


def mirror_without(tmp_path, entry):
    """The data mirror with one of its entries missing, so that the stages reading it fail."""
    partial = tmp_path / f"mirror-without-{entry}"
    partial.mkdir()
    for item in MIRROR.iterdir():
        if item.name != entry:
            (partial / item.name).symlink_to(item)
    return partial


SLURM = ["snakemake", "--profile", "workflow/profiles/slurm"]


def computed_on_slurm(stage):
    return stage.endswith(f"@{COMPUTED_ON_SLURM}") or stage == "render_plots"


def files_of(folder):
    """The files under ``folder``, but those DVC is writing (``*.tmp``, renamed into place when complete)."""
    return [path for path in folder.rglob("*") if path.is_file() and not path.name.endswith(".tmp")]


def seed_run_cache(source, destination):
    """Give ``destination`` (a copy of the same code and params) the stages that ``source``'s run has made of
    the tasks the cluster does not compute: every object of its DVC cache, and the run-cache records of every
    stage but those it computes (whose commands come from dvc.yaml: the run may still be adding them). `dvc
    repro` there then restores those stages' outputs from the cache, as after `dvc pull --run-cache`, and runs
    the others. (Its cache, not its remote: seeded from the pushed remote, every stage ran again on the
    cluster; the remote held 190 of the cache's 221 objects, without the training curves' folders under plots/.)"""
    from dvc.repo import Repo

    with Repo(str(destination)) as repo:
        commands = {stage.cmd for stage in repo.index.stages if computed_on_slurm(stage.name)}
    cache, seeded = source / ".dvc" / "cache", destination / ".dvc" / "cache"
    for item in files_of(cache / "files"):
        (seeded / item.relative_to(cache)).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):  # a temporary file renamed since it was listed
            os.link(item, seeded / item.relative_to(cache))  # DVC's objects are read-only
    for record in files_of(cache / "runs"):
        if yaml.safe_load(record.read_text())["cmd"] not in commands:
            (seeded / record.relative_to(cache).parent).mkdir(parents=True, exist_ok=True)
            shutil.copy(record, seeded / record.relative_to(cache))


@pytest.fixture(scope="module")
def seedable_run(tmp_path_factory):
    """The small slice run by DVC, as soon as it holds every task the cluster does not compute."""
    return slice_run_made_once(tmp_path_factory, needed="seedable")


@pytest.fixture(scope="module")
def slurm_run(seedable_run, tmp_path_factory):
    """The small slice through the unchanged SLURM profile on a real single-node SLURM: first with the AG News
    files missing from the mirror (so the topics branch fails and the rest finishes), then, with the
    mirror whole, a rerun that continues from what finished. The cluster computes the topics branch and the
    plots; every other stage is restored from the DVC run's run-cache (the DVC run is what tests computing
    them), so the cluster run costs one branch, not five. Returns the run's folder, what both runs printed
    and the failed job's log."""
    missing = slurm_cluster.missing_programs()
    assert not missing, f"SLURM is not installed (missing {missing}): run `make cluster-packages` as root"
    root = small_copy(tmp_path_factory.mktemp("slurm"))
    seed_run_cache(seedable_run, root)
    with slurm_cluster.single_node_cluster(tmp_path_factory.mktemp("cluster")):
        broken = {"SEQNLP_DATA_MIRROR": str(mirror_without(tmp_path_factory.mktemp("mirror"), "ag_news"))}
        failed = snakemake_log([*SLURM, "--keep-going"], root, env=broken, expect=1)
        failed_job_log = (root / "logs/download_topics.log").read_text()
        rerun = snakemake_log(SLURM, root)
    return root, failed, failed_job_log, rerun


def test_a_failed_cluster_job_names_its_log_and_the_rest_of_the_run_finishes(slurm_run):
    root, failed, failed_job_log, rerun = slurm_run
    assert "Error in rule download_topics" in failed and "logs/download_topics.log" in failed
    assert "ag_news" in failed_job_log and "Traceback" not in failed_job_log
    # each task's short stages ran as one cluster job per group of workflow/resources.yaml, training alone
    submitted = re.findall(r"submitted with SLURM jobid \d+ \(log: \S+/slurm_logs/(\w+)/", failed)
    assert "group_data_download_ner_gmb_filter_ner_gmb_tokenize_ner_gmb" in submitted and "rule_train_ner_gmb" in \
        submitted
    assert not [job for job in submitted if job.split("_")[1] in ("download", "filter", "tokenize", "evaluate",
                                                                 "export", "package")], submitted
    # the rerun continued from what finished: only the topics branch and what reads every branch ran
    assert jobs_run(rerun) == {f"{kind}_topics" for kind in ("download", "filter", "tokenize", "train", "evaluate",
                                                             "export", "package")} | {"render_plots", "all"}
    ran = {job_log.stem for job_log in (root / "logs").glob("*.log") if "Running stage" in job_log.read_text()}
    assert {rule for rule in jobs_run(rerun) if rule != "all"} <= ran
    # the other tasks' models were restored from the run-cache, not trained again (samples/, which git keeps
    # and DVC does not cache, cannot be restored: generate@shakespeare runs)
    assert not {rule for rule in ran if rule.split("_")[0] in ("train", "evaluate", "export", "package")
                and not rule.endswith(f"_{COMPUTED_ON_SLURM}")}, ran


def test_the_cluster_run_makes_what_dvc_repro_makes(slice_run, slurm_run):
    root = slurm_run[0]
    assert "up to date" in run(["dvc", "status"], root)
    assert "Nothing to be done" in run([*SLURM, "-n"], root)
    by_dvc = yaml.safe_load((slice_run / "dvc.lock").read_text())["stages"]
    on_slurm = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert by_dvc.keys() == on_slurm.keys()
    for stage in by_dvc:
        assert by_dvc[stage]["cmd"] == on_slurm[stage]["cmd"]
        if not stage.startswith("package@"):  # every output, trained models included, is byte-identical
            assert by_dvc[stage]["outs"] == on_slurm[stage]["outs"], stage
    for metrics in sorted((slice_run / "metrics").glob("*.json")):
        tolerances = regenerate.load_tolerances(slice_run / "tolerances.yaml")
        assert regenerate.compare(metrics.name, json.loads(metrics.read_text()),
                                  json.loads((root / "metrics" / metrics.name).read_text()), tolerances) == []


def test_a_run_warns_of_nothing_and_leaves_only_results_to_commit(slurm_run):
    root, _, _, rerun = slurm_run
    assert "warning" not in rerun.lower()
    changed = run(["git", "status", "--porcelain", "--untracked-files=all"], root).splitlines()
    assert changed and all(line[3:].split("/")[0] in ("dvc.lock", "metrics", "plots", "samples") for line in changed), \
        changed
    assert sorted((root / "logs").glob("*.log")) and (root / "logs/train_topics.log").stat().st_size > 0


def test_snakemake_rules_are_the_dvc_stages(slurm_run):
    root = slurm_run[0]
    rules = set(run(["snakemake", "--list-rules"], root).split())
    stages = {line.split()[0].replace("@", "_") for line in run(["dvc", "stage", "list"], root).splitlines()}
    assert rules == stages | {"all"}


def test_snakemake_report_holds_the_metrics_and_plots_of_the_run(slurm_run):
    root = slurm_run[0]
    run(["snakemake", "--report", "report.html"], root)
    report = (root / "report.html").read_text()
    for metrics in (root / "metrics").glob("*.json"):
        assert f"metrics/{metrics.name}" in report
    titles = [next(iter(plot)) for plot in yaml.safe_load((root / "dvc.yaml").read_text())["plots"]]
    images = sorted((root / "plots-rendered").glob("*.svg"))
    assert len(images) == len(titles)
    for image in images:
        assert image.name in report and image.read_text().startswith("<svg")
