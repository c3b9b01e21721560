"""Memory safety of the native media pump: `_pump.c` built with AddressSanitizer and
UBSan into a temporary folder, then `pump_stress.py` run through it.

The sanitizer runtime must be loaded before anything else, so the stress runs in a
subprocess with `LD_PRELOAD` of libasan. Leak detection is off: CPython keeps objects
alive until exit by design, and those would drown the report. Any overflow, use after
free or undefined behaviour aborts the subprocess with the sanitizer's report, which
the assertion shows. The build parses each datagram from a heap copy of exactly its
size, so that reading past a datagram's end is caught too (checked once by hand: an
off-by-one in the RFC 4733 length check fails the stress with a heap-buffer-overflow).
A second test builds a tiny extension that overflows on purpose and checks that this
harness does report it, so a green run means something.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SOURCE = HERE.parents[2] / "src" / "ivrcast" / "rtp" / "_pump.c"
STRESS = HERE / "pump_stress.py"
SEEDS = (1, 2)
TIMEOUT = 240

OVERFLOW_SOURCE = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *overflow(PyObject *self, PyObject *args) {
    char *buffer = PyMem_RawMalloc(16);
    memset(buffer, 1, 17);
    PyMem_RawFree(buffer);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {{"overflow", overflow, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pump", "", -1, methods};
PyMODINIT_FUNC PyInit__pump(void) { return PyModule_Create(&module); }
"""


def libasan() -> Path:
    """The sanitizer runtime gcc links against; skips the test when there is none."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: the sanitized build of the media pump needs it")
    found = subprocess.run(
        [gcc, "-print-file-name=libasan.so"], capture_output=True, text=True, check=True
    ).stdout.strip()
    path = Path(found).resolve()
    if not path.is_file():
        pytest.skip("libasan is not installed (Debian: libasan8 comes with gcc)")
    return path


def build(source: Path, out: Path) -> Path:
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").is_file():
        pytest.skip(f"no Python.h in {include} (Debian: python3-dev) to build the pump with")
    target = out / "_pump.so"
    subprocess.run(
        [
            "gcc", "-shared", "-fPIC", "-g", "-O1", "-fno-omit-frame-pointer",
            "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            # Parse each datagram from a copy of exactly its size (see `_pump.c`), so
            # that a read past its end is out of bounds, not a read of stale bytes.
            "-DPUMP_EXACT_COPIES",
            f"-I{include}", str(source), "-o", str(target),
        ],
        check=True,
        capture_output=True,
        text=True,
    )  # fmt: skip
    return target


def run_sanitized(asan: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LD_PRELOAD": str(asan),
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=86",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=87",
        # Python's allocator hides small overflows in its arenas: use malloc directly.
        "PYTHONMALLOC": "malloc",
    }
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_the_pump_survives_hostile_traffic_under_sanitizers(tmp_path: Path, seed: int) -> None:
    asan = libasan()
    module = build(SOURCE, tmp_path)
    result = run_sanitized(asan, str(STRESS), str(module), str(seed))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "'sent'" in result.stdout  # the stress ran to its end


def test_the_harness_reports_an_overflow(tmp_path: Path) -> None:
    asan = libasan()
    source = tmp_path / "overflow.c"
    source.write_text(OVERFLOW_SOURCE)
    module = build(source, tmp_path)
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('_pump', {str(module)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "module.overflow()\n"
    )
    result = run_sanitized(asan, "-c", script)
    assert result.returncode == 86, result.stdout + result.stderr
    assert "heap-buffer-overflow" in result.stderr
