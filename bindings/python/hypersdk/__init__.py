"""libhypersdk for Python: every operation of the library's registry (hypersdk.run, hypersdk.start,
hypersdk.operations), and conveniences over them: open, convert, compare and check virtual disks;
read OVF/OVA; write libvirt domains and hyper2kvm manifests.

Errors are raised as subclasses of hypersdk.Error (CorruptImageError, NotFoundError, ...), each
with .code (the error's name) and .status (the C ABI number).
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
