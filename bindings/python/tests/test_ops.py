"""The operation model from Python: run/start/Job (wait, cancel, events, asyncio), request errors
naming the field, callbacks that raise, queued jobs cancelled at once, secrets kept out of what a
job shows, and the generated stubs checked by mypy."""
import asyncio
import os
import pathlib
import random
import subprocess
import sys
import threading

import pytest

import hypersdk

MiB = 1 << 20
HERE = pathlib.Path(__file__).resolve().parent


def make_raw(path, size=4 * MiB, seed=3):
    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        for off in range(0, size, 1 * MiB):
            f.seek(off)
            f.write(rng.randbytes(256 * 1024))
    return str(path)


def test_run_gives_the_operation_result(tmp_path):
    raw = make_raw(tmp_path / "a.raw")
    info = hypersdk.run("image.info", path=raw, format="raw")
    with hypersdk.open_image(raw, format="raw") as img:
        assert info == img.info
    assert hypersdk.run("image.formats")["writable"] == hypersdk.writable_formats()
    out = tmp_path / "a.qcow2"
    stats = hypersdk.run("image.convert", {"source": raw, "source_format": "raw"}, destination=str(out), output_format="qcow2",
                         options={"cluster_size": 65536})
    assert stats["virtual_size"] == 4 * MiB
    assert hypersdk.run("image.compare", a=raw, a_format="raw", b=str(out))["identical"]
    ops = hypersdk.operations()
    assert ops["image.convert"]["long_running"] and "request" in ops["image.convert"]


def test_compressed_and_encrypted_outputs_through_the_operations(tmp_path, monkeypatch):
    raw = make_raw(tmp_path / "a.raw")
    monkeypatch.setenv("HSDK_PY_PASS", "a python passphrase")
    out = tmp_path / "a.raw.zst"
    res = hypersdk.run("image.convert", source=raw, source_format="raw", destination=str(out), output_format="raw",
                       compress="zstd", encrypt=True, encrypt_method="age", passphrase_env="HSDK_PY_PASS")
    assert res["compression"] == "zstd" and res["encryption"] == {"method": "age", "key": "passphrase", "recipients": []}
    assert out.read_bytes().startswith(b"age-encryption.org/v1\n")
    # Read back directly: decrypted, then decompressed, as the image it holds.
    assert hypersdk.run("image.compare", a=raw, a_format="raw", b=str(out), b_format="raw",
                        decrypt={"passphrase_env": "HSDK_PY_PASS"})["identical"]
    plain = tmp_path / "a.zst"
    assert hypersdk.run("file.decrypt", input=str(out), output=str(plain), passphrase_env="HSDK_PY_PASS")["method"] == "age"
    back = tmp_path / "back.raw"
    assert hypersdk.run("file.decompress", input=str(plain), output=str(back))["method"] == "zstd"
    assert back.read_bytes() == pathlib.Path(raw).read_bytes()
    with pytest.raises(hypersdk.InvalidArgumentError, match="/compress"):
        hypersdk.run("image.convert", source=raw, source_format="raw", destination=str(tmp_path / "x"), output_format="raw",
                     compress="brotli")
    assert not (tmp_path / "x").exists()


def test_bad_requests_name_the_field(tmp_path):
    with pytest.raises(hypersdk.InvalidArgumentError, match=r"/threads: expected integer, got string"):
        hypersdk.run("image.convert", source="a", destination="b", output_format="raw", threads="4")
    with pytest.raises(ValueError, match=r"/options/cluster_size: expected integer, got string"):
        hypersdk.run("image.convert", source="a", destination="b", output_format="qcow2", options={"cluster_size": "64k"})
    with pytest.raises(hypersdk.InvalidArgumentError, match=r"/destnation: unknown field"):
        hypersdk.start("image.convert", source="a", destnation="b", output_format="raw")
    with pytest.raises(hypersdk.InvalidArgumentError, match="unknown operation 'image.nope'"):
        hypersdk.run("image.nope")
    with pytest.raises(hypersdk.NotFoundError) as e:
        hypersdk.run("image.info", path=str(tmp_path / "missing.qcow2"))
    assert e.value.code == "not_found" and e.value.status == -2


