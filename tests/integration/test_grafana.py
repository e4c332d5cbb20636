"""deploy/grafana/hypersdk.json: loads as a Grafana dashboard, and every query names only metrics a
running hypervisord exports (the names read from its /metrics, not from a list kept here)."""
import json
import re

import pytest

from conftest import ROOT
from daemon_harness import Daemon

DASHBOARD = ROOT / "deploy" / "grafana" / "hypersdk.json"
# PromQL words that are not metric names.
PROMQL = {"sum", "rate", "increase", "by", "without", "histogram_quantile", "le", "route", "status", "result", "avg", "max", "min",
          "count", "irate", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("grafana"), {}, args=["--no-auth"])
    try:
        d.get("/health")
        status, text, _ = d.get("/metrics", raw=True)
        assert status == 200
    finally:
        d.stop()
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            names.add(name)
            if kind == "histogram":
                names |= {name + "_bucket", name + "_sum", name + "_count"}
        elif line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return names


def metric_names(expr):
    no_labels = re.sub(r"\{[^}]*\}", "", expr)
    no_ranges = re.sub(r"\[[^\]]*\]", "", no_labels)
    no_strings = re.sub(r'"[^"]*"', "", no_ranges)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", no_strings))
    return {w for w in words if w not in PROMQL}


def test_dashboard_loads_and_every_query_names_an_exported_metric(exported):
    dash = json.loads(DASHBOARD.read_text())
    assert dash["title"] and dash["uid"] and dash["schemaVersion"] >= 30
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= exported, (expr, names - exported)
    # The views: jobs by state, throughput, durations, HTTP errors by route.
    all_exprs = " ".join(exprs)
    for needed in ("hypersdk_active_jobs", "hypersdk_bytes_exported_total", "hypersdk_job_duration_seconds_bucket",
                   "hypersdk_http_requests_total"):
        assert needed in all_exprs
    assert any("status=~" in e and "route" in e for e in exprs)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
