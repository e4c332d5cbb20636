# Type-checked (never run) by test_ops.py with mypy --strict against the generated stubs.
import hypersdk


async def usage() -> None:
    info = hypersdk.run("image.info", {"path": "disk.qcow2"})
    size: int = info["virtual-size"]
    stats = hypersdk.run("image.convert", {"source": "a", "destination": "b", "output_format": "qcow2",
                                           "options": {"cluster_size": 65536}, "cache": "unsafe"})
    seconds: float = stats["seconds"]
    job = hypersdk.start("image.check", {"path": "disk.qcow2"})
    report = await job
    clean: bool = report["clean"]
    for event in job.events():
        done: int = event["bytes_done"]
        print(done, event["job_id"])
    vm = hypersdk.run("vm.load", path="vm.ova")
    xml: str = hypersdk.run("kvm.domain", {"vm": vm, "network_map": {"VM Network": "default"}})["xml"]
    listed = hypersdk.run("vsphere.vms.list", {"connection": {"url": "https://vc", "password_env": "VC_PASS"}})
    names = [v.get("name", "") for v in listed["vms"]]
    print(size, seconds, clean, xml, names, hypersdk.convert("a", "b", "raw")["bytes_read"])