def test_start_wait_events_and_info(tmp_path):
    raw = make_raw(tmp_path / "b.raw", 16 * MiB)
    job = hypersdk.start("image.convert", source=raw, source_format="raw", destination=str(tmp_path / "b.vhdx"), output_format="vhdx")
    assert job.state in ("queued", "running", "succeeded")
    events = list(job.events())
    result = job.wait()
    assert result["virtual_size"] == 16 * MiB
    assert job.state == "succeeded"
    assert events and all(e["job_id"] == job.id for e in events)
    assert events[-1]["bytes_done"] == events[-1]["bytes_total"]
    info = job.info()
    assert info["id"] == job.id and info["state"] == "succeeded" and info["request"]["cache"] == "none"
    assert len(job.id) == 36


def test_jobs_are_awaitable(tmp_path):
    raws = [make_raw(tmp_path / f"c{i}.raw", 8 * MiB, seed=i) for i in range(3)]

    async def main():
        jobs = [hypersdk.start("image.convert", source=r, source_format="raw", destination=r + ".qcow2", output_format="qcow2")
                for r in raws]
        return await asyncio.gather(*jobs)

    results = asyncio.run(main())
    assert [r["virtual_size"] for r in results] == [8 * MiB] * 3


def test_awaiting_a_failed_job_raises_its_error(tmp_path):
    async def main():
        return await hypersdk.start("image.check", path=str(tmp_path / "nope.qcow2"))

    with pytest.raises(hypersdk.NotFoundError):
        asyncio.run(main())


def test_cancel_a_running_job_leaves_nothing(tmp_path):
    raw = make_raw(tmp_path / "d.raw", 64 * MiB)
    out = tmp_path / "d.qcow2"
    reported, release = threading.Event(), threading.Event()

    def progress(p):
        reported.set()
        release.wait(10)

    job = hypersdk.start("image.convert", source=raw, source_format="raw", destination=str(out), output_format="qcow2",
                         progress=progress)
    assert reported.wait(10)
    job.cancel()
    release.set()
    with pytest.raises(hypersdk.CancelledError):
        job.wait()
    assert job.state == "cancelled"
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".hsdk-" in p.name]


def test_a_queued_job_is_cancelled_without_running(tmp_path):
    before = hypersdk.executor_stats()["jobs"]["limit"]
    hypersdk.configure_executor(max_jobs=1)
    try:
        raw = make_raw(tmp_path / "e.raw", 32 * MiB)
        reported, release = threading.Event(), threading.Event()

        def hold(p):
            reported.set()
            release.wait(10)

        first = hypersdk.start("image.convert", source=raw, source_format="raw", destination=str(tmp_path / "e1.raw"), output_format="raw",
                               progress=hold)
        assert reported.wait(10)
        ran = []
        second = hypersdk.start("image.convert", source=raw, source_format="raw", destination=str(tmp_path / "e2.raw"),
                                output_format="raw", progress=lambda p: ran.append(p))
        assert second.state == "queued"
        with pytest.raises(TimeoutError):
            second.wait(0.01)
        second.cancel()
        assert second.state == "cancelled"
        with pytest.raises(hypersdk.CancelledError):
            second.wait()
        release.set()
        first.wait()
        assert not ran and not (tmp_path / "e2.raw").exists()
    finally:
        hypersdk.configure_executor(max_jobs=before)


def test_a_raising_callback_cancels_and_its_exception_reaches_the_caller(tmp_path):
    raw = make_raw(tmp_path / "f.raw", 16 * MiB)

    class Stop(Exception):
        pass

    def boom(p):
        raise Stop("from the callback")

    job = hypersdk.start("image.convert", source=raw, source_format="raw", destination=str(tmp_path / "f.qcow2"), output_format="qcow2",
                         progress=boom)
    with pytest.raises(Stop, match="from the callback"):
        job.wait()
    assert job.state == "cancelled"
    with pytest.raises(Stop):
        hypersdk.run("image.convert", source=raw, source_format="raw", destination=str(tmp_path / "g.qcow2"), output_format="qcow2",
                     progress=boom)
    assert not (tmp_path / "f.qcow2").exists() and not (tmp_path / "g.qcow2").exists()


