"""hypersdk.batch without Ray: the scheduler (limits per host and datastore under random finish
orders, queue order without head-of-line blocking, retries with backoff, permanent failures), plan
loading (defaults, secrets refused without echoing them), the one placement look-up per
connection, and one VM run in this process (a missing password variable; warm migration's
operation name)."""
import importlib.util
import json
import pathlib
import random
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
# The module from the source tree: it is pure Python, and the in-tree build may not copy it yet.
_spec = importlib.util.spec_from_file_location("hypersdk_batch_under_test", HERE.parent / "hypersdk" / "batch.py")
batch = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = batch  # dataclasses look their module up
_spec.loader.exec_module(batch)
Scheduler = batch.Scheduler


def test_never_more_than_the_limits_in_flight_under_random_finishes():
    rng = random.Random(5)
    s = Scheduler(max_per_host=3, max_per_datastore=4, retries=1, backoff=1.0)
    hosts = [f"h{i}" for i in range(4)]
    dss = ["ds0", "ds1", "ds2"]
    for i in range(200):
        s.add(f"vm{i}", hosts[i % 4], [dss[rng.randrange(3)]] + ([dss[rng.randrange(3)]] if i % 7 == 0 else []))
    now, running, finished = 0.0, [], 0
    while not s.finished:
        running += s.take(now)
        per_host, per_ds = s.running_per_host(), s.running_per_datastore()
        assert max(per_host.values(), default=0) <= 3 and max(per_ds.values(), default=0) <= 4
        assert sum(per_host.values()) == len(running)
        if running:
            key = running.pop(rng.randrange(len(running)))
            s.finish(key, now, ok=rng.random() > 0.2, error="boom")
            finished += 1
        now += 0.3
    assert s.peak_per_host == {h: 3 for h in hosts}
    assert max(s.peak_per_datastore.values()) == 4
    states = [s.state(f"vm{i}") for i in range(200)]
    assert set(states) <= {"done", "failed"}
    assert all(s.attempts(f"vm{i}") in (1, 2) for i in range(200))


def test_queue_order_and_no_head_of_line_blocking():
    s = Scheduler(max_per_host=1)
    for key, host in [("a", "h1"), ("b", "h1"), ("c", "h2"), ("d", "h1"), ("e", "h3")]:
        s.add(key, host)
    assert s.take(0) == ["a", "c", "e"]  # b waits for h1; c and e do not wait behind it
    assert s.take(0) == []
    assert s.finish("a", 1, ok=True) == "done"
    assert s.take(1) == ["b"]  # the next of h1 in plan order
    s.finish("b", 2, ok=True)
    assert s.take(2) == ["d"]


def test_priority_goes_first_then_the_order_added():
    s = Scheduler(max_per_host=1)
    s.add("small", "h", priority=-1)
    s.add("big", "h", priority=-100)
    s.add("big2", "h", priority=-100)
    assert s.take(0) == ["big"]
    s.finish("big", 0, ok=True)
    assert s.take(0) == ["big2"]


def test_no_host_counts_as_one_unknown_host():
    s = Scheduler(max_per_host=2)
    for k in "abc":
        s.add(k)
    assert s.take(0) == ["a", "b"] and s.host("a") == "unknown" and s.datastores("a") == ("unknown",)


def test_unlimited_when_no_limits():
    s = Scheduler()
    for k in range(50):
        s.add(str(k), "h")
    assert len(s.take(0)) == 50


def test_retry_waits_out_the_backoff_then_keeps_its_place():
    s = Scheduler(max_per_host=1, retries=2, backoff=10.0, backoff_factor=2.0)
    s.add("x", "h")
    s.add("y", "h")
    assert s.take(0) == ["x"]
    assert s.finish("x", 5.0, ok=False, error="first") == "retry"
    assert s.state("x") == "waiting" and s.wake_time(5.0) == 15.0
    assert s.take(5.0) == ["y"]  # the slot is not held for x while it waits
    s.finish("y", 6.0, ok=True)
    assert s.take(14.9) == []
    assert s.take(15.0) == ["x"] and s.attempts("x") == 2
    assert s.finish("x", 16.0, ok=False, error="second") == "retry"
    assert s.wake_time(16.0) == 36.0  # 10 s, then 20 s
    assert s.wake_time(36.0) is None  # due: it starts at the next take
    assert s.take(36.0) == ["x"]
    assert s.finish("x", 37.0, ok=False, error="third") == "failed"
    assert s.errors("x") == ["first", "second", "third"] and s.attempts("x") == 3
    assert s.finished


