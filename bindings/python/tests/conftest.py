import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[3]
BUILD = pathlib.Path(os.environ.get("HSDK_BUILD_DIR", ROOT / "build" / "default"))
# Use the in-tree build unless an installed hypersdk was asked for.
if os.environ.get("HSDK_PYTHON_INSTALLED") != "1":
    sys.path.insert(0, str(BUILD / "bindings" / "python"))
