"""hypervisord's dashboard (tools/hypervisord/dashboard) in a real browser: Debian's chromium and
chromium-driver driven by Selenium, headless, against a daemon started here with API keys, a user
and the vSphere simulator. Sign-in with a password and with a key, an export started from the VMs
view and followed in the jobs view to completed, cancel from the page, a schedule created with its
preview, a CBT backup and a restore from the backups view, no secret in any view, and screenshots of
every view at 1280x800 and 390x844 under build/dashboard-screenshots/ for a person to look at."""
import base64
import datetime
import json
import os
import pathlib
import random
import re
import signal
import threading
import time

import pytest

os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download a driver or browser

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from conftest import MiB, ROOT, qemu_img, write_pattern  # noqa: E402
from daemon_harness import Daemon  # noqa: E402
from vsphere_sim import PASSWORD, USERNAME, Simulator  # noqa: E402

CHROMIUM = os.environ.get("HSDK_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("HSDK_CHROMEDRIVER", "/usr/bin/chromedriver")
DASHBOARD = ROOT / "tools" / "hypervisord" / "dashboard"
SHOTS = ROOT / "build" / "dashboard-screenshots"

VM = "/DC0/vm/DC0_H0_VM0"          # 64 MiB of random data: an export that takes a moment
VM1 = "/DC0/vm/DC0_H0_VM1"         # the one the cancel test stalls
CBT_VM = "DC0_C0_RP0_VM0"          # planted disk with changed block tracking, for backups
OPERATOR_KEY = "dashboard-operate-key-0123456789"
READER_KEY = "dashboard-read-key-0123456789ab"
ALICE_PASSWORD = "alice-dashboard-pass-42"
SECRETS = (PASSWORD, OPERATOR_KEY, READER_KEY, ALICE_PASSWORD)
WIDE = (1280, 800)
PHONE = (390, 844)
VIEWS = ("jobs", "vms", "schedules", "backups")


# ---- the simulator, the daemon and the browser ------------------------------------------------------

@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    d = tmp_path_factory.mktemp("dash-image")
    raw = d / "big.raw"
    raw.write_bytes(random.Random(2101).randbytes(64 * MiB))
    big = d / "big.vmdk"
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, big)
    small_raw = write_pattern(d / "small.raw", 8 * MiB, seed=2102)
    small = d / "small.vmdk"
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", small_raw, small)
    s = Simulator(tmp_path_factory.mktemp("dash-sim"))
    s.upload("[LocalDS_0] DC0_H0_VM0/disk1.vmdk", big.read_bytes())
    s.upload("[LocalDS_0] DC0_H0_VM1/disk1.vmdk", small.read_bytes())
    s.cbt_raw = write_pattern(d / "cbt.raw", 4 * MiB, seed=2103)
    s.control(plant_disk={"vm": CBT_VM, "raw": str(s.cbt_raw)}, power_on=["DC0_H0_VM0", "DC0_H0_VM1"])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, sim):
    work = tmp_path_factory.mktemp("dash-daemon")
    exports = work / "exports"
    exports.mkdir()
    d = Daemon(work, {
        "daemon": {"workers": 2},
        "auth": {"api_keys": [{"name": "operator", "key": OPERATOR_KEY, "role": "operate"},
                              {"name": "reader", "key": READER_KEY, "role": "read"}],
                 "users": [{"username": "alice", "password": ALICE_PASSWORD, "role": "operate"}]},
        "providers": {"vsphere": {"url": sim.url, "username": USERNAME, "password_env": "HSDK_TEST_PASSWORD", "ca_file": sim.ca_file}},
        "export": {"base_path": str(exports)},
    }, args=["--dashboard-dir", str(DASHBOARD)], env={"HSDK_TEST_PASSWORD": PASSWORD})
    d.exports = exports
    yield d
    d.stop()


AUTH = {"X-API-Key": OPERATOR_KEY}


