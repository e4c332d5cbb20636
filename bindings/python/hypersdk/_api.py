"""The Python face of the operation model: run/start/Job over the C ABI, and the functions that
existed before it, each a thin request to one operation. Requests and results are the JSON the
schemas in the repository's api/ folder describe (docs/api.md)."""
import asyncio
import collections
import json
import os
import tempfile
import threading
import weakref

from . import _hypersdk as _native

_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
_EVENTS_KEPT = 1000  # a Job keeps at most this many progress events for events()

# Jobs still running are kept alive here, so that dropping the last reference to a started job does
# not cancel it; finished ones leave at the next start() or wait(). The native callbacks hold the Job
# only weakly, so a finished Job nobody refers to is freed.
_running = set()
_running_lock = threading.Lock()


def _request(request, fields):
    merged = dict(request or {})
    merged.update(fields)
    return json.dumps(merged)


def run(operation, request=None, *, progress=None, cancel=None, **fields):
    """Runs an operation and returns its result (a dict). The request is a dict and/or keyword
    fields. progress(event) is called with each progress event and may return True to cancel; an
    exception it raises cancels the operation and is raised here. cancel is a CancelToken."""
    return json.loads(_native._run(operation, _request(request, fields), progress, None, cancel))


def start(operation, request=None, *, progress=None, cancel=None, **fields):
    """Starts an operation as a job and returns the Job (await it, or call wait())."""
    return Job(operation, _request(request, fields), progress, cancel)


class Job:
    """A running operation: .id, .operation, .state, .wait(), .cancel(), .events(), .info(), and
    `await job` in asyncio (both give the result, or raise the job's error)."""

    def __init__(self, operation, request_json, progress=None, cancel=None):
        self.operation = operation
        self._user_progress = progress
        self._events = collections.deque(maxlen=_EVENTS_KEPT)
        self._changed = threading.Condition()
        self._done = False
        self._listeners = []
        ref = weakref.ref(self)

        def on_progress(event):
            job = ref()
            return job._on_progress(event) if job is not None else None

        def on_finished():
            job = ref()
            if job is not None:
                job._on_finished()

        self._native = _native._Job(operation, request_json, on_progress, None, on_finished, cancel, "info")
        with _running_lock:
            for j in [j for j in _running if j._done]:
                _running.discard(j)
            _running.add(self)

    @property
    def id(self):
        return self._native.id

    @property
    def state(self):
        """'queued', 'running', 'succeeded', 'failed' or 'cancelled'."""
        return _STATES[self._native.state]

    def _on_progress(self, event):
        with self._changed:
            self._events.append(event)
            self._changed.notify_all()
        if self._user_progress is not None:
            return self._user_progress(event)
        return None

    def _on_finished(self):
        with self._changed:
            self._done = True
            listeners, self._listeners = self._listeners, []
            self._changed.notify_all()
        for fn in listeners:
            fn()

    def cancel(self):
        """From any thread: a queued job is cancelled at once, a running one stops and cleans up."""
        self._native.cancel()

    def wait(self, timeout=None):
        """The result; raises the job's error, or TimeoutError if it has not finished in time."""
        if not self._native.wait(timeout):
            raise TimeoutError(f"job {self.id} ({self.operation}) has not finished within {timeout} s")
        with _running_lock:
            _running.discard(self)
        return json.loads(self._native.result())

    def result(self):
        return self.wait()

    def info(self):
        """{id, operation, state, request (secrets masked), progress, error?, created, started?, finished?}"""
        return json.loads(self._native.info())

    def events(self):
        """Yields progress events as they come, until the job has finished."""
        while True:
            with self._changed:
                while not self._events and not self._done:
                    self._changed.wait()
                if not self._events and self._done:
                    return
                event = self._events.popleft()
            yield event

    def __await__(self):
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def settle():
            if not future.done():
                future.set_result(None)

        def finished():
            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:
                pass  # the loop is closed: nobody awaits any more

        with self._changed:
            if self._done:
                settle()
            else:
                self._listeners.append(finished)
        yield from future.__await__()
        return self.wait()

    def __repr__(self):
        return f"<hypersdk.Job {self.operation} {self.id} {self.state}>"


def operations():
    """Every operation: {name: {summary, description, long_running, errors, request, result}}."""
    return {op["name"]: op for op in json.loads(_native._ops_json())["operations"]}


def configure_executor(max_jobs=0, worker_threads=0, io_threads=0):
    """Limits of the executor every job shares (0 keeps a limit)."""
    _native._configure_executor(max_jobs, worker_threads, io_threads)


def executor_stats():
    return json.loads(_native._executor_stats())


# ---- the functions that predate run(), as requests to operations --------------------------------

def _path(p):
    return os.fspath(p)


def _options_text(options):
    """-o options as qemu-img takes them: a dict ({"cluster_size": 65536, "lazy": True}) or text."""
    if options is None or isinstance(options, str):
        return options
    escape = lambda s: s.replace(",", ",,")
    parts = []
    for key, value in options.items():
        text = ("on" if value else "off") if isinstance(value, bool) else str(value)
        parts.append(f"{escape(str(key))}={escape(text)}")
    return ",".join(parts)


