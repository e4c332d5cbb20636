#!/usr/bin/env python3
"""Discrete-event simulation of a large hypersdk.batch run, on a simulated clock (nothing sleeps),
with the scheduler the real driver uses (hypersdk.batch.Scheduler, loaded from the source tree):
--vms VMs spread evenly over --hosts ESX hosts and --datastores datastores, at most --max-per-host
exports per host in flight, each host reading at most --host-ceiling-mbps (its exports share it
fairly, each also capped by its own stream rate), failures retried with backoff.

Each export attempt: the driver takes it from the scheduler; Ray dispatch (the first wave while
workers start, later ones on reused workers); a fixed cost without reading (connect, snapshot,
lease); the read at the VM's share of its host's ceiling; the end seen by the driver after
--turnaround-s, which frees the slot in the scheduler and starts the next VM.

Per-VM stream rates are drawn from a log-normal distribution whose median is the per-VM export
rate measured against the project's simulator by bench/batch/measure.py (read from
build/bench/batch/measured.json, else the figures recorded in bench/batch/README.md); the output
says which. Prints:
  - the time until every slot is busy after the start;
  - the worst time from a slot freeing to it being filled (goal <= 60 s): from an attempt's end (or
    from when the next VM of that host became startable, e.g. its retry backoff ending) to the next
    attempt of that host running on a worker;
  - the share of the summed per-host read ceilings kept busy (goal >= 90%): bytes read over the sum
    of each host's ceiling x the time that host had work (start to its last VM's end), and also
    over the whole run (hosts that ran out of work counting as idle), with the best any scheduler
    could reach for that.

    bench/batch/simulate.py [--vms 1000] [--hosts 50] [--max-per-host 4] [--order largest-first] [--seed 1] [--json]
"""
import argparse
import heapq
import importlib.util
import json
import math
import pathlib
import random
import statistics
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MEASURED = ROOT / "build" / "bench" / "batch" / "measured.json"
# What bench/batch/measure.py measured when bench/batch/README.md was written (used when no
# build/bench/batch/measured.json is there).
RECORDED = {"measured_at": "2026-12-07", "rate_mbps": 170.4, "overhead_s": 0.026, "dispatch_cold_s": 1.877,
            "dispatch_warm_s": 0.013, "disk_bytes": 64 << 20, "source": "recorded in bench/batch/README.md"}
GiB = 1 << 30


def load_scheduler():
    path = ROOT / "bindings" / "python" / "hypersdk" / "batch.py"
    spec = importlib.util.spec_from_file_location("hypersdk_batch_sim", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)  # pure Python: no hypersdk, no Ray
    return mod.Scheduler


def water_fill(caps, ceiling):
    """Fair shares of `ceiling` among streams each capped at caps[i] (max-min fairness)."""
    order = sorted(range(len(caps)), key=lambda i: caps[i])
    rates = [0.0] * len(caps)
    left, n = ceiling, len(caps)
    for k, i in enumerate(order):
        share = left / (n - k)
        rates[i] = min(caps[i], share)
        left -= rates[i]
    return rates


class Reader:
    __slots__ = ("key", "cap", "left", "fail_left", "rate")

    def __init__(self, key, cap, left, fail_left):
        self.key, self.cap, self.left, self.fail_left, self.rate = key, cap, left, fail_left, 0.0


