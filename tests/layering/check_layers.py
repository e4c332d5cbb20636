#!/usr/bin/env python3
"""The layering rule of docs/architecture.md, checked: a source file of the library may include only
headers of its own layer or of a lower one. Layers, lowest first, and the folders (src/, capi/) and
public headers (include/hypersdk/) each holds are listed below; a folder or public header missing
from the list is an error too, so a new one must be placed.

usage: check_layers.py [REPO]     exit 1 naming every violation"""
import pathlib
import re
import sys

LAYERS = ["core", "io", "format", "convert", "ovf", "kvm", "providers", "export", "ops", "service", "capi"]

# Folders under src/ (and capi/) -> layer.
FOLDERS = {
    "core": "core", "vm": "core", "cost": "core",
    "io": "io", "xml": "io", "cloud": "io",
    "format": "format",
    "convert": "convert",
    "ovf": "ovf",
    "kvm": "kvm",
    "providers": "providers",
    "export": "export",
    "ops": "ops",
    "service": "service",
    "capi": "capi",
}

# Public headers (include/hypersdk/NAME) -> the layer that implements them.
PUBLIC = {
    "error.hpp": "core", "cancel.hpp": "core", "progress.hpp": "core", "log.hpp": "core", "executor.hpp": "core",
    "thread_pool.hpp": "core", "version.hpp": "core", "hash.hpp": "core", "vm.hpp": "core",
    "byte_source.hpp": "io", "artifact.hpp": "io",
    "disk.hpp": "format", "check.hpp": "format",
    "convert.hpp": "convert", "writer.hpp": "convert", "cbt.hpp": "convert",
    "ovf.hpp": "ovf",
    "kvm.hpp": "kvm",
    "vsphere.hpp": "providers", "provider.hpp": "providers",
    "export.hpp": "export", "backup.hpp": "export", "migrate.hpp": "export",
    "job.hpp": "ops", "ops.hpp": "ops",
    "service.hpp": "service",
    "hypersdk.hpp": "umbrella",  # for users only: no library source includes it
}

# Deliberate exceptions, each with its reason.
ALLOWED = {
    ("include/hypersdk/version.hpp", "hypersdk.h"):
        "the version numbers are defined once, in the C header (macros only; no capi code is used)",
}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def rank(layer):
    return LAYERS.index(layer)


def layer_of_file(repo, path):
    rel = path.relative_to(repo)
    if rel.parts[0] == "capi":
        return "capi"
    if rel.parts[0] == "include":
        return PUBLIC.get(rel.name)
    return FOLDERS.get(rel.parts[1])


def layer_of_include(repo, including, target, quoted):
    """The layer of an included header, or None for one outside the library (system, Boost, ...)."""
    if target.startswith("hypersdk/"):
        return PUBLIC.get(target[len("hypersdk/"):], "unknown public header")
    if target == "hypersdk.h":
        return "capi"
    if target == "hypersdk_plugin.h":
        return "providers"  # the plugin ABI: C declarations only, implemented by src/providers/plugin.cpp
    candidates = []
    if quoted:
        candidates.append(including.parent / target)
    candidates += [repo / "src" / target, repo / "capi" / target]
    for c in candidates:
        if c.is_file():
            return layer_of_file(repo, c.resolve())
    return None


def main():
    repo = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2]).resolve()
    problems = []
    for name in PUBLIC:
        if not (repo / "include" / "hypersdk" / name).is_file():
            problems.append(f"include/hypersdk/{name}: listed in check_layers.py but missing")
    for h in sorted((repo / "include" / "hypersdk").glob("*.hpp")):
        if h.name not in PUBLIC:
            problems.append(f"{h.relative_to(repo)}: a public header with no layer (add it to PUBLIC in {pathlib.Path(__file__).name})")
    for folder in sorted(p for p in (repo / "src").iterdir() if p.is_dir()):
        if folder.name not in FOLDERS:
            problems.append(f"src/{folder.name}/: a folder with no layer (add it to FOLDERS in {pathlib.Path(__file__).name})")
    files = [p for p in (repo / "src").rglob("*") if p.suffix in (".cpp", ".hpp", ".h")]
    files += [p for p in (repo / "capi").glob("*") if p.suffix in (".cpp", ".hpp")]
    files += list((repo / "include" / "hypersdk").glob("*.hpp"))
    checked = 0
    for f in sorted(files):
        own = layer_of_file(repo, f)
        if own is None or own == "umbrella":
            continue
        for m in INCLUDE.finditer(f.read_text(errors="replace")):
            target = m.group(2)
            theirs = layer_of_include(repo, f, target, m.group(1) == '"')
            checked += 1
            if theirs is None or (str(f.relative_to(repo)), target) in ALLOWED:
                continue
            if theirs == "umbrella":
                problems.append(f"{f.relative_to(repo)}: includes <hypersdk/hypersdk.hpp>, which is for users only")
            elif theirs == "unknown public header":
                problems.append(f"{f.relative_to(repo)}: includes unknown public header <{target}>")
            elif rank(theirs) > rank(own):
                problems.append(f"{f.relative_to(repo)} ({own}) includes {target} ({theirs}): a lower layer may not use a higher one")
    if problems:
        print("\n".join(problems))
        return 1
    print(f"layering: {len(files)} files, {checked} includes, no layer reaches above itself")
    return 0


if __name__ == "__main__":
    sys.exit(main())