def _drop_none(d):
    return {k: v for k, v in d.items() if v is not None}


def open_image(path, format=None, allow_external_files=False, open_backing=True):
    """Open a disk image (format probed unless given; raw only when named)."""
    return _native._open_image(_path(path), format, allow_external_files, open_backing)


def probe_format(path):
    return run("image.probe", path=_path(path))["format"]


def create_image(path, virtual_size, format, options=None, compress=False, threads=0, overwrite=True):
    """Create an image to fill with ImageWriter.write(); it appears when closed (or the with-block ends cleanly)."""
    return _native._create_image(_path(path), virtual_size, format, _options_text(options), compress, threads, overwrite)


def convert(source, destination, output_format, options=None, compress=False, threads=0, source_format=None,
            allow_external_files=False, progress=None, cancel=None, overwrite=True, cache="none"):
    """Convert an image (image.convert). The destination appears only when complete. progress(dict)
    may return True to cancel. cache: 'none' (O_DIRECT for aligned data, fsync), 'writeback' (page
    cache, fsync) or 'unsafe' (page cache, no fsync: qemu-img convert's default)."""
    return run("image.convert", _drop_none({
        "source": _path(source), "destination": _path(destination), "output_format": output_format,
        "options": _options_text(options), "compress": compress, "threads": threads, "source_format": source_format,
        "allow_external_files": allow_external_files, "overwrite": overwrite, "cache": cache}), progress=progress, cancel=cancel)


def compare(a, b, a_format=None, b_format=None, strict=False):
    """{identical, first_difference, reason, a_virtual_size, b_virtual_size} (image.compare)."""
    return run("image.compare", _drop_none({"a": _path(a), "b": _path(b), "a_format": a_format, "b_format": b_format,
                                             "strict": strict}))


def check(path, format=None):
    """Metadata check (image.check): qemu-img check's keys (corruptions, leaks, check-errors, ...) and clean."""
    return run("image.check", _drop_none({"path": _path(path), "format": format}))


def readable_formats():
    return run("image.formats")["readable"]


def writable_formats():
    return run("image.formats")["writable"]


_LEVELS = {"trace": 0, "debug": 1, "info": 2, "warning": 3, "error": 4}


def set_log_handler(handler, level="info"):
    """Route library log lines to handler(level, message); None silences. A job's lines carry its id."""
    if level not in _LEVELS:
        raise ValueError("level must be trace, debug, info, warning or error")
    _native._set_log_sink(handler, _LEVELS[level])


def load_vm(path, virtual_system=""):
    """Read a VM description (.ovf, .ova, .json) into a VM-model dict (vm.load)."""
    return run("vm.load", _drop_none({"path": _path(path), "virtual_system": virtual_system or None}))


def parse_ovf(text, virtual_system=""):
    """An OVF descriptor's files, disks, networks and VM (ovf.parse)."""
    return run("ovf.parse", _drop_none({"text": text, "virtual_system": virtual_system or None}))


def _is_path(vm):
    return isinstance(vm, (str, bytes)) or hasattr(vm, "__fspath__")


_KVM_KEYS = ("name", "disk_dir", "disk_format", "network", "bridge", "network_map", "bridge_map", "windows_virtio",
             "machine", "ovmf_code", "ovmf_vars", "ovmf_code_secure", "ovmf_vars_secure", "nvram_dir", "virtual_system")


def _kvm_request(vm, kw):
    unknown = [k for k in kw if k not in _KVM_KEYS]
    if unknown:
        raise TypeError(f"unknown option '{unknown[0]}'")
    request = {k: (_path(v) if k == "disk_dir" else v) for k, v in kw.items() if v is not None}
    if _is_path(vm):
        request["from"] = _path(vm)
    else:
        request.pop("virtual_system", None)
        request["vm"] = vm
    return request


def write_ovf(vm, disk_files=()):
    """OVF 1.0 descriptor for a VM (dict or .ovf/.ova/.json path); disk_files lists (href, size) per disk."""
    if _is_path(vm):
        vm = load_vm(vm)
    return run("ovf.write", vm=vm, disk_files=[{"href": h, "size": s} for h, s in disk_files])["xml"]


def kvm_domain_xml(vm, **kw):
    """libvirt domain XML for a VM (dict or .ovf/.ova/.json path); options as in `hsdk kvm domain`."""
    return run("kvm.domain", _kvm_request(vm, kw))["xml"]


def kvm_manifest(vm, **kw):
    """hyper2kvm artifact manifest (dict); measures the disks in disk_dir."""
    return run("kvm.manifest", _kvm_request(vm, kw))


def write_json(path, document):
    """Write JSON atomically: a temporary file in the same folder, fsynced, renamed into place."""
    path = _path(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".hsdk-", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(document, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def verify_ova(path):
    """Check an OVA (or .ovf with its files) against its manifest; a report dict with 'ok' (ova.verify)."""
    return run("ova.verify", path=_path(path))


def list_ova(path):
    """The members of an OVA: [{name, offset, size}] (ova.list)."""
    return run("ova.list", path=_path(path))["members"]