def simulate(a, figures):
    Scheduler = load_scheduler()
    rng = random.Random(a.seed)
    hosts = [f"esx{h:02d}" for h in range(a.hosts)]
    stores = [f"ds{d:02d}" for d in range(a.datastores)]
    rate = figures["rate_mbps"] * 1e6
    ceiling = a.host_ceiling_mbps * 1e6 if a.host_ceiling_mbps else a.ceiling_factor * rate
    vms = {}
    for i in range(a.vms):
        size = min(max(rng.lognormvariate(math.log(a.size_median_gib * GiB), a.size_sigma), a.size_min_gib * GiB),
                   a.size_max_gib * GiB)
        vms[f"vm{i:04d}"] = {"host": hosts[i % a.hosts], "ds": stores[rng.randrange(a.datastores)], "size": size,
                             "cap": rate * rng.lognormvariate(0, a.rate_sigma)}
    sched = Scheduler(max_per_host=a.max_per_host, max_per_datastore=a.max_per_datastore, retries=a.retries,
                      backoff=a.backoff_s, backoff_factor=2.0, backoff_max=a.backoff_max_s)
    for key, vm in vms.items():
        sched.add(key, vm["host"], [vm["ds"]], priority=-vm["size"] if a.order == "largest-first" else 0)

    vms_by_host = {h: [] for h in hosts}
    for key, vm in vms.items():
        vms_by_host[vm["host"]].append(key)
    per_host = {h: len(keys) for h, keys in vms_by_host.items()}
    want = {h: min(a.max_per_host, per_host[h]) for h in hosts}
    total_slots = sum(want.values())

    heap, seq = [], [0]

    def push(t, kind, data):
        seq[0] += 1
        heapq.heappush(heap, (t, seq[0], kind, data))

    readers = {h: [] for h in hosts}
    running = {h: 0 for h in hosts}  # tasks running on a worker (dispatched, not yet ended)
    free_since = {h: [] for h in hosts}  # refills waiting: when each freed slot of the host became free
    eligible_at = {k: 0.0 for k in vms}  # when the VM could start (a retry: when its backoff ends)
    outcome = {}  # key -> (ok, time) of the attempt that just ended, until the driver sees it
    read_bytes = {h: 0.0 for h in hosts}
    host_end = {h: 0.0 for h in hosts}
    submitted = [0]
    gaps, all_busy_at = [], [None]
    wakes = set()
    attempts_total = [0]

    def rerate(h):
        rs = readers[h]
        for r, v in zip(rs, water_fill([r.cap for r in rs], ceiling)):
            r.rate = v

    def drive(now):
        for key in sched.take(now):
            d = figures["dispatch_cold_s"] if submitted[0] < total_slots else figures["dispatch_warm_s"]
            submitted[0] += 1
            attempts_total[0] += 1
            push(now + d, "running", key)
        w = sched.wake_time(now)
        if w is not None and w not in wakes:
            wakes.add(w)
            push(w, "wake", None)

    drive(0.0)
    now = 0.0
    while True:
        # The next read to end at the current rates, against the next timed event.
        t_read, who = math.inf, None
        for h, rs in readers.items():
            for r in rs:
                if r.rate > 0:
                    t = now + (r.left - r.fail_left) / r.rate
                    if t < t_read:
                        t_read, who = t, (h, r)
        t_event = heap[0][0] if heap else math.inf
        if t_read == math.inf and t_event == math.inf:
            break
        t = max(now, min(t_read, t_event))
        dt = t - now
        if dt > 0:
            for h, rs in readers.items():
                for r in rs:
                    r.left -= r.rate * dt
                    read_bytes[h] += r.rate * dt
        now = t
        if t_read <= t_event:
            h, r = who
            readers[h].remove(r)
            rerate(h)
            ok = r.fail_left <= 0
            outcome[r.key] = ok
            running[h] -= 1
            host_end[h] = now
            free_since[h].append(now)
            push(now + a.turnaround_s, "seen", r.key)
            continue
        _, _, kind, key = heapq.heappop(heap)
        if kind == "running":
            vm = vms[key]
            h = vm["host"]
            running[h] += 1
            if free_since[h]:
                freed = free_since[h].pop(0)
                gaps.append(now - max(freed, eligible_at[key]))
            if all_busy_at[0] is None and all(running[x] >= want[x] for x in hosts):
                all_busy_at[0] = now
            push(now + a.overhead_s, "read", key)
        elif kind == "read":
            vm = vms[key]
            fails = rng.random() < a.failure_rate
            fail_left = vm["size"] * rng.random() if fails else 0.0
            readers[vm["host"]].append(Reader(key, vm["cap"], vm["size"], fail_left))
            rerate(vm["host"])
        elif kind == "seen":
            h = vms[key]["host"]
            verdict = sched.finish(key, now, outcome.pop(key), error="simulated failure")
            if verdict == "retry":
                eligible_at[key] = now + sched.backoff_for(sched.attempts(key))
            if not any(sched.state(k) in ("queued", "waiting") and vms[k]["host"] == h for k in vms_by_host[h]):
                free_since[h].clear()  # nothing left for this host: its free slots are not refills
            drive(now)
        elif kind == "wake":
            drive(now)
    makespan = now
    total_read = sum(read_bytes.values())
    per_host_run = total_read / sum(ceiling * host_end[h] for h in hosts)
    whole_run = total_read / (ceiling * len(hosts) * makespan)
    best_possible = total_read / (ceiling * len(hosts) * max(read_bytes[h] / ceiling for h in hosts))
    states = [sched.state(k) for k in vms]
    return {
        "vms": a.vms, "hosts": a.hosts, "datastores": a.datastores, "max_per_host": a.max_per_host,
        "max_per_datastore": a.max_per_datastore, "order": a.order,
        "rate_mbps_median": figures["rate_mbps"], "host_ceiling_mbps": round(ceiling / 1e6, 1),
        "total_tb": round(sum(v["size"] for v in vms.values()) / 1e12, 2),
        "makespan_s": round(makespan, 1), "done": states.count("done"), "failed": states.count("failed"),
        "attempts": attempts_total[0],
        "all_slots_busy_s": round(all_busy_at[0], 3) if all_busy_at[0] is not None else None,
        "worst_refill_s": round(max(gaps), 3) if gaps else None,
        "p99_refill_s": round(statistics.quantiles(gaps, n=100)[98], 3) if len(gaps) >= 100 else None,
        "refills": len(gaps),
        "busy_share_per_host_run": round(per_host_run, 4),
        "busy_share_whole_run": round(whole_run, 4),
        "busy_share_whole_run_best_possible": round(best_possible, 4),
        "peak_per_host": max(sched.peak_per_host.values()),
    }



