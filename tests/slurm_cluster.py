"""A real single-node SLURM cluster on this machine, for the end-to-end test of the cluster path.

Debian's slurmctld, slurmd and munge (installed by `make cluster-packages`) run as child processes of the
test in the foreground, so that the test stops exactly the processes it started. The configuration has to
be /etc/slurm/slurm.conf: the executor plugin's job step clears every SLURM_* variable (SLURM_CONF too)
before its inner `srun`. A configuration already there is put back afterwards.
"""

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

CONFIG = Path("/etc/slurm/slurm.conf")
MUNGE_KEY = Path("/etc/munge/munge.key")
DAEMONS = ("munged", "slurmctld", "slurmd", "sinfo", "squeue", "sbatch", "srun")


def missing_programs():
    return [program for program in DAEMONS if shutil.which(program) is None and not Path("/usr/sbin", program).exists()]


def _node():
    """This node as `slurmd -C` sees it: name, CPUs and memory (RealMemory above it drains the node)."""
    described = subprocess.run(["/usr/sbin/slurmd", "-C"], check=True, capture_output=True, text=True).stdout
    fields = dict(re.findall(r"(\w+)=(\S+)", described.splitlines()[0]))
    return socket.gethostname().split(".")[0], int(fields["CPUs"]), int(fields["RealMemory"])


def slurm_conf(state):
    name, cpus, memory = _node()
    # No systemd and no cgroups in a container: track processes through /proc, bind nothing, gather nothing.
    return f"""\
ClusterName=seqnlp-test
SlurmctldHost={name}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MinJobAge=300
StateSaveLocation={state}/slurmctld
SlurmdSpoolDir={state}/slurmd
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
DefMemPerCPU={memory // cpus}
NodeName={name} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _prepare_munge():
    munge = pwd.getpwnam("munge")
    Path("/run/munge").mkdir(exist_ok=True)
    os.chown("/run/munge", munge.pw_uid, munge.pw_gid)
    os.chmod("/etc/munge", 0o700)
    os.chown(MUNGE_KEY, munge.pw_uid, munge.pw_gid)
    os.chmod(MUNGE_KEY, 0o400)


def _wait_until(condition, seconds, what, logs):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    tails = "\n".join(f"--- {log}\n{log.read_text()[-2000:]}" for log in logs if log.exists())
    raise RuntimeError(f"the test cluster did not come up: {what} after {seconds} s\n{tails}")


def _node_state():
    result = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def _stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def single_node_cluster(state):
    """Start munged, slurmctld and slurmd with their state and logs under ``state``; stop them on exit."""
    state = Path(state)
    (state / "slurmctld").mkdir(parents=True)
    (state / "slurmd").mkdir()
    saved = CONFIG.read_bytes() if CONFIG.exists() else None
    CONFIG.parent.mkdir(parents=True, exist_ok=True)
    CONFIG.write_text(slurm_conf(state))
    _prepare_munge()
    logs = [state / "munged.log", state / "slurmctld.log", state / "slurmd.log"]
    started = []
    try:
        with open(logs[0], "w") as munge_log:
            started.append(subprocess.Popen(["/usr/sbin/munged", "--foreground"], user="munge", group="munge",
                                            extra_groups=[], stdout=munge_log, stderr=subprocess.STDOUT))
        _wait_until(lambda: Path("/run/munge/munge.socket.2").exists(), 15, "no munge socket", logs)
        # -D: stay in the foreground, so that the PIDs are ours; -i: ignore state left by an earlier run.
        started.append(subprocess.Popen(["/usr/sbin/slurmctld", "-D", "-i"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT))
        started.append(subprocess.Popen(["/usr/sbin/slurmd", "-D"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT))
        _wait_until(lambda: _node_state() == "idle", 60, f"node state {_node_state() or 'unknown'!r}", logs)
        yield state
    finally:
        for process in reversed(started):
            _stop(process)
        if saved is None:
            CONFIG.unlink(missing_ok=True)
        else:
            CONFIG.write_bytes(saved)
