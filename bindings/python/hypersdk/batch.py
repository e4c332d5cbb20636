"""hypersdk.batch: migrate many VMs at once, one Ray task per VM, with limits per source host and
per datastore, retries with backoff, progress per VM and a result table (docs/batch.md).

    python3 -m hypersdk.batch run PLAN [--ray-address ADDR] [--max-per-host N]
                                       [--max-per-datastore N] [--retries N] [--json]

A plan is a YAML or JSON document: plan-level defaults and a list of VMs, each exported with the
`export.run` operation (or warm-migrated with `migrate.warm` when it says "warm": true). Passwords are
never written in a plan: it names the environment variables holding them (password_env).

Which VM may start, given what is in flight per host and per datastore, the queue order and the
retry backoff, is decided by `Scheduler`, a plain class with no Ray in it (unit tests and
bench/batch's simulation use it as it is). Ray is imported only when a plan is run, and hypersdk's
native module only where an operation runs, so this file also loads on its own (bench/batch).
"""
from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import os
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, TextIO, Tuple

__all__ = ["Scheduler", "Plan", "VMSpec", "PlanError", "load_plan", "resolve_placement", "migrate_vm", "run", "main",
           "UNKNOWN"]

UNKNOWN = "unknown"
COLD_OPERATION = "export.run"
WARM_OPERATION = "migrate.warm"

# Failures another attempt will not change: a request the operation refuses, a VM that is not
# there, a refused login or permission, an output that is in the way, a full disk, a cancel. Everything else
# (network, TLS hiccups, remote faults, timeouts, I/O, checksums, a worker that died) is retried.
PERMANENT_ERRORS = frozenset({
    "invalid_argument", "not_found", "unsupported", "auth_failed", "permission_denied", "conflict", "no_space", "cancelled",
})

# Keys that would put a secret in the plan itself. The plan names an environment variable instead
# (password_env, passphrase_env, ...), which the process running the export reads.
_SECRET_KEYS = frozenset({
    "password", "passphrase", "secret", "token", "api_key", "secret_access_key", "session_token",
    "client_secret", "account_key", "sas_token",
})


# ---- scheduling (no Ray) --------------------------------------------------------------------

@dataclass
class _Item:
    key: str
    host: str
    datastores: Tuple[str, ...]
    priority: Tuple[float, int]
    attempts: int = 0
    state: str = "queued"  # queued, waiting (backoff before a retry), running, done, failed
    not_before: float = 0.0
    errors: List[str] = field(default_factory=list)