def api(daemon, method, path, body=None):
    status, answer, _ = daemon.request(method, path, body=body, headers=AUTH)
    assert status < 300, (method, path, status, answer)
    return answer


class Dashboard:
    """The page in one headless Chromium: waits, clicks and looks the way a person would."""

    def __init__(self, driver, daemon):
        self.driver = driver
        self.daemon = daemon
        self.viewport = WIDE

    def size(self, width, height):
        self.viewport = (width, height)
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})

    def wait(self, condition, what, timeout=30):
        def attempt(_):
            try:
                return condition()
            except StaleElementReferenceException:
                return False
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(attempt)
        except TimeoutException:
            raise AssertionError(f"timed out waiting for {what}") from None

    def css(self, selector):
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector):
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def shown(self, selector):
        found = self.all(selector)
        return found[0] if found and found[0].is_displayed() else None

    def text(self, selector):
        return self.css(selector).text

    def open(self, view):
        link = self.css(f'#views-nav a[data-view="{view}"]')
        link.send_keys(Keys.ENTER)  # keyboard, as a person without a mouse would
        self.wait(lambda: self.shown(f"#view-{view}") and link.get_attribute("aria-current") == "page", f"the {view} view")

    def fill(self, element, value):
        element.clear()
        element.send_keys(value)

    def sign_in_with_key(self, key):
        self.fill(self.css("#login-apikey"), key)
        self.css("#login-apikey").send_keys(Keys.ENTER)
        self.wait(lambda: self.shown("#who"), "the signed-in page")

    def job_row(self, job_id):
        return f'tbody.job[data-job-id="{job_id}"]'

    def job_state(self, job_id):
        """(state word, percent of the progress bar) as the page shows them; None before the row exists."""
        found = self.job_sample(job_id)
        return found and found[:2]

    def job_sample(self, job_id):
        """[state, percent, the texts of the number cells, where the row's parts are drawn (and how big)]."""
        return self.driver.execute_script(
            "const b = document.querySelector(arguments[0]); if (!b) return null;"
            "const box = (s) => { const r = b.querySelector(s).getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; };"
            "const at = (s) => box(s).slice(0, 2);"
            "return [b.querySelector('.badge').textContent,"
            "  Number(b.querySelector('[role=progressbar]').getAttribute('aria-valuenow')),"
            "  ['.col-bytes', '.col-rate', '.col-eta', '.pct'].map((s) => b.querySelector(s).textContent),"
            "  [box('.job-main'), box('.bar'), box('.pct'), box('.job-detail'), at('.col-bytes span'), at('.col-rate span'), at('.col-eta span')]];",
            self.job_row(job_id))

    def console_errors(self):
        """Errors the page logged since the last call (script errors, refused styles or scripts of the
        Content-Security-Policy), less the failed loads of answers that tests ask for (401, 400)."""
        return [e["message"] for e in self.driver.get_log("browser")
                if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]]

    def no_secret(self, where):
        source = self.driver.page_source
        for secret in SECRETS:
            assert secret not in source, f"a secret is in the page ({where})"

    def screenshot(self, name):
        """The viewport as a person sees it, and the whole page (…-full.png) below it."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        width, height = self.viewport
        self.driver.save_screenshot(str(SHOTS / f"{name}-{width}x{height}.png"))
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        full = metrics["cssContentSize"]
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": max(height, full["height"]), "scale": 1}})
        (SHOTS / f"{name}-{width}x{height}-full.png").write_bytes(base64.b64decode(shot["data"]))


@pytest.fixture(scope="module")
def page(daemon):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                "--disable-extensions", "--lang=en-US", "--window-size=1280,800"):
        options.add_argument(arg)
    for old in SHOTS.glob("*.png") if SHOTS.exists() else ():
        old.unlink()  # the pictures are those of this run
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    p = Dashboard(driver, daemon)
    p.size(*WIDE)
    yield p
    driver.quit()


@pytest.fixture(autouse=True)
def clean_sim(sim):
    sim.control(faults={}, reset_log=True)
    yield
    sim.control(faults={})


# ---- sign-in ---------------------------------------------------------------------------------------

def test_the_page_asks_for_credentials_and_signs_in_with_a_password_or_a_key(page, daemon):
    page.driver.get(daemon.url + "/")
    assert page.driver.current_url == daemon.url + "/dashboard/"
    page.wait(lambda: page.shown("#login"), "the sign-in form")
    assert not page.shown("#views-nav") and not page.shown("#status-strip")
    for size in (WIDE, PHONE):
        page.size(*size)
        page.screenshot("login")
    page.size(*WIDE)

    page.fill(page.css("#login-apikey"), "not-a-key-of-this-daemon-000")
    page.css("#login-apikey").send_keys(Keys.ENTER)
    page.wait(lambda: "does not know this API key" in page.text("#login-message"), "the refusal")
    assert page.css("#login-apikey").get_attribute("value") == ""

    page.fill(page.css("#login-username"), "alice")
    page.fill(page.css("#login-pass"), ALICE_PASSWORD)
    page.css("#login-pass").send_keys(Keys.ENTER)
    page.wait(lambda: page.shown("#who") and page.text("#who-name") == "alice (operate)", "alice signed in")
    token = page.driver.execute_script("return sessionStorage.getItem('hypervisord.token')")
    assert token and token != ALICE_PASSWORD
    page.no_secret("signed in as alice")
    page.css("#logout").click()
    page.wait(lambda: page.shown("#login") and "signed out" in page.text("#login-message"), "the signed-out page")
    # The session is over at the daemon too, not only forgotten by the page.
    assert daemon.get("/status", headers={"Authorization": f"Bearer {token}"})[0] == 401
    assert not page.all("#view-jobs tbody")

    page.sign_in_with_key(OPERATOR_KEY)
    assert page.text("#who-name") == "operator (operate)"
    page.wait(lambda: page.text("#st-live") == "live", "the WebSocket (?access_token=)")
    page.wait(lambda: page.text("#st-version") not in ("", "—"), "the version in the status strip")
    assert re.fullmatch(r"\d+:\d\d:\d\d", page.text("#st-uptime"))
    assert re.fullmatch(r"[\d.]+ (B|KiB|MiB|GiB|TiB|PiB) free", page.text("#st-space"))
    page.no_secret("signed in with the key")
    assert page.console_errors() == []


# ---- an export from the VMs view, followed in the jobs view ------------------------------------------

def pause_mid_transfer(daemon, sim, stop):
    """Holds the simulator still (SIGSTOP) for 2.5 s once a running export has moved 8 MiB, as a slow
    vCenter would: the daemon sends progress to the page at most every 2 s, and the 64 MiB export
    would otherwise finish before a second progress message."""
    while not stop.is_set():
        status, q, _ = daemon.request("GET", "/jobs/query?status=running", headers=AUTH)
        running = [j for j in q["jobs"] if j["vm_path"] == VM] if status == 200 else []
        if running and running[0]["progress"]["bytes_downloaded"] >= 8 * MiB:
            os.kill(sim.proc.pid, signal.SIGSTOP)
            try:
                stop.wait(2.5)
            finally:
                os.kill(sim.proc.pid, signal.SIGCONT)
            return
        time.sleep(0.01)


def test_an_export_started_from_the_vms_view_runs_to_completed_in_the_jobs_view(page, daemon, sim, tmp_path):
    page.open("vms")
    row = f'tbody.vm[data-vm-path="{VM}"]'
    page.wait(lambda: page.shown(row), "the VM list")
    assert page.text(f"{row} .badge") == "on"
    page.css(f"{row} button[aria-controls]").click()
    form = page.wait(lambda: page.shown(f"{row} form.vm-form"), "the export form")
    assert form.find_element(By.NAME, "output_dir").get_attribute("value") == str(daemon.exports / "DC0_H0_VM0")
    out = tmp_path / "export"
    Select(form.find_element(By.NAME, "format")).select_by_value("vmdk")
    page.fill(form.find_element(By.NAME, "output_dir"), str(out))

    stop = threading.Event()
    pauser = threading.Thread(target=pause_mid_transfer, args=(daemon, sim, stop), daemon=True)
    pauser.start()
    try:
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        message = page.wait(lambda: re.search(r"Export job (\S+) submitted", form.find_element(By.CSS_SELECTOR, ".message").text),
                            "the submitted message")
        job_id = message.group(1)
        form.find_element(By.LINK_TEXT, "Follow it in Jobs").click()
        page.wait(lambda: page.shown("#view-jobs"), "the jobs view")
        samples = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            now = page.job_sample(job_id)
            if now and (not samples or samples[-1][:3] != now[:3]):
                samples.append(now)
            if now and now[0] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.05)
    finally:
        stop.set()
        pauser.join()
    seen = [s[:2] for s in samples]
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "export-progress-observed.json").write_text(json.dumps([s[:3] for s in samples], indent=1))
    percents = [p for _, p in seen]
    assert seen and seen[-1] == ["completed", 100], seen
    assert percents == sorted(percents), f"the progress bar went back: {seen}"
    assert any(0 < p < 100 and state == "running" for state, p in seen), f"no progress between 0 and 100 was shown: {seen}"
    # No layout shift while the numbers change: every part of a running job's row stays where it was.
    running = [s for s in samples if s[0] == "running"]
    assert len(running) >= 2 and all(s[3] == running[0][3] for s in running), [s[3] for s in running]
    assert any(re.fullmatch(r"[\d.]+ MB/s", s[2][1]) for s in running) and any(re.fullmatch(r"\d+:\d\d:\d\d", s[2][2]) for s in running), running

    job = api(daemon, "GET", f"/jobs/{job_id}")
    assert job["status"] == "completed" and job["definition"]["format"] == "vmdk"
    body = page.job_row(job_id)
    assert page.text(f"{body} .col-vm") == VM and page.text(f"{body} .col-format") == "vmdk"
    assert page.text(f"{body} .col-provider") == "vsphere"
    assert re.fullmatch(r"[\d.]+ MiB / [\d.]+ MiB", page.text(f"{body} .col-bytes"))
    files = [li.text for li in page.all(f"{body} .files li")]
    assert any(f.endswith(".vmdk") and f.startswith(str(out)) for f in files), files
    page.css(f"{body} details.log summary").click()
    page.wait(lambda: "job.completed" in page.text(f"{body} .log-lines"), "the job's log lines")
    assert "export.run started" in page.text(f"{body} .log-lines")


# ---- cancel from the page ------------------------------------------------------------------------

def test_cancel_from_the_page_stops_the_export_and_leaves_no_partial_output(page, daemon, sim, tmp_path):
    sim.control(faults={"nfc_stall_after": 300_000})
    out = tmp_path / "stalled"
    job_id = api(daemon, "POST", "/jobs/submit", {"name": "stalled", "vm_path": VM1, "output_dir": str(out), "format": "vmdk"})["job_id"]
    page.open("jobs")
    body = page.job_row(job_id)
    page.wait(lambda: (page.job_state(job_id) or [""])[0] == "running", "the running job in the page")
    deadline = time.monotonic() + 30
    while not sim.state()["nfc_requests"] and time.monotonic() < deadline:
        time.sleep(0.02)
    cancel = page.css(f"{body} button.danger")
    assert cancel.is_displayed() and cancel.get_attribute("aria-label") == "Cancel job stalled"
    cancel.click()
    page.wait(lambda: (page.job_state(job_id) or [""])[0] == "cancelled", "the cancelled state in the page", timeout=40)
    assert not page.css(f"{body} button.danger").is_displayed()
    job = api(daemon, "GET", f"/jobs/{job_id}")
    assert job["status"] == "cancelled"
    assert not (out.exists() and [p for p in out.iterdir() if p.suffix == ".vmdk"])
    assert sim.state()["snapshots"]["DC0_H0_VM1"] == 0


# ---- schedules -----------------------------------------------------------------------------------

def preview_times(page):
    return [datetime.datetime.fromisoformat(t.get_attribute("datetime").replace("Z", "+00:00")).astimezone()
            for t in page.all("#schedule-preview time")]


def test_a_schedule_created_on_the_page_exists_in_the_daemon(page, daemon, tmp_path):
    page.open("schedules")
    page.wait(lambda: len(preview_times(page)) == 5, "the preview of the default schedule")
    cron = page.css("#schedule-cron")
    page.fill(cron, "61 * * * *")
    page.wait(lambda: page.shown("#schedule-preview .preview-error") and "61" in page.text("#schedule-preview .preview-error"),
              "the parse error")
    assert cron.get_attribute("aria-invalid") == "true" and not preview_times(page)
    page.fill(cron, "30 4 * * *")
    page.wait(lambda: len(preview_times(page)) == 5, "the preview of 30 4 * * *")
    runs = preview_times(page)
    assert all((t.hour, t.minute) == (4, 30) for t in runs) and runs == sorted(runs)

    page.fill(page.css("#schedule-name"), "nightly-web")
    page.fill(page.css("#schedule-vm"), VM)
    page.fill(page.css("#schedule-output"), str(tmp_path / "nightly"))
    Select(page.css("#schedule-format")).select_by_value("qcow2")
    page.css("#schedule-form button[type=submit]").click()
    page.wait(lambda: "Schedule nightly-web created" in page.text("#schedule-form .message"), "the created message")

    made = [s for s in api(daemon, "GET", "/schedules") if s["name"] == "nightly-web"]
    assert len(made) == 1
    s = made[0]
    assert s["schedule"] == "30 4 * * *" and s["enabled"] is True
    assert s["job_template"]["vm_path"] == VM and s["job_template"]["format"] == "qcow2"
    assert s["job_template"]["output_dir"] == str(tmp_path / "nightly")

    row = f'#view-schedules tr[data-schedule-id="{s["id"]}"]'
    page.wait(lambda: page.shown(row), "the new schedule in the list")
    page.css(f"{row} button[aria-label^=Disable]").click()
    page.wait(lambda: page.text(f"{row} .badge") == "disabled", "the disabled state")
    assert api(daemon, "GET", f"/schedules/{s['id']}")["enabled"] is False
    page.css(f"{row} button[aria-label^=Enable]").click()
    page.wait(lambda: page.text(f"{row} .badge") == "enabled", "the enabled state")
    assert api(daemon, "GET", f"/schedules/{s['id']}")["enabled"] is True
    page.css(f"{row} button[aria-label^=Run]").click()
    started = page.wait(lambda: re.search(r"started job (\S+)\.", page.text("#view-schedules > .message")), "the triggered job")
    job = daemon.wait_job(started.group(1), headers=AUTH)
    assert job["status"] == "completed" and job["schedule_id"] == s["id"], job


# ---- backups -------------------------------------------------------------------------------------

def test_a_cbt_backup_started_from_the_vm_form_lands_in_the_repository(page, daemon, tmp_path):
    repo = daemon.exports / "backups"
    assert api(daemon, "POST", "/cbt/enable", {"vm_path": f"/DC0/vm/{CBT_VM}"})["success"] is True
    page.open("vms")
    row = f'tbody.vm[data-vm-path="/DC0/vm/{CBT_VM}"]'
    page.wait(lambda: page.shown(row), "the VM list")
    page.css(f"{row} button[aria-controls]").click()
    form = page.wait(lambda: page.shown(f"{row} form.vm-form"), "the export form")
    form.find_element(By.CSS_SELECTOR, "input[value=backup]").click()
    assert form.find_element(By.NAME, "repo").get_attribute("value") == str(repo)
    assert not form.find_element(By.NAME, "output_dir").is_displayed()
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    message = page.wait(lambda: re.search(r"Backup job (\S+) submitted", form.find_element(By.CSS_SELECTOR, ".message").text),
                        "the submitted message")
    job = daemon.wait_job(message.group(1), headers=AUTH)
    assert job["operation"] == "backup.run" and job["definition"]["repo"] == str(repo)
    assert job["status"] == "completed", job


@pytest.fixture(scope="module")
def backup_repo(daemon):
    """A repository with one point of CBT_VM, made over the API: a backup policy's round uses the
    configured vCenter."""
    repo = daemon.exports / "policy-repo"
    api(daemon, "POST", "/cbt/enable", {"vm_path": f"/DC0/vm/{CBT_VM}"})
    policy = api(daemon, "POST", "/backup-policies/create", {"name": "dash-policy", "vm_filter": {"name": CBT_VM},
                                                             "schedule": "0 3 * * *", "retention": {"count": 5}, "repo": str(repo)})
    trigger = api(daemon, "POST", f"/schedules/{policy['id']}/trigger")
    for j in trigger["job_ids"]:
        assert daemon.wait_job(j, headers=AUTH)["status"] == "completed"
    return repo


def test_the_backups_view_lists_points_and_restores_one(page, daemon, sim, backup_repo, tmp_path):
    repo = backup_repo
    page.open("backups")
    page.fill(page.css("#backups-repo"), str(repo))
    page.css("#backups-repo").send_keys(Keys.ENTER)
    section = page.wait(lambda: page.shown("#backup-results section.backup-vm"), "the repository's VMs")
    assert CBT_VM in section.find_element(By.TAG_NAME, "h2").text
    points = section.find_elements(By.CSS_SELECTOR, "tbody.point")
    assert len(points) == 1
    point_id = points[0].get_attribute("data-point-id")
    points[0].find_element(By.CSS_SELECTOR, "button[aria-controls]").click()
    form = page.wait(lambda: page.shown("#backup-results form.restore-form"), "the restore form")
    out = tmp_path / "restored"
    Select(form.find_element(By.NAME, "format")).select_by_value("raw")
    page.fill(form.find_element(By.NAME, "output_dir"), str(out))
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    message = page.wait(lambda: re.search(r"Restore job (\S+) submitted", form.find_element(By.CSS_SELECTOR, ".message").text),
                        "the submitted message")
    job = daemon.wait_job(message.group(1), headers=AUTH)
    assert job["status"] == "completed" and job["result"]["point"] == point_id, job
    restored = [pathlib.Path(f) for f in job["result"]["files"]]
    assert len(restored) == 1 and restored[0].parent == out
    qemu_img("compare", "-f", "raw", "-F", "raw", restored[0], sim.cbt_raw)


# ---- no secret anywhere, and the screenshots --------------------------------------------------------

def show_everything(page, view, repo):
    """Brings a view to the state worth a screenshot: lists loaded, one form open, one log open."""
    page.open(view)
    if view == "jobs":
        page.wait(lambda: page.all("#view-jobs tbody.job"), "the job list")
        for log in page.all("#view-jobs tbody.job details.log")[:2]:
            if log.is_displayed() and log.get_attribute("open") is None:
                log.find_element(By.TAG_NAME, "summary").click()
        page.wait(lambda: page.all("#view-jobs .log-lines li"), "a job's log")
    elif view == "vms":
        page.wait(lambda: page.all("#view-vms tbody.vm"), "the VM list")
        first = page.css("#view-vms tbody.vm button[aria-controls]")
        if first.get_attribute("aria-expanded") != "true":
            first.click()
    elif view == "schedules":
        page.wait(lambda: page.all("#view-schedules tr[data-schedule-id]") and len(preview_times(page)) == 5, "schedules and preview")
    elif view == "backups":
        if page.css("#backups-repo").get_attribute("value") != str(repo):
            page.fill(page.css("#backups-repo"), str(repo))
            page.css("#backups-form button[type=submit]").click()
        page.wait(lambda: page.all("#backup-results tbody.point"), "the repository's points")
    page.driver.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.5)  # let progress bars and fonts settle for the picture


def test_no_view_shows_a_secret_and_every_view_is_photographed_at_both_sizes(page, daemon, backup_repo, tmp_path):
    # Secrets the daemon holds: a job and a schedule submitted with the vCenter password (the API
    # masks them), the keys and alice's password of the config.
    vcenter = {"server": "https://127.0.0.1:9/sdk", "username": USERNAME, "password": PASSWORD, "insecure": True, "max_attempts": 1}
    job_id = api(daemon, "POST", "/jobs/submit", {"name": "with-password", "vm_path": VM, "output_dir": str(tmp_path / "o"), "vcenter": vcenter})["job_id"]
    api(daemon, "POST", "/schedules", {"name": "with-password", "schedule": "@daily", "enabled": False,
                                       "job_template": {"vm_path": VM, "output_dir": str(tmp_path / "s"), "vcenter": vcenter}})
    daemon.wait_job(job_id, headers=AUTH)
    for width, height in (WIDE, PHONE):
        page.size(width, height)
        for view in VIEWS:
            show_everything(page, view, backup_repo)
            page.no_secret(f"{view} at {width}x{height}")
            page.screenshot(view)
            if width < 600:
                scroll, client = page.driver.execute_script(
                    "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
                assert scroll <= client, f"the {view} view scrolls sideways at {width} px: {scroll} > {client}"
    page.size(*WIDE)
    assert page.console_errors() == []
    assert PASSWORD not in json.dumps(api(daemon, "GET", "/jobs/query?all=true"))
    for secret in (OPERATOR_KEY, READER_KEY):
        assert secret not in daemon.read_log()
    for name in VIEWS + ("login",):
        for width, height in (WIDE, PHONE):
            assert (SHOTS / f"{name}-{width}x{height}.png").stat().st_size > 1000


# ---- without a WebSocket, and without authentication -----------------------------------------------

def test_without_a_websocket_the_page_polls_the_jobs(page, daemon, tmp_path):
    script = page.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {
        "source": "window.WebSocket = function () { throw new Error('no WebSocket here'); };"})
    try:
        page.driver.refresh()  # the key is still in this tab's session storage
        page.wait(lambda: page.shown("#who") and page.text("#st-live") == "polling", "the polling mode")
        page.open("jobs")
        job_id = api(daemon, "POST", "/jobs/submit", {"name": "polled", "vm_path": "/DC0/vm/missing", "output_dir": str(tmp_path / "o")})["job_id"]
        page.wait(lambda: (page.job_state(job_id) or [""])[0] == "failed", "the job's end seen by polling")
        assert "not found" in page.text(f"{page.job_row(job_id)} .job-error").lower()
    finally:
        page.driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]})
    page.driver.refresh()
    page.wait(lambda: page.shown("#who") and page.text("#st-live") == "live", "the WebSocket again")


def test_a_daemon_without_authentication_opens_the_page_directly(page, tmp_path):
    d = Daemon(tmp_path / "open", {}, args=["--no-auth", "--dashboard-dir", str(DASHBOARD)])
    try:
        page.driver.get(d.url + "/dashboard/")
        page.wait(lambda: page.shown("#who"), "the page without a sign-in form")
        assert page.text("#who-name") == "anonymous (admin)" and not page.shown("#logout") and not page.shown("#login")
        page.wait(lambda: page.text("#st-live") == "live", "the WebSocket without a token")
        assert page.text("#st-space") == "not set"
    finally:
        d.stop()