def test_a_cancel_token_cancels_a_job(tmp_path):
    raw = make_raw(tmp_path / "h.raw")
    token = hypersdk.CancelToken()
    token.cancel()
    with pytest.raises(hypersdk.CancelledError):
        hypersdk.run("image.convert", source=raw, source_format="raw", destination=str(tmp_path / "h.raw.out"), output_format="raw",
                     cancel=token)


def test_secrets_stay_out_of_what_a_job_shows():
    secret = "pa55-" + os.urandom(6).hex()
    # A closed port on loopback: the export fails to connect, quickly, with one attempt.
    job = hypersdk.start("export.run", vm="/DC0/vm/x", output_dir="/nonexistent/out",
                         connection={"url": "https://127.0.0.1:9/sdk", "username": "u", "password": secret, "max_attempts": 1})
    with pytest.raises(hypersdk.Error) as e:
        job.wait()
    info = job.info()
    assert info["request"]["connection"]["password"] == "********"
    assert secret not in str(info) and secret not in str(e.value)


def test_the_stubs_type_check():
    """The generated __init__.pyi accepts real use and refuses misuse (mypy)."""
    pkg = pathlib.Path(hypersdk.__file__).parent
    assert (pkg / "__init__.pyi").exists() and (pkg / "py.typed").exists()
    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    if pkg.parent.name not in ("site-packages", "dist-packages"):
        # The in-tree build: point mypy at it. An installed package is found where it is installed
        # (mypy refuses site-packages on MYPYPATH).
        env["MYPYPATH"] = str(pkg.parent)
    ok = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir=/dev/null", "--strict", "--python-version", "3.11",
                         str(HERE / "typing_usage.py")], capture_output=True, text=True, env=env, cwd=HERE)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir=/dev/null", "--python-version", "3.11", str(HERE / "typing_misuse.py")],
                         capture_output=True, text=True, env=env, cwd=HERE)
    assert bad.returncode == 1
    # Every line marked "# error" is reported, and nothing else.
    expected = {i + 1 for i, line in enumerate((HERE / "typing_misuse.py").read_text().splitlines()) if line.endswith("# error")}
    reported = {int(line.split(":")[1]) for line in bad.stdout.splitlines() if ": error:" in line}
    assert reported == expected, bad.stdout


def test_deltas_and_chains_from_python(tmp_path):
    """The backup operations are reached like any other: a local diff as a qcow2 overlay, then
    the chain described, verified and flattened."""
    base = make_raw(tmp_path / "base.raw", seed=11)
    data = bytearray(pathlib.Path(base).read_bytes())
    data[1 * MiB:1 * MiB + 4096] = b"\x5a" * 4096
    new = tmp_path / "new.raw"
    new.write_bytes(bytes(data))
    hypersdk.run("image.convert", source=base, source_format="raw", destination=str(tmp_path / "base.qcow2"), output_format="qcow2")
    delta = hypersdk.run("delta.create", base=base, new=str(new), format="raw", backing="base.qcow2", output=str(tmp_path / "d.qcow2"))
    assert delta["backing_format"] == "qcow2" and delta["changed_bytes"] == 64 * 1024 and delta["changed_runs"] == 1
    links = hypersdk.run("chain.info", path=str(tmp_path / "d.qcow2"))["links"]
    assert [pathlib.Path(link["file"]).name for link in links] == ["d.qcow2", "base.qcow2"]
    report = hypersdk.run("chain.verify", path=str(tmp_path / "d.qcow2"))
    assert report["ok"] and report["problems"] == []
    hypersdk.run("chain.flatten", path=str(tmp_path / "d.qcow2"), output=str(tmp_path / "flat.raw"), output_format="raw")
    assert (tmp_path / "flat.raw").read_bytes() == bytes(data)
    with pytest.raises(hypersdk.Error) as e:
        hypersdk.run("backup.list", repo=str(tmp_path / "no-such-repo"))
    assert e.value.code == "not_found"
