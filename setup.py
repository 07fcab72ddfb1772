"""Build and install the `ebb` Python module: pip install . (no network needed:
pip install --no-build-isolation . uses the machine's setuptools).

The module carries its own copy of ebb (src/ebb.c, hidden, without the malloc
override) and uses the process's ebb instead when there is one (ebb run,
LD_PRELOAD=libebb.so); python/_ebb.c says why, and python/ebbmod.h lists the
extension's files.

EBB_BUILD_TEST_HOOKS=1 (set by `make python`, which the tests use) adds the
functions that exist only for the tests (python/test_hooks.c); a plain
`pip install .` leaves them out.
"""
import os
import re
import subprocess

from setuptools import Extension, setup

with open("include/ebb.h") as f:
    VERSION = re.search(r'#define EBB_VERSION_STRING "([^"]+)"', f.read()).group(1)

FLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-fno-semantic-interposition",
         "-fvisibility=hidden",
         "-O2"]

SOURCES = ["python/_ebb.c", "python/install.c", "python/stats.c", "python/limit.c"]
MACROS = [("EBB_NO_OVERRIDE", "1"),
          ("EBB_API", '__attribute__((visibility("hidden")))')]
if os.environ.get("EBB_BUILD_TEST_HOOKS") == "1":
    SOURCES.append("python/test_hooks.c")
    MACROS.append(("EBB_PY_TEST_HOOKS", "1"))



def viewer_header():
    """The HTML report's viewer as a C header (scripts/embed_viewer.sh, as the
    Makefile makes it), for the report files the module's own copy of ebb
    writes; its directory, or None when the tree has no viewer (the page
    then shows the JSON as text)."""
    if not os.path.isdir(os.path.join("src", "insight", "viewer")):
        return None
    out = os.path.join("build", "gen-python")
    os.makedirs(out, exist_ok=True)
    subprocess.run(["sh", os.path.join("scripts", "embed_viewer.sh"),
                    os.path.join("src", "insight", "viewer"), os.path.join(out, "ebb_viewer.h")],
                   check=True)
    return out


INCLUDES = ["include", "src"]
VIEWER = viewer_header()
if VIEWER:
    INCLUDES.append(VIEWER)
    MACROS.append(("EBB_HAVE_VIEWER", "1"))

ebb = Extension(
    "ebb._ebb",
    sources=SOURCES + ["src/ebb.c"],
    depends=["python/ebbmod.h"],
    include_dirs=INCLUDES,
    define_macros=MACROS,
    extra_compile_args=FLAGS,
    extra_link_args=["-pthread"],
)

setup(
    name="ebb",
    version=VERSION,
    description="A memory manager for Python that gives memory back to the OS",
    packages=["ebb"],
    package_dir={"": "python"},
    package_data={"ebb": ["__init__.pyi", "py.typed"]},
    ext_modules=[ebb],
    python_requires=">=3.8",
    # pytest finds the plugin (ebb/pytest_plugin.py) once the package is
    # installed; it stays inert unless asked for (-p ebb, --ebb-report, or
    # a test marked limit_memory).
    entry_points={"pytest11": ["ebb = ebb.pytest_plugin"]},
)
