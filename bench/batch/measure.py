#!/usr/bin/env python3
"""Measures, against the project's vSphere simulator on loopback, the figures bench/batch/simulate.py
is parameterised by, and writes them to build/bench/batch/measured.json:

  rate_mbps            per-VM export rate of one VM alone (export.run to qcow2, bytes read from
                       the lease over the export's own seconds; median of --runs VMs, each a disk of --size);
  rate_mbps_concurrent the same while --per-host VMs of each of 2 hosts export at once through
                       hypersdk.batch on a local Ray cluster (the CPUs are shared: 2 cores here);
  overhead_s           wall seconds of an export of a 1 MiB VM (connect, snapshot, lease, clean-up);
  dispatch_cold_s      Ray: submit to the task running on a worker, first wave (workers starting);
  dispatch_warm_s      the same for later tasks (workers reused), max over the run.

    bench/batch/measure.py [--size 64M] [--runs 3] [--per-host 3] [--out build/bench/batch/measured.json]
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("HSDK_BUILD_DIR", ROOT / "build" / "default"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import vsphere_sim  # noqa: E402
from vsphere_sim import PASSWORD, USERNAME, Simulator  # noqa: E402
from conftest import write_pattern  # noqa: E402

MiB = 1 << 20


def parse_size(s):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * units[s[-1]] if s[-1] in units else int(s)


def start_sim(workdir):
    """Two standalone hosts of ten VMs each (the simulator's -standalone-host 2 -vm 10)."""
    real = vsphere_sim.subprocess.Popen
    vsphere_sim.subprocess.Popen = lambda args, **kw: real([*args, "-standalone-host", "2", "-vm", "10"], **kw)
    try:
        return Simulator(workdir)
    finally:
        vsphere_sim.subprocess.Popen = real


def python_path(folder):
    """The build's hypersdk with the source tree's batch.py (the build may not copy it)."""
    pkg = folder / "hypersdk"
    pkg.mkdir(parents=True, exist_ok=True)
    for f in (BUILD / "bindings" / "python" / "hypersdk").iterdir():
        if f.name not in ("batch.py", "__pycache__") and not (pkg / f.name).exists():
            (pkg / f.name).symlink_to(f)
    if not (pkg / "batch.py").exists():
        (pkg / "batch.py").symlink_to(ROOT / "bindings" / "python" / "hypersdk" / "batch.py")
    return str(folder)


def plant(sim, work, name, size, seed):
    raw = write_pattern(work / f"{name}.raw", size, seed=seed)
    vmdk = work / f"{name}.vmdk"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, vmdk],
                   check=True)
    sim.upload(f"[LocalDS_0] {name}/disk1.vmdk", vmdk.read_bytes())
    vmdk.unlink()
    return raw


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="64M", help="disk of each measured VM (default 64M)")
    ap.add_argument("--runs", type=int, default=3, help="VMs exported alone (default 3)")
    ap.add_argument("--per-host", type=int, default=3, help="VMs per host at once in the Ray run (default 3)")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench" / "batch" / "measured.json"))
    args = ap.parse_args()
    size = parse_size(args.size)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="batch-measure-", dir=out.parent))
    pp = python_path(out.parent / "pythonpath")
    sys.path.insert(0, pp)
    import hypersdk

    sim = start_sim(work / "sim")
    try:
        os.environ["HSDK_TEST_PASSWORD"] = PASSWORD
        conn = {"url": sim.url, "username": USERNAME, "password_env": "HSDK_TEST_PASSWORD", "ca_file": sim.ca_file}
        per_host = args.per_host * 2  # two waves of per-host VMs per host in the Ray run
        names = [f"DC0_H{h}_VM{i}" for h in range(2) for i in range(per_host)]
        for n, name in enumerate(names):
            plant(sim, work, name, size, seed=500 + n)
        plant(sim, work, "DC0_H1_VM9", MiB, seed=9)

        # 1. One VM alone.
        alone = []
        for name in names[:args.runs]:
            r = hypersdk.run("export.run", vm=f"/DC0/vm/{name}", output_dir=str(work / "alone" / name), format="qcow2",
                             connection=conn)
            alone.append(r["bytes_received"] / r["seconds"] / 1e6)
        # 2. Fixed cost: a 1 MiB VM.
        small = []
        for k in range(3):
            t = time.monotonic()
            hypersdk.run("export.run", vm="/DC0/vm/DC0_H1_VM9", output_dir=str(work / "small" / str(k)), format="qcow2",
                         connection=conn)
            small.append(time.monotonic() - t)
        # 3. A real batch on Ray: --per-host at once on each of the two hosts.
        plan = {"defaults": {"connection": conn, "format": "qcow2", "output_dir": str(work / "ray" / "{name}")},
                "ray": {"task_cpus": 0.1},
                "vms": [{"vm": f"/DC0/vm/{n}", "host": n.rsplit("_", 1)[0]} for n in names]}
        (work / "plan.json").write_text(json.dumps(plan))
        env = dict(os.environ, PYTHONPATH=pp, RAY_USAGE_STATS_ENABLED="0")
        t = time.monotonic()
        p = subprocess.run([sys.executable, "-m", "hypersdk.batch", "run", str(work / "plan.json"),
                            "--max-per-host", str(args.per_host), "--json"], capture_output=True, text=True, env=env,
                           timeout=600)
        wall = time.monotonic() - t
        if p.returncode != 0:
            sys.exit(f"the Ray run failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        events = [json.loads(line) for line in p.stdout.splitlines()]
        done = [e for e in events if e["event"] == "state" and e["state"] == "done"]
        first_wave = 2 * args.per_host
        dispatch = [e["dispatch_seconds"] for e in done]
        submitted = {}
        cold, warm = [], []
        for e in events:  # which submissions were of the first wave
            if e["event"] == "state" and e["state"] == "running":
                submitted[e["vm"]] = len(submitted)
        for e in done:
            (cold if submitted[e["vm"]] < first_wave else warm).append(e["dispatch_seconds"])
        concurrent = [e["bytes"] / e["seconds"] / 1e6 for e in done]
        summary = next(e for e in events if e["event"] == "summary")
    finally:
        sim.stop()
    figures = {
        "measured_at": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores",
        "disk_bytes": size,
        "rate_mbps": round(statistics.median(alone), 1),
        "rate_mbps_all": [round(x, 1) for x in alone],
        "rate_mbps_concurrent": round(statistics.median(concurrent), 1),
        "overhead_s": round(statistics.median(small), 3),
        "dispatch_cold_s": round(max(cold), 3) if cold else None,
        "dispatch_warm_s": round(max(warm), 3) if warm else None,
        "dispatch_all_s": dispatch,
        "ray_run_vms": len(names),
        "ray_run_seconds": summary["seconds"],
        "ray_run_wall_seconds_with_cluster_start": round(wall, 1),
    }
    out.write_text(json.dumps(figures, indent=1) + "\n")
    print(json.dumps(figures, indent=1))
    print(f"written to {out}")
    subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
