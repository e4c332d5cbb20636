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


def client_usage() -> None:
    from hypersdk.client import Job as ClientJob
    client = hypersdk.HyperSDK("http://127.0.0.1:8080", api_key="key", timeout=10, verify_ssl=False)
    token: str = client.login("admin", "secret")
    definition = hypersdk.JobDefinition(vm_path="/DC0/vm/web", output_dir="/exports", format=hypersdk.ExportFormat.OVA,
                                        vcenter=hypersdk.VCenterConfig("vc.example", "admin", "pw", insecure=True),
                                        options=hypersdk.ExportOptions(parallel_downloads=2))
    job_id: str = client.submit_job(definition)
    ids: list[str] = client.submit_jobs([definition, {"vm_path": "/DC0/vm/db"}])
    job: ClientJob = client.get_job(job_id)
    done: bool = job.status in (hypersdk.JobStatus.COMPLETED, hypersdk.JobStatus.FAILED)
    percent: float = job.progress.percent_complete if job.progress else 0.0
    files: list[str] = job.result.files if job.result else []
    running = client.query_jobs(status=[hypersdk.JobStatus.RUNNING], limit=5)
    progress: hypersdk.JobProgress = client.get_job_progress(running[0].definition.id or job_id)
    logs: str = client.get_job_logs(job_id)
    eta: str = client.get_job_eta(job_id)
    cancelled: bool = client.cancel_job(job_id)
    status: hypersdk.DaemonStatus = client.status()
    vms = client.list_vms(hypersdk.VCenterConfig("vc", "u", "p").to_dict())
    schedule = client.create_schedule(hypersdk.ScheduledJob(name="nightly", schedule="0 2 * * *", job_template=definition))
    client.trigger_schedule(schedule.id or "")
    hooks: list[hypersdk.Webhook] = client.list_webhooks()
    try:
        client.enable_cbt("/DC0/vm/web")
    except hypersdk.APIError as e:
        print(e.status_code, e.route)
    except (hypersdk.AuthenticationError, hypersdk.JobNotFoundError, hypersdk.HyperSDKError):
        pass
    with hypersdk.HyperSDK() as local:
        health = local.health()["status"]
    print(token, ids, done, percent, files, progress.phase, logs, eta, cancelled, status.uptime, vms, hooks, health)
