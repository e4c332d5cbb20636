"""hsdk cost estimate|compare (cost.estimate, cost.compare over pricing/*.json) from the command
line: sizes from bytes, an export result and a negotiated --pricing table, text and JSON output,
and the bad inputs the issue names. The daemon's /cost routes are in test_daemon.py."""
import json
import shutil

import pytest

from conftest import ROOT, MiB, hsdk, qemu_img, write_pattern


def estimate(*args, check=True):
    p = hsdk("cost", "estimate", *args, "--json", check=check)
    return json.loads(p.stdout) if p.returncode == 0 else p


def item(result, name):
    return next(i for i in result["items"] if i["item"] == name)


def test_s3_standard_500g_for_a_month():
    r = estimate("--provider", "s3", "--class", "standard", "--region", "us-east-1", "--size", "500G", "--days", "30")
    # 500 GB x 1 month x $0.023 (the first 50 TB tier) = $11.50 of storage; 8000 PUTs (one per
    # 64 MiB) x $0.005 / 1000 = $0.04 of requests.
    assert item(r, "storage")["amount_usd"] == pytest.approx(11.5, abs=1e-6)
    assert item(r, "requests")["amount_usd"] == pytest.approx(0.04, abs=1e-6)
    assert r["total_usd"] == pytest.approx(11.54, abs=1e-6)
    assert [i["item"] for i in r["items"]] == ["storage", "requests", "retrieval", "egress", "early_deletion"]
    text = hsdk("cost", "estimate", "--provider", "s3", "--class", "standard", "--size", "500G").stdout
    assert "storage" in text and "11.5" in text


def test_early_deletion_is_charged_once():
    r = estimate("--provider", "gcs", "--class", "archive", "--region", "us-central1", "--size", "100G", "--days", "100")
    # GCS Archive keeps 365 days: deleting after 100 charges the remaining 265 days once.
    deletion = item(r, "early_deletion")
    assert deletion["amount_usd"] > 0 and "265" in deletion["detail"]
    kept = estimate("--provider", "gcs", "--class", "archive", "--region", "us-central1", "--size", "100G", "--days", "100", "--keep")
    assert item(kept, "early_deletion")["amount_usd"] == 0


def test_compare_is_cheapest_first_each_in_its_region():
    p = hsdk("cost", "compare", "--size", "1T", "--days", "365", "--region", "s3=eu-west-1", "--json")
    est = json.loads(p.stdout)["estimates"]
    totals = [e["total_usd"] for e in est]
    assert totals == sorted(totals) and len(est) == 15
    assert {e["region"] for e in est if e["provider"] == "s3"} == {"eu-west-1"}
    assert {e["provider"] for e in est} == {"s3", "azure", "gcs"}
    text = hsdk("cost", "compare", "--size", "1T", "--days", "365").stdout
    assert "deep-archive" in text


def test_sized_from_an_export_result(tmp_path):
    raw = write_pattern(tmp_path / "d.raw", 8 * MiB, seed=3)
    disk = tmp_path / "d.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", raw, disk)
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"vm": {"name": "x"}, "files": [str(disk)], "bytes_received": 1, "bytes_resumed": 0,
                                  "method": "ExportVm", "snapshot_used": False, "seconds": 1}))
    r = estimate("--provider", "azure", "--class", "cool", "--export-result", str(result), "--days", "30")
    assert r["input"]["stored_bytes"] == disk.stat().st_size
    missing = tmp_path / "gone.json"
    missing.write_text(json.dumps({"files": [str(tmp_path / "nope.vmdk")]}))
    p = estimate("--provider", "azure", "--class", "cool", "--export-result", str(missing), check=False)
    assert p.returncode != 0 and "nope.vmdk" in p.stderr


def test_negotiated_pricing_file(tmp_path):
    table = json.loads((ROOT / "pricing" / "s3" / "us-east-1.json").read_text())
    table["classes"]["standard"]["storage_gb_month"] = 0.01
    table.pop("storage_tiers", None)
    table["classes"]["standard"].pop("storage_tiers", None)
    f = tmp_path / "negotiated.json"
    f.write_text(json.dumps(table))
    r = estimate("--provider", "s3", "--class", "standard", "--region", "us-east-1", "--size", "500G", "--pricing", str(f))
    assert item(r, "storage")["amount_usd"] == pytest.approx(5.0, abs=1e-6)
    broken = tmp_path / "broken.json"
    broken.write_text('{"provider": "s3"}')
    p = estimate("--provider", "s3", "--class", "standard", "--size", "1G", "--pricing", str(broken), check=False)
    assert p.returncode != 0 and "broken.json" in p.stderr


@pytest.mark.parametrize("args,message", [
    (["--provider", "s3", "--class", "standard", "--size", "-5G"], "negative"),
    (["--provider", "s3", "--class", "standard", "--size", "0"], "size"),
    (["--provider", "s3", "--class", "standard-ia", "--size", "1G", "--days", "0"], "days"),
    (["--provider", "s3", "--class", "platinum", "--size", "1G"], "platinum"),
    (["--provider", "s3", "--class", "standard", "--region", "mars-1", "--size", "1G"], "mars-1"),
])
def test_bad_input_is_a_clear_error(args, message):
    p = hsdk("cost", "estimate", *args, check=False)
    assert p.returncode != 0 and message in p.stderr, p.stderr
