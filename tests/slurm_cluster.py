"""A one-node SLURM cluster for tests: munged, slurmctld and slurmd started as root without
systemd, stopped by PID. The node `localhost` has one countable `npu` GRES and a feature,
and sits in several partitions, each standing for the machines of one chip."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scontrol", "srun", "scancel", "munge")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN = Path("/run/munge")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
#: Where a configless slurmd links its cached config, for the commands run on its node.
CONF_CACHE_LINK = Path("/run/slurm/conf")
NODE_FEATURE = "npuhost"
START_TIMEOUT_S = 60.0


def missing_reason() -> str | None:
    """Why a cluster cannot be started here, or None."""
    absent = [p for p in DAEMONS if not Path(p).is_file()]
    absent += [c for c in CLIENTS if not shutil.which(c)]
    if absent:
        return (f"SLURM is not installed ({', '.join(absent)} missing): "
                "apt-get install slurmctld slurmd slurm-client munge (.ci/run does)")
    if os.geteuid() != 0:
        return "starting slurmctld, slurmd and munged needs root"
    if SYSTEM_CONF.exists():
        return f"{SYSTEM_CONF} exists: the jobs' own srun would talk to that cluster"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_hardware() -> dict[str, str]:
    """CPUs and RealMemory as slurmd itself measures them, so the node is not drained."""
    line = subprocess.run(["/usr/sbin/slurmd", "-C"], capture_output=True, text=True,
                          timeout=30, check=True).stdout.splitlines()[0]
    fields = dict(item.split("=", 1) for item in line.split())
    return {key: fields[key] for key in ("CPUs", "RealMemory")}


def slurm_conf(root: Path, partitions: list[str], ports: tuple[int, int]) -> str:
    hardware = node_hardware()
    lines = [
        "ClusterName=chipbench",
        "SlurmctldHost=localhost",
        f"SlurmctldPort={ports[0]}",
        f"SlurmdPort={ports[1]}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        # No systemd, no cgroup hierarchy to manage: plain process tracking.
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "ReturnToService=2",
        "SlurmctldParameters=enable_configless",
        # squeue (the SLURM profile's status command) sees a finished job this long, and
        # the tests read where each job of a run ran after the run.
        "MinJobAge=3600",
        "KillWait=5",
        "GresTypes=npu",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'slurmd.log'}",
        f"NodeName=localhost CPUs={hardware['CPUs']} RealMemory={hardware['RealMemory']} "
        f"Gres=npu:1 Feature={NODE_FEATURE} State=UNKNOWN",
    ]
    lines += [
        f"PartitionName={name} Nodes=localhost MaxTime=INFINITE State=UP"
        + (" Default=YES" if i == 0 else "")
        for i, name in enumerate(partitions)
    ]
    return "\n".join(lines) + "\n"


def munge_answers() -> bool:
    result = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
    return result.returncode == 0


@dataclass
class Cluster:
    """A running one-node cluster; `env` points SLURM's commands at it (SLURM_CONF)."""

    root: Path
    partitions: list[str]
    env: dict[str, str] = field(default_factory=dict)
    daemons: list[subprocess.Popen] = field(default_factory=list)

    def run(self, *command: str) -> str:
        return subprocess.run(command, capture_output=True, text=True, env=self.env,
                              timeout=30, check=True).stdout

    def start(self) -> Cluster:
        for folder in ("state", "spool"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        conf = self.root / "slurm.conf"
        ports = (free_port(), free_port())
        conf.write_text(slurm_conf(self.root, self.partitions, ports))
        # slurmd reads gres.conf beside slurm.conf; a count, no device file behind it.
        (self.root / "gres.conf").write_text("Name=npu Count=1 Flags=CountOnly\n")
        self.env = {**os.environ, "SLURM_CONF": str(conf)}
        if not munge_answers():
            self._start_munged()
        self._spawn("/usr/sbin/slurmctld", "-D", "-c", "-i")
        # Configless slurmd: it caches the controller's config under /run/slurm/conf, where
        # the job's own srun finds it (the SLURM plugin's job step drops SLURM_CONF).
        self._spawn("/usr/sbin/slurmd", "-D", "-N", "localhost",
                    "--conf-server", f"localhost:{ports[0]}",
                    env={k: v for k, v in self.env.items() if k != "SLURM_CONF"})
        self._wait_idle()
        return self

    def _spawn(self, *command: str, **options) -> None:
        options.setdefault("env", self.env)
        with open(self.root / f"{Path(command[0]).name}.out", "w") as log:
            self.daemons.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                 **options))

    def _start_munged(self) -> None:
        if not MUNGE_KEY.is_file():
            subprocess.run(["mungekey", "--create", "--keyfile", str(MUNGE_KEY)], check=True,
                           timeout=30)
            shutil.chown(MUNGE_KEY, "munge", "munge")
            MUNGE_KEY.chmod(0o600)
        MUNGE_RUN.mkdir(mode=0o755, exist_ok=True)
        shutil.chown(MUNGE_RUN, "munge", "munge")
        # In the foreground, as the munge user, so the PID is ours to stop.
        self._spawn("/usr/sbin/munged", "--foreground", user="munge", group="munge",
                    extra_groups=[])
        self._wait(munge_answers, "munged did not answer")

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            crashed = [d.args[0] for d in self.daemons if d.poll() is not None]
            if crashed or time.monotonic() > deadline:
                logs = "\n".join(p.read_text()[-1500:] for p in sorted(self.root.glob("*.log*"))
                                 if p.is_file())
                raise RuntimeError(f"{what} (exited: {crashed or 'none'})\n{logs}")
            time.sleep(0.2)

    def _wait_idle(self) -> None:
        def idle() -> bool:
            result = subprocess.run(["sinfo", "-h", "-o", "%R %T"], capture_output=True,
                                    text=True, env=self.env, timeout=10)
            states = dict(line.split() for line in result.stdout.splitlines())
            return states == {name: "idle" for name in self.partitions}

        self._wait(idle, f"node localhost not idle within {START_TIMEOUT_S:g} s")

    def stop(self) -> None:
        """Cancel what is left of our jobs, then stop our daemons, slurmd first."""
        if self.env:
            subprocess.run(["scancel", "--full", "--user", "root"], env=self.env,
                           capture_output=True, timeout=30)
        for daemon in reversed(self.daemons):
            daemon.terminate()
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(timeout=15)
        if CONF_CACHE_LINK.is_symlink() and self.root in Path(os.readlink(CONF_CACHE_LINK)).parents:
            CONF_CACHE_LINK.unlink()