def test_retried_vm_goes_before_later_ones():
    s = Scheduler(max_per_host=1, retries=1, backoff=0.0)
    s.add("x", "h")
    s.add("y", "h")
    s.take(0)
    s.finish("x", 1, ok=False)
    assert s.take(1) == ["x"]


def test_permanent_failure_is_not_retried():
    s = Scheduler(retries=5)
    s.add("x", "h")
    s.take(0)
    assert s.finish("x", 0, ok=False, error="unknown operation", retryable=False) == "failed"
    assert s.attempts("x") == 1


def test_backoff_is_capped():
    s = Scheduler(backoff=10, backoff_factor=3, backoff_max=50)
    assert [s.backoff_for(n) for n in (1, 2, 3, 4)] == [10, 30, 50, 50]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        Scheduler(max_per_host=-1)
    with pytest.raises(ValueError):
        Scheduler(retries=-1)
    s = Scheduler()
    s.add("a")
    with pytest.raises(ValueError):
        s.add("a")
    with pytest.raises(ValueError):
        s.finish("a", 0, ok=True)  # not running


# ---- plans ------------------------------------------------------------------------------------

CONN = {"url": "https://vc.example/sdk", "username": "u", "password_env": "VC_PW"}


def test_plan_defaults_and_entries():
    plan = batch.load_plan({
        "defaults": {"connection": CONN, "format": "qcow2", "output_dir": "/exports/{name}", "params": {"transport": "nfc"}},
        "max_per_host": 3, "retries": 1, "retry_backoff": 2,
        "vms": ["/DC0/vm/a", {"vm": "/DC0/vm/b", "host": "esx2", "datastore": ["ds1", "ds2"], "format": "raw",
                              "connection": {"username": "v"}, "params": {"parallel": 2}},
                {"vm": "/DC1/vm/a", "warm": True, "output_dir": "/warm/{name}-{index}"}],
    })
    assert [v.key for v in plan.vms] == ["a@0", "b", "a@2"]  # names that repeat get their index
    a, b, w = plan.vms
    assert plan.max_per_host == 3 and plan.retries == 1 and plan.retry_backoff == 2.0
    assert a.connection == CONN and b.connection == dict(CONN, username="v")
    assert b.params == {"transport": "nfc", "parallel": 2} and b.datastores == ["ds1", "ds2"] and b.format == "raw"
    batch.resolve_placement(plan, lister=lambda p, c: [])
    assert a.output_dir == "/exports/a" and w.output_dir == "/warm/a-2"
    req = a.request()
    assert req == {"vm": "/DC0/vm/a", "provider": "vsphere", "output_dir": "/exports/a", "format": "qcow2",
                   "connection": CONN, "transport": "nfc"}
    assert a.operation == "export.run" and w.operation == "migrate.warm"
    assert w.request()["out"] == "/warm/a-2" and "output_dir" not in w.request()
    assert plan.secret_env_names() == ["VC_PW"]


def test_plan_from_yaml_and_json_files(tmp_path):
    doc = {"defaults": {"output_dir": "/o/{name}"}, "vms": [{"vm": "/DC0/vm/x"}]}
    (tmp_path / "p.json").write_text(json.dumps(doc))
    assert batch.load_plan(tmp_path / "p.json").vms[0].name == "x"
    yaml = pytest.importorskip("yaml")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc))
    assert batch.load_plan(str(tmp_path / "p.yaml")).vms[0].vm == "/DC0/vm/x"


@pytest.mark.parametrize("where", ["defaults", "vm"])
def test_inline_passwords_are_refused_without_echoing_them(where):
    conn = dict(CONN, password="hunter2-secret")
    doc = {"vms": [{"vm": "x", "output_dir": "/o"}]}
    if where == "defaults":
        doc["defaults"] = {"connection": conn}
    else:
        doc["vms"][0]["connection"] = conn
    with pytest.raises(batch.PlanError) as e:
        batch.load_plan(doc)
    assert "password_env" in str(e.value) and "hunter2" not in str(e.value)
    with pytest.raises(batch.PlanError) as e:
        batch.load_plan({"vms": [{"vm": "x", "output_dir": "/o", "connection": {"url": "https://u:hunter2@vc/sdk"}}]})
    assert "hunter2" not in str(e.value)