class Scheduler:
    """Decides which VMs may start: at most `max_per_host` in flight per source host and
    `max_per_datastore` per datastore (None or 0: no limit), in queue order (priority, then the
    order added), a VM that failed coming back after a backoff (`backoff` seconds, times
    `backoff_factor` for each further failure, at most `backoff_max`) until it has had
    `retries` + 1 attempts. A VM counts against its host and every datastore it reads from from
    `take` until `finish`. A VM blocked by a full host or datastore does not hold up the VMs behind
    it. The clock is the caller's (`now` arguments), so a simulation can run it on simulated time.

        s = Scheduler(max_per_host=3, retries=2)
        s.add("web1", host="esx1", datastores=["ds1"])
        for key in s.take(now): ...start it...
        s.finish("web1", now, ok=False, error="...")   # -> "retry", "done" or "failed"
    """

    def __init__(self, max_per_host: Optional[int] = None, max_per_datastore: Optional[int] = None,
                 retries: int = 0, backoff: float = 10.0, backoff_factor: float = 2.0, backoff_max: float = 300.0):
        for name, value in (("max_per_host", max_per_host), ("max_per_datastore", max_per_datastore)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a whole number >= 0 (0: no limit), not {value!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a whole number >= 0, not {retries!r}")
        if backoff < 0 or backoff_factor < 1 or backoff_max < 0:
            raise ValueError("backoff and backoff_max must be >= 0 and backoff_factor >= 1")
        self.max_per_host = max_per_host or None
        self.max_per_datastore = max_per_datastore or None
        self.retries = retries
        self.backoff = float(backoff)
        self.backoff_factor = float(backoff_factor)
        self.backoff_max = float(backoff_max)
        self._items: Dict[str, _Item] = {}
        self._queue: List[Tuple[Tuple[float, int], str]] = []  # (priority, key), sorted
        self._host_running: Dict[str, int] = {}
        self._ds_running: Dict[str, int] = {}
        self.peak_per_host: Dict[str, int] = {}
        self.peak_per_datastore: Dict[str, int] = {}

    # -- building the queue
    def add(self, key: str, host: Optional[str] = None, datastores: Iterable[str] = (), priority: float = 0.0) -> None:
        """Queues a VM. Lower priority values start first; equal ones in the order added. A VM
        with no host (or no datastore) counts against the one bucket named "unknown"."""
        if key in self._items:
            raise ValueError(f"{key!r} is already queued")
        ds = tuple(sorted({d for d in datastores if d})) or (UNKNOWN,)
        item = _Item(key=key, host=host or UNKNOWN, datastores=ds, priority=(float(priority), len(self._items)))
        self._items[key] = item
        bisect.insort(self._queue, (item.priority, key))

    # -- decisions
    def backoff_for(self, failed_attempts: int) -> float:
        """Seconds to wait after the `failed_attempts`-th failure before the next attempt."""
        return min(self.backoff_max, self.backoff * self.backoff_factor ** max(0, failed_attempts - 1))

    def _fits(self, item: _Item) -> bool:
        if self.max_per_host and self._host_running.get(item.host, 0) >= self.max_per_host:
            return False
        if self.max_per_datastore and any(self._ds_running.get(d, 0) >= self.max_per_datastore for d in item.datastores):
            return False
        return True

    def take(self, now: float) -> List[str]:
        """Marks as running, and returns in queue order, every queued VM that may start at `now`."""
        started: List[str] = []
        kept: List[Tuple[Tuple[float, int], str]] = []
        for entry in self._queue:
            item = self._items[entry[1]]
            if item.not_before > now or not self._fits(item):
                kept.append(entry)
                continue
            item.state = "running"
            item.attempts += 1
            self._host_running[item.host] = n = self._host_running.get(item.host, 0) + 1
            self.peak_per_host[item.host] = max(self.peak_per_host.get(item.host, 0), n)
            for d in item.datastores:
                self._ds_running[d] = n = self._ds_running.get(d, 0) + 1
                self.peak_per_datastore[d] = max(self.peak_per_datastore.get(d, 0), n)
            started.append(item.key)
        self._queue = kept
        return started

    def finish(self, key: str, now: float, ok: bool, error: Optional[str] = None, retryable: bool = True) -> str:
        """Ends the running attempt of `key`: "done", "retry" (queued again after the backoff) or
        "failed" (no attempts left, or `retryable` False)."""
        item = self._items[key]
        if item.state != "running":
            raise ValueError(f"{key!r} is not running (it is {item.state})")
        self._host_running[item.host] -= 1
        for d in item.datastores:
            self._ds_running[d] -= 1
        if ok:
            item.state = "done"
            return "done"
        item.errors.append(error or "failed")
        if retryable and item.attempts <= self.retries:
            item.state = "waiting"
            item.not_before = now + self.backoff_for(item.attempts)
            bisect.insort(self._queue, (item.priority, key))
            return "retry"
        item.state = "failed"
        return "failed"

    def fail_queued(self, reason: str) -> List[str]:
        """Gives up on every VM not started (an interrupted run); returns their keys."""
        keys = [k for _, k in self._queue]
        for k in keys:
            self._items[k].state = "failed"
            self._items[k].errors.append(reason)
        self._queue = []
        return keys

    # -- what it knows
    def wake_time(self, now: float) -> Optional[float]:
        """The earliest time after `now` when a VM waiting out its backoff may start (None: none
        is). A VM whose backoff is over but whose host or datastore is full starts at a `take`
        after a `finish` frees room, like any queued VM."""
        times = [self._items[k].not_before for _, k in self._queue if self._items[k].not_before > now]
        return min(times) if times else None

    @property
    def finished(self) -> bool:
        return not self._queue and not any(n for n in self._host_running.values())

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> int:
        return sum(self._host_running.values())

    def running_per_host(self) -> Dict[str, int]:
        return {h: n for h, n in self._host_running.items() if n}

    def running_per_datastore(self) -> Dict[str, int]:
        return {d: n for d, n in self._ds_running.items() if n}

    def state(self, key: str) -> str:
        return self._items[key].state

    def attempts(self, key: str) -> int:
        return self._items[key].attempts

    def errors(self, key: str) -> List[str]:
        return list(self._items[key].errors)

    def host(self, key: str) -> str:
        return self._items[key].host

    def datastores(self, key: str) -> Tuple[str, ...]:
        return self._items[key].datastores


# ---- the plan ---------------------------------------------------------------------------------

class PlanError(ValueError):
    """A plan that cannot run (its message names the entry and key, never a secret's value)."""


_VM_KEYS = {"vm", "name", "provider", "connection", "config", "host", "datastore", "format", "output_dir", "warm", "params"}
_PLAN_KEYS = {"defaults", "vms", "max_per_host", "max_per_datastore", "retries", "retry_backoff", "retry_backoff_max",
              "order", "ray"}
_RAY_KEYS = {"address", "task_cpus", "num_cpus", "object_store_memory"}


@dataclass
class VMSpec:
    """One VM of a plan, its defaults applied."""
    index: int
    key: str  # unique within the plan: the name, or name@index when names repeat
    vm: str
    name: str
    provider: str = "vsphere"
    connection: Dict[str, Any] = field(default_factory=dict)
    host: Optional[str] = None
    datastores: List[str] = field(default_factory=list)
    format: Optional[str] = None
    output_dir: Optional[str] = None
    warm: bool = False
    params: Dict[str, Any] = field(default_factory=dict)
    size_bytes: Optional[int] = None

    def request(self) -> Dict[str, Any]:
        """The operation's request: never a password, only the names of variables holding them."""
        req: Dict[str, Any] = dict(self.params)
        req["vm"] = self.vm
        req["provider"] = self.provider
        req["out" if self.warm else "output_dir"] = self.output_dir  # migrate.warm names it "out"
        if self.format:
            req["format"] = self.format
        if self.connection:
            # vsphere's export takes its connection as "connection"; other providers a "config".
            req["connection" if self.provider == "vsphere" else "config"] = dict(self.connection)
        return req

    @property
    def operation(self) -> str:
        return WARM_OPERATION if self.warm else COLD_OPERATION


@dataclass
class Plan:
    vms: List[VMSpec]
    max_per_host: Optional[int] = None
    max_per_datastore: Optional[int] = None
    retries: int = 2
    retry_backoff: float = 10.0
    retry_backoff_max: float = 300.0
    order: str = "plan"
    ray: Dict[str, Any] = field(default_factory=dict)

    def secret_env_names(self) -> List[str]:
        """The environment variables the plan names for secrets (password_env, passphrase_env, ...)."""
        names = set()

        def walk(obj: Any) -> None:
            if isinstance(obj, dict):
                for k, v in obj.items():
                    if isinstance(k, str) and k.endswith("_env") and isinstance(v, str):
                        names.add(v)
                    walk(v)
            elif isinstance(obj, list):
                for v in obj:
                    walk(v)
        for vm in self.vms:
            walk(vm.connection)
            walk(vm.params)
        return sorted(names)


def _check_no_secrets(obj: Any, where: str) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(k, str) and k.lower() in _SECRET_KEYS:
                raise PlanError(f"{where}.{k}: secrets are never written in a plan; name the environment variable "
                                f"holding it instead ({k}_env)")
            if isinstance(k, str) and k == "url" and isinstance(v, str) and re.match(r"^[a-z][a-z0-9+.-]*://[^/@]*:[^/@]*@", v, re.I):
                raise PlanError(f"{where}.url carries a password (user:password@); name the environment variable "
                                f"holding it instead (password_env)")
            _check_no_secrets(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_no_secrets(v, f"{where}[{i}]")


def _read_document(source: Any) -> Any:
    if isinstance(source, (dict, list)):
        return source
    path = os.fspath(source)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise PlanError(f"{path}: {e.strerror or e}") from None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        import yaml  # PyYAML
    except ImportError:
        raise PlanError(f"{path} is not JSON, and reading YAML needs PyYAML: pip install pyyaml") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PlanError(f"{path}: not valid YAML or JSON: {e}") from None


def _whole(value: Any, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PlanError(f"{where} must be a whole number >= {minimum}, not {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise PlanError(f"{where} must be a number >= 0, not {value!r}")
    return float(value)


def _expand(template: str, spec: VMSpec, where: str) -> str:
    values = {"name": spec.name, "index": spec.index, "host": spec.host or UNKNOWN,
              "datastore": spec.datastores[0] if spec.datastores else UNKNOWN}
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as e:
        raise PlanError(f"{where}: {template!r}: placeholders are {{name}}, {{index}}, {{host}}, {{datastore}} ({e})") from None


def load_plan(source: Any) -> Plan:
    """Reads a plan (a path to YAML or JSON, or the document itself: a dict with "vms" and
    optional "defaults", or a bare list of VMs) and applies its defaults."""
    doc = _read_document(source)
    if isinstance(doc, list):
        doc = {"vms": doc}
    if not isinstance(doc, dict):
        raise PlanError("a plan is an object with a \"vms\" list (or a bare list of VMs)")
    unknown = set(doc) - _PLAN_KEYS
    if unknown:
        raise PlanError(f"unknown plan key(s) {sorted(unknown)}; a plan has {sorted(_PLAN_KEYS)}")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise PlanError("defaults must be an object")
    bad = set(defaults) - (_VM_KEYS - {"vm", "name"})
    if bad:
        raise PlanError(f"defaults: unknown key(s) {sorted(bad)}")
    _check_no_secrets(defaults, "defaults")
    entries = doc.get("vms")
    if not isinstance(entries, list) or not entries:
        raise PlanError("the plan's \"vms\" must be a non-empty list")

    specs: List[VMSpec] = []
    for i, entry in enumerate(entries):
        where = f"vms[{i}]"
        if isinstance(entry, str):
            entry = {"vm": entry}
        if not isinstance(entry, dict):
            raise PlanError(f"{where} must be an object or a VM path")
        bad = set(entry) - _VM_KEYS
        if bad:
            raise PlanError(f"{where}: unknown key(s) {sorted(bad)}; a VM has {sorted(_VM_KEYS)}")
        _check_no_secrets(entry, where)
        vm = entry.get("vm")
        if not isinstance(vm, str) or not vm:
            raise PlanError(f"{where}.vm: the VM's inventory path, name or id is required")

        def pick(key: str, default: Any = None) -> Any:
            return entry[key] if key in entry else defaults.get(key, default)

        def merged(*keys: str) -> Dict[str, Any]:
            out: Dict[str, Any] = {}
            for source in (defaults, entry):
                for k in keys:
                    value = source.get(k)
                    if value is None:
                        continue
                    if not isinstance(value, dict):
                        raise PlanError(f"{where}.{k} must be an object")
                    out.update(value)
            return out

        datastore = pick("datastore")
        if datastore is None:
            datastores: List[str] = []
        elif isinstance(datastore, str):
            datastores = [datastore]
        elif isinstance(datastore, list) and all(isinstance(d, str) for d in datastore):
            datastores = list(datastore)
        else:
            raise PlanError(f"{where}.datastore must be a name or a list of names")
        host = pick("host")
        if host is not None and not isinstance(host, str):
            raise PlanError(f"{where}.host must be a name")
        warm = pick("warm", False)
        if not isinstance(warm, bool):
            raise PlanError(f"{where}.warm must be true or false")
        spec = VMSpec(
            index=i, key="", vm=vm, name=str(entry.get("name") or vm.rstrip("/").rsplit("/", 1)[-1] or vm),
            provider=str(pick("provider", "vsphere")), connection=merged("config", "connection"),
            host=host or None, datastores=datastores, format=pick("format"), warm=warm, params=merged("params"),
        )
        out = pick("output_dir")
        if not isinstance(out, str) or not out:
            raise PlanError(f"{where}.output_dir: where the VM goes is required (here or in defaults; "
                            "{name} is replaced by the VM's name)")
        spec.output_dir = out  # expanded once host and datastore are known
        specs.append(spec)

    names = [s.name for s in specs]
    for s in specs:
        s.key = s.name if names.count(s.name) == 1 else f"{s.name}@{s.index}"

    ray_settings = doc.get("ray") or {}
    if not isinstance(ray_settings, dict) or set(ray_settings) - _RAY_KEYS:
        raise PlanError(f"ray must be an object with {sorted(_RAY_KEYS)}")
    order = doc.get("order", "plan")
    if order not in ("plan", "largest-first"):
        raise PlanError("order must be \"plan\" or \"largest-first\"")
    plan = Plan(vms=specs, order=order, ray=dict(ray_settings))
    if doc.get("max_per_host") is not None:
        plan.max_per_host = _whole(doc["max_per_host"], "max_per_host")
    if doc.get("max_per_datastore") is not None:
        plan.max_per_datastore = _whole(doc["max_per_datastore"], "max_per_datastore")
    if doc.get("retries") is not None:
        plan.retries = _whole(doc["retries"], "retries")
    if doc.get("retry_backoff") is not None:
        plan.retry_backoff = _number(doc["retry_backoff"], "retry_backoff")
    if doc.get("retry_backoff_max") is not None:
        plan.retry_backoff_max = _number(doc["retry_backoff_max"], "retry_backoff_max")
    return plan


def _description_host(vm: Dict[str, Any]) -> Optional[str]:
    v = vm.get("host")  # vms.list: the host each VM runs on, where the provider says
    return v if isinstance(v, str) and v else None


def resolve_placement(plan: Plan, need_sizes: bool = False,
                      lister: Optional[Callable[[str, Dict[str, Any]], List[Dict[str, Any]]]] = None,
                      warn: Callable[[str], None] = lambda msg: None) -> None:
    """Fills in each VM's host and datastores where the plan leaves them out (and its size, for
    largest-first), from one `vms.list` per provider connection: datastores from the VM's disks,
    the host each VM runs on (vSphere reports it); what stays unknown is "unknown". Then expands
    the output_dir templates."""
    wanted = [s for s in plan.vms if s.host is None or not s.datastores or need_sizes]
    groups: Dict[str, List[VMSpec]] = {}
    for s in wanted:
        groups.setdefault(json.dumps([s.provider, s.connection], sort_keys=True), []).append(s)
    if lister is None:
        def lister(provider: str, config: Dict[str, Any]) -> List[Dict[str, Any]]:
            import hypersdk
            req: Dict[str, Any] = {"provider": provider}
            if config:
                req["config"] = config
            run_op: Any = hypersdk.run  # (the stubs type each operation's literal request)
            vms: List[Dict[str, Any]] = run_op("vms.list", req)["vms"]
            return vms
    for group in groups.values():
        try:
            found = lister(group[0].provider, group[0].connection)
        except Exception as e:  # the lookup only helps the limits: the exports report real failures
            warn(f"could not list the VMs of {group[0].provider} to find hosts and datastores "
                 f"({getattr(e, 'code', type(e).__name__)}: {e}); they count as \"{UNKNOWN}\"")
            continue
        index: Dict[str, Dict[str, Any]] = {}
        for vm in found:
            for k in ("inventory_path", "name", "id"):
                v = vm.get(k)
                if isinstance(v, str) and v:
                    index.setdefault(v, vm)
        for s in group:
            described = index.get(s.vm)
            if described is None:
                continue
            vm = described
            if s.host is None:
                s.host = _description_host(vm)
            disks = [d for d in vm.get("disks") or [] if isinstance(d, dict)]
            if not s.datastores:
                s.datastores = sorted({d["datastore"] for d in disks if d.get("datastore")})
            if s.size_bytes is None:
                s.size_bytes = sum(int(d.get("capacity_bytes") or 0) for d in disks)
    for s in plan.vms:
        s.output_dir = _expand(s.output_dir or "", s, f"vms[{s.index}].output_dir")


# ---- one VM, in a Ray task (or anywhere) ------------------------------------------------------

def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    return text


def migrate_vm(request: Dict[str, Any], warm: bool = False, report: Optional[Callable[[Dict[str, Any]], None]] = None,
               report_interval: float = 1.0, should_stop: Optional[Callable[[], bool]] = None,
               stop_interval: float = 2.0) -> Dict[str, Any]:
    """Runs one VM's export (export.run), or its warm migration (migrate.warm, step run: precopy
    rounds then the cutover), in this process and returns a plain outcome, never raising:
    {"ok": True, "operation", "bytes", "files", "seconds", "method"} or {"ok": False, "operation",
    "code", "error", "retryable", "seconds", "bytes"}. A warm migration that stopped before its
    cutover (no convergence within max_rounds) is a retryable failure: the next attempt resumes from
    its state document. report(event) gets {"phase", "bytes_done", "bytes_total"} on each phase
    change and at most every report_interval seconds otherwise. should_stop() is asked every
    stop_interval seconds; True cancels the operation (as does KeyboardInterrupt), which cleans up."""
    started = time.monotonic()
    secrets = [os.environ[v] for v in _env_names(request) if os.environ.get(v)]
    op = WARM_OPERATION if warm else COLD_OPERATION
    last: Dict[str, Any] = {"phase": None, "at": 0.0, "bytes_done": 0}

    def failed(code: str, message: str) -> Dict[str, Any]:
        return {"ok": False, "operation": op, "code": code, "error": _scrub(message, secrets),
                "retryable": code not in PERMANENT_ERRORS, "seconds": time.monotonic() - started,
                "bytes": last["bytes_done"]}

    for name in _env_names(request, only_passwords=True):
        if not os.environ.get(name):
            return failed("invalid_argument", f"environment variable {name} (named by the plan for a secret) is not set "
                                              f"on {socket.gethostname()}")

    def progress(event: Dict[str, Any]) -> None:
        try:
            last["bytes_done"] = int(event.get("bytes_done") or 0)
            now = time.monotonic()
            phase = event.get("phase")
            if report and (phase != last["phase"] or now - last["at"] >= report_interval):
                last["phase"], last["at"] = phase, now
                report({"phase": phase, "bytes_done": event.get("bytes_done", 0),
                        "bytes_total": event.get("bytes_total", 0)})
        except Exception:  # a lost progress line must never fail the export
            pass

    try:
        import hypersdk
        start: Any = hypersdk.start  # (the stubs type each operation's literal request)
        job = start(op, request, progress=progress)
        asked = time.monotonic()
        while True:
            try:
                result = job.wait(0.5)  # in steps, so a stop request or an interrupt is seen
                break
            except TimeoutError as e:
                if type(e) is not TimeoutError:  # hypersdk.TimeoutError: the operation's own failure
                    raise
                stop = False
                if should_stop is not None and time.monotonic() - asked >= stop_interval:
                    asked = time.monotonic()
                    try:
                        stop = bool(should_stop())
                    except Exception:
                        stop = False
            except KeyboardInterrupt:
                stop = True
            if stop:
                job.cancel()  # the operation stops and cleans up (lease aborted, snapshot removed)
                try:
                    job.wait()
                except BaseException:
                    pass
                return failed("cancelled", "interrupted: the operation was cancelled")
    except Exception as e:
        return failed(str(getattr(e, "code", "") or type(e).__name__), str(e))
    files = [str(f) for f in result.get("files") or []]
    if warm:
        last["bytes_done"] = sum(int(r.get("bytes_read") or 0) for r in result.get("rounds") or [])
        if result.get("phase") != "done":
            rounds = len(result.get("rounds") or [])
            return failed("not_converged", f"the warm migration stopped in phase {result.get('phase')} after {rounds} "
                                           f"round(s) (predicted downtime {result.get('predicted_downtime_seconds')} s)")
    nbytes = result.get("bytes_received")
    if not isinstance(nbytes, int):
        nbytes = last["bytes_done"]
    return {"ok": True, "operation": op, "bytes": nbytes, "files": files, "seconds": time.monotonic() - started,
            "method": result.get("method", "")}


def _env_names(request: Dict[str, Any], only_passwords: bool = False) -> List[str]:
    names = []
    for section in (request.get("connection"), request.get("config"), request):
        if isinstance(section, dict):
            for k, v in section.items():
                if isinstance(k, str) and k.endswith("_env") and isinstance(v, str) and v:
                    if not only_passwords or k in ("password_env", "passphrase_env"):
                        names.append(v)
    return names


def _vm_task(key: str, attempt: int, request: Dict[str, Any], warm: bool, sink: Any) -> Dict[str, Any]:
    """The Ray task of one attempt: reports to the driver's progress sink and returns the outcome."""
    started_at = time.time()
    where = {"node": socket.gethostname(), "pid": os.getpid()}

    def report(event: Dict[str, Any]) -> None:
        sink.post.remote(dict(event, key=key, attempt=attempt, **where))
    def should_stop() -> bool:
        import ray
        return bool(ray.get(sink.stopping.remote(), timeout=10))
    report({"phase": "started", "bytes_done": 0, "bytes_total": 0})
    return dict(migrate_vm(request, warm=warm, report=report, should_stop=should_stop), started_at=started_at, **where)


class _ProgressSink:
    """A Ray actor the tasks post their progress events to; the driver drains it. It also carries
    the driver's stop request to the tasks (they ask every few seconds)."""

    def __init__(self) -> None:
        self._events: List[Dict[str, Any]] = []
        self._stop = False

    def stop(self) -> None:
        self._stop = True

    def stopping(self) -> bool:
        return self._stop

    def post(self, event: Dict[str, Any]) -> None:
        self._events.append(event)

    def drain(self) -> List[Dict[str, Any]]:
        events, self._events = self._events, []
        return events


# ---- the driver -------------------------------------------------------------------------------

def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RuntimeError("hypersdk.batch runs its VMs on Ray, which is not installed: pip install ray") from None
    return ray


def _human_bytes(n: Optional[int]) -> str:
    if not n:
        return "0"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


class _Reporter:
    """Prints one line per VM state change (or a JSON object per line) and the result table."""

    def __init__(self, out: TextIO, as_json: bool, secrets: Sequence[str], width: int):
        self.out, self.as_json, self.secrets, self.width = out, as_json, list(secrets), width
        self.t0 = time.monotonic()

    def _write(self, line: str) -> None:
        self.out.write(_scrub(line, self.secrets) + "\n")
        self.out.flush()

    def state(self, spec: VMSpec, state: str, detail: str = "", **extra: Any) -> None:
        t = time.monotonic() - self.t0
        if self.as_json:
            self._write(json.dumps({"event": "state", "time": round(t, 3), "vm": spec.key, "host": spec.host or UNKNOWN,
                                    "state": state, "detail": detail, **extra}, sort_keys=True))
        else:
            self._write(f"[{t:7.1f}s] {spec.key:<{self.width}}  {state:<8}  {detail}".rstrip())

    def table(self, rows: List[Dict[str, Any]], seconds: float) -> None:
        done = sum(r["status"] == "done" for r in rows)
        if self.as_json:
            for r in rows:
                self._write(json.dumps(dict(r, event="result"), sort_keys=True))
            self._write(json.dumps({"event": "summary", "vms": len(rows), "done": done, "failed": len(rows) - done,
                                    "seconds": round(seconds, 3)}, sort_keys=True))
            return
        header = ["VM", "HOST", "STATUS", "ATTEMPTS", "BYTES", "SECONDS", "OUTPUT / ERROR"]
        cells = []
        for r in rows:
            if r["status"] == "done":
                files = r["output"]
                last = files[0] + (f" (+{len(files) - 1} more)" if len(files) > 1 else "") if files else r["output_dir"]
            else:
                last = r["error"] or ""
            cells.append([r["vm"], r["host"], r["status"], str(r["attempts"]), _human_bytes(r["bytes"]),
                          f"{r['seconds']:.1f}", last])
        widths = [max(len(header[i]), *(len(c[i]) for c in cells)) for i in range(len(header) - 1)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
        self._write("")
        self._write(fmt.format(*header))
        for c in cells:
            self._write(fmt.format(*c))
        self._write(f"{done} of {len(rows)} VM(s) done, {len(rows) - done} failed, in {seconds:.1f} s")


def run(plan_source: Any, *, ray_address: Optional[str] = None, max_per_host: Optional[int] = None,
        max_per_datastore: Optional[int] = None, retries: Optional[int] = None, retry_backoff: Optional[float] = None,
        task_cpus: Optional[float] = None, as_json: bool = False, out: Optional[TextIO] = None,
        err: Optional[TextIO] = None, sigterm_interrupts: bool = False) -> List[Dict[str, Any]]:
    """Runs a plan on Ray (a cluster at ray_address, else the plan's ray.address, else $RAY_ADDRESS,
    else a new local one started for this run, on 127.0.0.1) and returns the result table: one dict per VM, in plan order, with vm,
    vm_path, host, datastores, operation, status ("done"/"failed"), attempts, bytes, seconds,
    output (files), output_dir, error and errors (one message per failed attempt). The keyword
    arguments override the plan's settings. sigterm_interrupts (from the main thread): SIGTERM
    stops the run as Ctrl-C does (the VMs in flight cancelled and cleaned up, all reported)."""
    out = out or sys.stdout
    err = err or sys.stderr
    plan = load_plan(plan_source)
    address = ray_address or plan.ray.get("address") or os.environ.get("RAY_ADDRESS") or None
    if not address or address.split(":")[0] in ("127.0.0.1", "localhost"):
        # A cluster on this machine stays on loopback: Ray otherwise swaps 127.0.0.1 for the
        # address other machines would reach it at (found by routing towards a public address).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = _import_ray()
    if max_per_host is not None:
        plan.max_per_host = _whole(max_per_host, "--max-per-host")
    if max_per_datastore is not None:
        plan.max_per_datastore = _whole(max_per_datastore, "--max-per-datastore")
    if retries is not None:
        plan.retries = _whole(retries, "--retries")
    if retry_backoff is not None:
        plan.retry_backoff = _number(retry_backoff, "--retry-backoff")
    cpus = task_cpus if task_cpus is not None else plan.ray.get("task_cpus", 0.5)
    cpus = _number(cpus, "task_cpus")

    secrets = [os.environ[n] for n in plan.secret_env_names() if os.environ.get(n)]
    if not address:
        # A local cluster's workers inherit this process's environment: a missing variable would
        # fail every VM, so say it once now.
        missing = [n for s in plan.vms for n in _env_names(s.request(), only_passwords=True) if not os.environ.get(n)]
        if missing:
            raise PlanError(f"environment variable(s) {sorted(set(missing))} named by the plan for secrets are not set")

    def warn(msg: str) -> None:
        err.write("hypersdk.batch: " + _scrub(msg, secrets) + "\n")
        err.flush()

    need_lookup = bool(plan.max_per_host or plan.max_per_datastore) or plan.order == "largest-first"
    if need_lookup:
        resolve_placement(plan, need_sizes=plan.order == "largest-first", warn=warn)
    else:
        for s in plan.vms:
            s.output_dir = _expand(s.output_dir or "", s, f"vms[{s.index}].output_dir")

    sched = Scheduler(plan.max_per_host, plan.max_per_datastore, plan.retries, plan.retry_backoff,
                      backoff_max=plan.retry_backoff_max)
    by_key = {s.key: s for s in plan.vms}
    for s in plan.vms:
        priority = -(s.size_bytes or 0) if plan.order == "largest-first" else 0
        sched.add(s.key, s.host, s.datastores, priority=priority)

    init: Dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": False, "address": address or "local"}
    if not address:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # A cluster for this run only: on loopback, no dashboard, a small object store (tasks
        # pass requests and outcomes, never disk data).
        init.update(include_dashboard=False, num_cpus=plan.ray.get("num_cpus"), _node_ip_address="127.0.0.1",
                    object_store_memory=plan.ray.get("object_store_memory", 128 << 20))
    # Ray prints its own warnings (from the raylet, about workers) on sys.stdout: they go to
    # stderr while it runs, so what this run prints on `out` stays one line per event.
    with contextlib.redirect_stdout(err):
        try:
            ray.init(**init)
        except Exception as e:
            raise RuntimeError(f"could not {'reach the Ray cluster at ' + address if address else 'start a local Ray cluster'}"
                               f": {type(e).__name__}: {e}") from None
        if sigterm_interrupts:
            # After ray.init, which installs its own SIGTERM handler (it ends the process at once).
            signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            task = ray.remote(num_cpus=cpus, max_retries=0, retry_exceptions=False)(_vm_task)
            sink = ray.remote(num_cpus=0)(_ProgressSink).remote()
            rows = _drive(ray, task, sink, plan, sched, by_key,
                          _Reporter(out, as_json, secrets, max(len(k) for k in by_key)))
        finally:
            ray.shutdown()
    return rows


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _drive(ray: Any, task: Any, sink: Any, plan: Plan, sched: Scheduler, by_key: Dict[str, VMSpec],
           rep: _Reporter) -> List[Dict[str, Any]]:
    t0 = time.monotonic()
    outcome: Dict[str, Dict[str, Any]] = {}
    phase: Dict[str, Optional[str]] = {}
    in_flight: Dict[Any, str] = {}
    submitted: Dict[str, float] = {}  # wall clock, as the tasks' started_at
    limits = []
    if sched.max_per_host:
        limits.append(f"at most {sched.max_per_host} per host")
    if sched.max_per_datastore:
        limits.append(f"at most {sched.max_per_datastore} per datastore")
    for s in by_key.values():
        ds = ",".join(sched.datastores(s.key))
        rep.state(s, "queued", f"host {sched.host(s.key)}, datastore {ds}, {s.operation}"
                  + (f" ({'; '.join(limits)})" if limits and s.index == 0 else ""),
                  datastores=list(sched.datastores(s.key)), operation=s.operation)

    def drain() -> None:
        for ev in ray.get(sink.drain.remote()):
            key = ev.get("key")
            if key not in by_key or sched.state(key) != "running" or ev.get("attempt") != sched.attempts(key):
                continue  # a late event of an attempt already over
            p = ev.get("phase")
            if p == "started":
                rep.state(by_key[key], "started", f"on {ev.get('node')} pid {ev.get('pid')}",
                          attempt=ev["attempt"], node=ev.get("node"), pid=ev.get("pid"))
            elif p != phase.get(key):
                phase[key] = p
                rep.state(by_key[key], "phase", str(p), attempt=ev["attempt"], bytes_done=ev.get("bytes_done", 0))

    def settle(ref: Any, retry: bool = True) -> None:
        """A task's outcome: the scheduler's verdict (done, retry, failed) and its line."""
        key = in_flight.pop(ref)
        s = by_key[key]
        try:
            res = ray.get(ref)
        except Exception as e:  # the task itself died (worker lost, node gone, cancelled, ...)
            res = {"ok": False, "code": "worker_error", "error": f"{type(e).__name__}: {e}".splitlines()[0],
                   "retryable": True, "seconds": 0.0, "bytes": 0}
        outcome[key] = res
        n = sched.attempts(key)
        timing = {}
        if isinstance(res.get("started_at"), (int, float)):
            # submit to the task running on a worker: what a freed slot waits for Ray
            timing["dispatch_seconds"] = round(max(0.0, res["started_at"] - submitted[key]), 3)
        verdict = sched.finish(key, time.monotonic(), res["ok"], res.get("error"), retry and res.get("retryable", True))
        if verdict == "done":
            rep.state(s, "done", f"{_human_bytes(res.get('bytes'))} in {res['seconds']:.1f} s",
                      attempt=n, bytes=res.get("bytes"), seconds=round(res["seconds"], 3), **timing)
        elif verdict == "retry":
            delay = sched.backoff_for(n)
            rep.state(s, "retrying", f"in {delay:.1f} s: attempt {n} failed: {res.get('error')}",
                      attempt=n, error=res.get("error"), code=res.get("code"), backoff=delay, **timing)
        else:
            why = f"after {n} attempt(s)" if res.get("retryable", True) and retry else "(not retried)"
            rep.state(s, "failed", f"{why}: {res.get('error')}", attempt=n, error=res.get("error"),
                      code=res.get("code"), **timing)

    last_drain = 0.0
    try:
        while not sched.finished:
            now = time.monotonic()
            for key in sched.take(now):
                s = by_key[key]
                n = sched.attempts(key)
                ref = task.remote(key, n, s.request(), s.warm, sink)
                in_flight[ref] = key
                submitted[key] = time.time()
                phase[key] = None
                rep.state(s, "running", f"attempt {n} of {sched.retries + 1}", attempt=n)
            if not in_flight:
                wake = sched.wake_time(now)
                if wake is None:
                    break  # nothing can ever start: cannot happen with a consistent scheduler
                time.sleep(max(0.0, min(wake - time.monotonic(), 1.0)))
                continue
            wake = sched.wake_time(now)
            timeout = 0.25 if wake is None else max(0.01, min(0.25, wake - time.monotonic()))
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=timeout)
            if ready:
                rest = [r for r in in_flight if r not in ready]
                if rest:
                    more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                    ready += more
            if ready or time.monotonic() - last_drain >= 0.25:
                drain()
                last_drain = time.monotonic()
            for ref in ready:
                settle(ref)
    except KeyboardInterrupt:
        sink.stop.remote()  # the tasks cancel their operations, which clean up
        for ref in in_flight:
            ray.cancel(ref)
        # Give the cancelled operations time to clean up (and the finished ones to report) before
        # a local cluster goes away; nothing is retried any more.
        try:
            ready, _ = ray.wait(list(in_flight), num_returns=len(in_flight), timeout=30)
        except BaseException:
            ready = []
        for ref in ready:
            settle(ref, retry=False)
        for key in sched.fail_queued("interrupted before it started"):
            rep.state(by_key[key], "failed", "interrupted before it started")
        for ref, key in list(in_flight.items()):
            in_flight.pop(ref)
            sched.finish(key, time.monotonic(), False, "interrupted: still running 30 s after the cancel", retryable=False)
            rep.state(by_key[key], "failed", "interrupted: still running 30 s after the cancel")

    rows = []
    for s in sorted(by_key.values(), key=lambda v: v.index):
        res = outcome.get(s.key, {})
        ok = sched.state(s.key) == "done"
        errors = [_scrub(e, rep.secrets) for e in sched.errors(s.key)]
        rows.append({
            "vm": s.key, "vm_path": s.vm, "host": sched.host(s.key), "datastores": list(sched.datastores(s.key)),
            "operation": res.get("operation", s.operation), "status": "done" if ok else "failed",
            "attempts": sched.attempts(s.key), "bytes": int(res.get("bytes") or 0),
            "seconds": round(float(res.get("seconds") or 0.0), 3), "output": list(res.get("files") or []) if ok else [],
            "output_dir": s.output_dir, "error": None if ok else (errors[-1] if errors else res.get("error")),
            "errors": errors,
        })
    rep.table(rows, time.monotonic() - t0)
    return rows


# ---- command line -----------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m hypersdk.batch",
                                description="Migrate the VMs of a plan on Ray, one task per VM (docs/batch.md).")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a plan (YAML or JSON)")
    r.add_argument("plan", help="the plan file")
    r.add_argument("--ray-address", help="Ray cluster to use (host:port, or auto); default: the plan's ray.address, "
                                         "else $RAY_ADDRESS, else a local cluster started for this run")
    r.add_argument("--max-per-host", type=int, help="exports in flight per source host at most (0: no limit)")
    r.add_argument("--max-per-datastore", type=int, help="exports in flight per datastore at most (0: no limit)")
    r.add_argument("--retries", type=int, help="attempts after the first for a VM that failed (default 2)")
    r.add_argument("--retry-backoff", type=float, help="seconds before the first retry, doubling after (default 10)")
    r.add_argument("--task-cpus", type=float, help="Ray CPUs one VM's task reserves (default 0.5)")
    r.add_argument("--json", action="store_true", help="JSON lines: one per state change, one per VM at the end")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line; returns the exit status: 0 when every VM is done, 1 when one failed
    after its retries, 2 for a plan or option that cannot run."""
    args = _parser().parse_args(argv)
    try:
        rows = run(args.plan, ray_address=args.ray_address, max_per_host=args.max_per_host,
                   max_per_datastore=args.max_per_datastore, retries=args.retries, retry_backoff=args.retry_backoff,
                   task_cpus=args.task_cpus, as_json=args.json, sigterm_interrupts=True)
    except (PlanError, RuntimeError) as e:
        sys.stderr.write(f"hypersdk.batch: {e}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    return 0 if all(r["status"] == "done" for r in rows) else 1


if __name__ == "__main__":
    # Run as the module hypersdk.batch, not as __main__, so Ray's workers find the task function
    # under its real name.
    from hypersdk import batch as _batch
    sys.exit(_batch.main())
