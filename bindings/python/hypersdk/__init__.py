"""libhypersdk for Python: open, convert, compare and check virtual disks; read OVF/OVA; write
libvirt domains and hyper2kvm manifests.

Errors are raised as subclasses of hypersdk.Error (CorruptImageError, NotFoundError, ...), each
with .code (the error's name) and .status (the C ABI number).
"""
from ._hypersdk import *  # noqa: F401,F403
from ._hypersdk import __version__  # noqa: F401
