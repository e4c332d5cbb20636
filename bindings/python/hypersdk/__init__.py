"""libhypersdk for Python: every operation of the library's registry (hypersdk.run, hypersdk.start,
hypersdk.operations), and conveniences over them: open, convert, compare and check virtual disks;
read OVF/OVA; write libvirt domains and hyper2kvm manifests.

Errors are raised as subclasses of hypersdk.Error (CorruptImageError, NotFoundError, ...), each
with .code (the error's name) and .status (the C ABI number).

hypersdk.HyperSDK is the REST client of the original HyperSDK SDK (same methods and models) for
hypervisord, or, created without a URL, for the same service in this process (hypersdk.client).
"""
from ._hypersdk import (  # noqa: F401
    __version__,
    version,
    Error,
    CancelToken,
    Image,
    ImageWriter,
)
from . import _hypersdk as _native

# One class per status: NotFoundError, CorruptImageError, ...
globals().update({name: getattr(_native, name) for name in dir(_native) if name.endswith("Error")})

from ._api import (  # noqa: E402,F401
    Job,
    run,
    start,
    operations,
    configure_executor,
    executor_stats,
    open_image,
    probe_format,
    create_image,
    convert,
    compare,
    check,
    readable_formats,
    writable_formats,
    set_log_handler,
    load_vm,
    parse_ovf,
    write_ovf,
    kvm_domain_xml,
    kvm_manifest,
    write_json,
    verify_ova,
    list_ova,
)

# The REST client with the original HyperSDK SDK's API (hypersdk.client): HyperSDK(url) talks to
# hypervisord, HyperSDK() to the same service in this process. Its job model is hypersdk.client.Job;
# hypersdk.Job stays the library's job.
from .client import (  # noqa: E402,F401
    HyperSDK,
    AsyncHyperSDK,
    JobDefinition,
    VCenterConfig,
    ExportOptions,
    JobStatus,
    ExportFormat,
    ExportMethod,
    ScheduledJob,
    Webhook,
    DaemonStatus,
    JobProgress,
    JobResult,
    CarbonStatus,
    CarbonForecast,
    CarbonReport,
    CarbonZone,
    CarbonEstimate,
    HyperSDKError,
    AuthenticationError,
    JobNotFoundError,
    APIError,
)