def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vms", type=int, default=1000)
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--datastores", type=int, default=25)
    ap.add_argument("--max-per-host", type=int, default=4)
    ap.add_argument("--max-per-datastore", type=int, default=0, help="0: no limit (default)")
    ap.add_argument("--order", choices=["plan", "largest-first"], default="largest-first")
    ap.add_argument("--rate-mbps", type=float, help="median per-VM rate (default: the measured one)")
    ap.add_argument("--rate-sigma", type=float, default=0.3, help="log-normal sigma of per-VM rates (default 0.3)")
    ap.add_argument("--host-ceiling-mbps", type=float, help="per-host read ceiling (default: --ceiling-factor x the median rate)")
    ap.add_argument("--ceiling-factor", type=float, default=2.0)
    ap.add_argument("--size-median-gib", type=float, default=40.0)
    ap.add_argument("--size-sigma", type=float, default=0.8)
    ap.add_argument("--size-min-gib", type=float, default=2.0)
    ap.add_argument("--size-max-gib", type=float, default=1024.0)
    ap.add_argument("--overhead-s", type=float, default=30.0,
                    help="fixed cost per attempt without reading (default 30 s, assumed for a real vCenter)")
    ap.add_argument("--dispatch-cold-s", type=float, help="Ray dispatch, first wave (default: measured)")
    ap.add_argument("--dispatch-warm-s", type=float, help="Ray dispatch, reused workers (default: measured)")
    ap.add_argument("--turnaround-s", type=float, default=0.25, help="attempt end to the driver seeing it (default 0.25)")
    ap.add_argument("--failure-rate", type=float, default=0.03)
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--backoff-s", type=float, default=60.0)
    ap.add_argument("--backoff-max-s", type=float, default=600.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--measured", default=str(MEASURED), help="measure.py's output (default build/bench/batch/measured.json)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    path = pathlib.Path(a.measured)
    if path.is_file():
        figures = json.loads(path.read_text())
        figures["source"] = f"measured by bench/batch/measure.py, {path}"
    else:
        figures = dict(RECORDED)
    source = {"rate": figures["source"], "dispatch": figures["source"]}
    if a.rate_mbps:
        figures["rate_mbps"], source["rate"] = a.rate_mbps, "given (--rate-mbps)"
    if a.dispatch_cold_s is not None:
        figures["dispatch_cold_s"], source["dispatch"] = a.dispatch_cold_s, "given"
    if a.dispatch_warm_s is not None:
        figures["dispatch_warm_s"], source["dispatch"] = a.dispatch_warm_s, "given"

    t0 = time.monotonic()
    r = simulate(a, figures)
    r["cpu_seconds"] = round(time.monotonic() - t0, 2)
    r["sources"] = source
    if a.json:
        print(json.dumps(r, indent=1))
        return
    ds = f"at most {a.max_per_datastore} per datastore" if a.max_per_datastore else "no datastore limit"
    print(f"bench/batch simulation: {a.vms} VMs on {a.hosts} hosts, {a.datastores} datastores; at most {a.max_per_host} "
          f"per host, {ds}; order {a.order}; seed {a.seed}")
    print(f"  per-VM stream rate: log-normal, median {figures['rate_mbps']:.1f} MB/s, sigma {a.rate_sigma} "
          f"(the median: {source['rate']}; export.run of a {figures.get('disk_bytes', 0) >> 20} MiB VM alone, "
          f"{figures.get('measured_at', '?')})")
    print(f"  per-host read ceiling: {r['host_ceiling_mbps']:.1f} MB/s"
          + ("" if a.host_ceiling_mbps else f" ({a.ceiling_factor} x the median per-VM rate)"))
    print(f"  VM sizes (bytes read): log-normal, median {a.size_median_gib} GiB, sigma {a.size_sigma}, "
          f"{a.size_min_gib}-{a.size_max_gib} GiB; {r['total_tb']} TB in all")
    print(f"  fixed cost per attempt: {a.overhead_s} s without reading (assumed; against the simulator it measured "
          f"{figures.get('overhead_s', '?')} s)")
    print(f"  Ray dispatch: {figures['dispatch_cold_s']} s for the first wave, {figures['dispatch_warm_s']} s after "
          f"({source['dispatch']}); the driver sees an end {a.turnaround_s} s later")
    print(f"  failures: {a.failure_rate:.0%} of attempts, at a random point; {a.retries} retries, backoff "
          f"{a.backoff_s} s doubling")
    print("results (simulated time):")
    print(f"  run: {r['makespan_s'] / 3600:.2f} h; {r['done']} done, {r['failed']} failed, {r['attempts']} attempts; "
          f"at most {r['peak_per_host']} in flight on a host")
    if r["all_slots_busy_s"] is None:
        print("  time until every slot is busy after the start: never (the datastore limits hold fewer exports than "
              "the host slots)")
    else:
        print(f"  time until every slot is busy after the start: {r['all_slots_busy_s']} s")
    print(f"  worst time from a slot freeing to it being filled: {r['worst_refill_s']} s (p99 {r['p99_refill_s']} s, "
          f"{r['refills']} refills; goal <= 60 s)")
    print(f"  share of the summed per-host read ceilings kept busy: {r['busy_share_per_host_run']:.1%} over each host's "
          f"run, start to its last VM's end (goal >= 90%)")
    print(f"    over the whole run, hosts out of work counting as idle: {r['busy_share_whole_run']:.1%} "
          f"(the best any scheduler could do with this placement: {r['busy_share_whole_run_best_possible']:.1%})")
    print(f"  simulated in {r['cpu_seconds']} s")


if __name__ == "__main__":
    main()
