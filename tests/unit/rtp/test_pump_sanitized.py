"""Memory and thread safety of the native media pump: `_pump.c` built with
AddressSanitizer and UBSan, and with ThreadSanitizer, into a temporary folder, then
`pump_stress.py` run through each (its media thread racing Python's calls, and Python
driving it alone).

The sanitizer runtime must be loaded before anything else, so the stress runs in a
subprocess with `LD_PRELOAD` of libasan. Leak detection is off: CPython keeps objects
alive until exit by design, and those would drown the report. Any overflow, use after
free or undefined behaviour aborts the subprocess with the sanitizer's report, which
the assertion shows. The build parses each datagram from a heap copy of exactly its
size, so that reading past a datagram's end is caught too (checked once by hand: an
off-by-one in the RFC 4733 length check fails the stress with a heap-buffer-overflow).
A second test builds a tiny extension that overflows on purpose and checks that this
harness does report it, so a green run means something.

ThreadSanitizer sees only the pump (CPython is not instrumented), which is what matters:
the media thread never touches a Python object, so every shared access is the pump's
own. It intercepts the pthread calls, the GIL's included, so Python-side calls ordered by
the GIL are not reported. Over repeated runs it reported nothing on the pump, and a
copy with one lock taken out (`set_ticking`) was reported in 3 runs of 4; a tiny
extension with a certain race checks that the harness reports one.
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


RACE_SOURCE = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>

int shared; /* not static, and read back, so the compiler keeps every access */
static int written;

static void *writer(void *arg) {
    shared = 1;
    __atomic_store_n(&written, 1, __ATOMIC_RELAXED); /* no happens-before: a race */
    return NULL;
}

static PyObject *race(PyObject *self, PyObject *args) {
    pthread_t thread;
    pthread_create(&thread, NULL, writer, NULL);
    while (!__atomic_load_n(&written, __ATOMIC_RELAXED))
        ;
    shared = 2;
    pthread_join(thread, NULL);
    return PyLong_FromLong(shared);
}

static PyMethodDef methods[] = {{"race", race, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pump", "", -1, methods};
PyMODINIT_FUNC PyInit__pump(void) { return PyModule_Create(&module); }
"""
ASAN = ("libasan.so", "libasan8", ("-fsanitize=address,undefined", "-fno-sanitize-recover=all"))
TSAN = ("libtsan.so", "libtsan2", ("-fsanitize=thread",))
Sanitizer = tuple[str, str, tuple[str, ...]]


def runtime(sanitizer: Sanitizer) -> Path:
    """The sanitizer runtime gcc links against; skips the test when there is none."""
    library, package, _ = sanitizer
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: the sanitized build of the media pump needs it")
    found = subprocess.run(
        [gcc, f"-print-file-name={library}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    path = Path(found).resolve()
    if not path.is_file():
        pytest.skip(f"{library} is not installed (Debian: {package} comes with gcc)")
    return path


def libasan() -> Path:
    return runtime(ASAN)


def build(source: Path, out: Path, sanitizer: Sanitizer = ASAN) -> Path:
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").is_file():
        pytest.skip(f"no Python.h in {include} (Debian: python3-dev) to build the pump with")
    target = out / "_pump.so"
    subprocess.run(
        [
            "gcc", "-shared", "-fPIC", "-g", "-O1", "-fno-omit-frame-pointer",
            *sanitizer[2],
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


def run_sanitized(library: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LD_PRELOAD": str(library),
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=86",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=87",
        "TSAN_OPTIONS": "halt_on_error=1:exitcode=88",
        # Python's allocator hides small overflows in its arenas: use malloc directly.
        "PYTHONMALLOC": "malloc",
    }
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )


@pytest.mark.parametrize("mode", ["threaded", "stepped"])
@pytest.mark.parametrize("seed", SEEDS)
def test_the_pump_survives_hostile_traffic_under_sanitizers(
    tmp_path: Path, seed: int, mode: str
) -> None:
    asan = libasan()
    module = build(SOURCE, tmp_path)
    result = run_sanitized(asan, str(STRESS), str(module), str(seed), mode)
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


@pytest.mark.parametrize("seed", SEEDS)
def test_the_media_thread_races_nothing_under_thread_sanitizer(tmp_path: Path, seed: int) -> None:
    tsan = runtime(TSAN)
    module = build(SOURCE, tmp_path, TSAN)
    result = run_sanitized(tsan, str(STRESS), str(module), str(seed), "threaded")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "'sent'" in result.stdout


def test_the_harness_reports_a_race(tmp_path: Path) -> None:
    tsan = runtime(TSAN)
    source = tmp_path / "race.c"
    source.write_text(RACE_SOURCE)
    module = build(source, tmp_path, TSAN)
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('_pump', {str(module)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "module.race()\n"
    )
    result = run_sanitized(tsan, "-c", script)
    assert result.returncode == 88, result.stdout + result.stderr
    assert "data race" in result.stderr
