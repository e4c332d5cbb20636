"""The package's build backend: scikit-build-core, after copying the library's sources into
vendor/libhypersdk when the package is built inside the libhypersdk repository. An sdist made here
therefore carries everything its build needs, and `pip install` of it works away from the repository
(it then finds vendor/ already filled and copies nothing)."""
import pathlib
import shutil

from scikit_build_core import build as _backend

HERE = pathlib.Path(__file__).resolve().parents[1]  # bindings/python
REPO = HERE.parents[1]
VENDOR = HERE / "vendor" / "libhypersdk"
# What the library's CMake project needs (tests, tools, examples and bindings are switched off).
PARTS = ("CMakeLists.txt", "cmake", "src", "include", "capi", "api", "pricing")


def _in_repository():
    return HERE.parent.name == "bindings" and (REPO / "capi" / "include" / "hypersdk.h").is_file() and (REPO / "src" / "ops").is_dir()


def _vendor():
    if not _in_repository():
        if not (VENDOR / "CMakeLists.txt").is_file():
            raise RuntimeError(f"{VENDOR} is missing: build this package from the libhypersdk repository or from its sdist")
        return
    if VENDOR.exists():
        shutil.rmtree(VENDOR)
    VENDOR.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, VENDOR / part, ignore=ignore)
        else:
            shutil.copy2(src, VENDOR / part)


def get_requires_for_build_sdist(config_settings=None):
    _vendor()
    return _backend.get_requires_for_build_sdist(config_settings)


def get_requires_for_build_wheel(config_settings=None):
    _vendor()
    return _backend.get_requires_for_build_wheel(config_settings)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    _vendor()
    return _backend.prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def build_sdist(sdist_directory, config_settings=None):
    _vendor()
    return _backend.build_sdist(sdist_directory, config_settings)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _vendor()
    return _backend.build_wheel(wheel_directory, config_settings, metadata_directory)