@pytest.mark.parametrize("doc, words", [
    ({"vms": []}, "non-empty"),
    ({"vms": [{"vm": "x"}]}, "output_dir"),
    ({"vms": [{"vm": "x", "output_dir": "/o", "colour": 1}]}, "colour"),
    ({"vms": [{"vm": "x", "output_dir": "/o"}], "max_per_host": -1}, "max_per_host"),
    ({"vms": [{"vm": "x", "output_dir": "/o"}], "order": "random"}, "order"),
    ({"vms": [{"output_dir": "/o"}]}, "vms[0].vm"),
    ({"vms": [{"vm": "x", "output_dir": "/o/{nmae}"}]}, "placeholders"),
])
def test_bad_plans_name_the_problem(doc, words):
    with pytest.raises(batch.PlanError) as e:
        plan = batch.load_plan(doc)
        batch.resolve_placement(plan, lister=lambda p, c: [])
    assert words in str(e.value)


def test_placement_is_looked_up_once_per_connection():
    calls = []
    described = [
        {"inventory_path": "/DC0/vm/a", "name": "a", "disks": [{"datastore": "ds2", "capacity_bytes": 10},
                                                               {"datastore": "ds1", "capacity_bytes": 5}]},
        {"inventory_path": "/DC0/vm/b", "name": "b", "host": "esx9", "disks": [{"datastore": "ds1", "capacity_bytes": 1}]},
    ]

    def lister(provider, config):
        calls.append((provider, config))
        return described
    plan = batch.load_plan({"defaults": {"connection": CONN, "output_dir": "/o/{host}/{datastore}/{name}"},
                            "vms": ["/DC0/vm/a", "b", {"vm": "/DC0/vm/c", "host": "esx1", "datastore": "dsX"},
                                    "/DC0/vm/missing"]})
    batch.resolve_placement(plan, lister=lister)
    assert len(calls) == 1 and calls[0] == ("vsphere", CONN)
    a, b, c, missing = plan.vms
    assert (a.host, a.datastores, a.size_bytes) == (None, ["ds1", "ds2"], 15)
    assert (b.host, b.datastores) == ("esx9", ["ds1"])  # a description that carries its host
    assert (c.host, c.datastores) == ("esx1", ["dsX"])  # the plan's own, not looked up
    assert (missing.host, missing.datastores) == (None, [])
    assert a.output_dir == "/o/unknown/ds1/a" and c.output_dir == "/o/esx1/dsX/c"


def test_a_failed_lookup_warns_and_leaves_unknown():
    warnings = []

    def lister(provider, config):
        raise OSError("no route")
    plan = batch.load_plan({"defaults": {"connection": CONN, "output_dir": "/o"}, "vms": ["a"]})
    batch.resolve_placement(plan, lister=lister, warn=warnings.append)
    assert plan.vms[0].host is None and "unknown" in warnings[0]


def test_scrub_and_human_sizes():
    assert batch._scrub("auth failed for s3cret", ["s3cret", ""]) == "auth failed for ********"
    assert batch._human_bytes(0) == "0" and batch._human_bytes(3 << 20) == "3.0 MiB"


# ---- one VM in this process (the binding, no Ray, no server) ----------------------------------

def test_missing_password_variable_is_a_permanent_failure(monkeypatch):
    monkeypatch.delenv("HSDK_BATCH_TEST_NOT_SET", raising=False)
    out = batch.migrate_vm({"vm": "/DC0/vm/x", "output_dir": "/nonexistent",
                            "connection": {"url": "https://127.0.0.1:9/sdk", "password_env": "HSDK_BATCH_TEST_NOT_SET"}})
    assert out["ok"] is False and out["retryable"] is False and "HSDK_BATCH_TEST_NOT_SET" in out["error"]


def test_a_request_the_operation_refuses_is_not_retried(tmp_path, monkeypatch):
    pytest.importorskip("hypersdk")
    monkeypatch.setenv("HSDK_BATCH_TEST_PW", "pw-value-123")
    events = []
    out = batch.migrate_vm({"vm": "/DC0/vm/x", "output_dir": str(tmp_path), "format": "no-such-format",
                            "connection": {"url": "https://127.0.0.1:9/sdk", "password_env": "HSDK_BATCH_TEST_PW"}},
                           report=events.append)
    assert out["ok"] is False and out["code"] == "invalid_argument" and out["retryable"] is False
    assert out["operation"] == "export.run" and "pw-value-123" not in json.dumps(out)


def test_warm_entries_run_the_warm_operation(tmp_path):
    hypersdk = pytest.importorskip("hypersdk")
    out = batch.migrate_vm({"vm": "/DC0/vm/x", "out": str(tmp_path), "format": "vmdk"}, warm=True)
    assert out["ok"] is False and out["operation"] == "migrate.warm"
    if "migrate.warm" in hypersdk.operations():
        assert out["code"] == "invalid_argument" and "format" in out["error"]  # qcow2 or raw only
    else:  # the registry's own answer
        assert "unknown operation" in out["error"]
