"""Checks that run ON THE TARGET interpreter, under qemu-user.

`cargo xtask qemu-test` runs this file with the target's python3 and reads
one `CHECK {json}` line per check from its output. Every check does real
work with the module it is named for; an import alone proves little.

Environment (set by qemu-test):
  CROSSPYTHON_MACHINE    what platform.machine() must print
  CROSSPYTHON_CHILDREN   "1" when target child processes can start (binfmt_misc)
  CROSSPYTHON_TLS_CERT   a self-signed certificate for localhost, and
  CROSSPYTHON_TLS_KEY    its key, for the TLS handshake
  CROSSPYTHON_PACKAGES   the manifest's pip requirement specifiers (each must be installed)
  CROSSPYTHON_BOOTED     "1" on a booted kernel (qemu-test --system), where memory is measured
  CROSSPYTHON_PACKAGE_CHECKS  a JSON object, project name -> Python source: the manifest's
                         [python_package.<project>] checks; each installed one runs as
                         the check `package:<project>` and may set `result` to a detail
"""

import json
import os
import sys
import traceback

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def children_can_start():
    return os.environ.get("CROSSPYTHON_CHILDREN") == "1"


def need_children(what="target child processes"):
    if not children_can_start():
        raise RuntimeError(f"binfmt_misc is not available: {what} cannot start")


@check
def machine():
    import platform

    want = os.environ["CROSSPYTHON_MACHINE"]
    got = platform.machine()
    assert got == want, f"platform.machine() is {got!r}, want {want!r}"
    return f"{got}, {platform.libc_ver()[0]} {platform.libc_ver()[1]}, Python {platform.python_version()}"


@check
def ssl():
    import socket
    import ssl
    import threading

    cert, key = os.environ["CROSSPYTHON_TLS_CERT"], os.environ["CROSSPYTHON_TLS_KEY"]
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(tls.recv(100).upper())

    t = threading.Thread(target=serve)
    t.start()
    client_ctx = ssl.create_default_context(cafile=cert)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:
        with client_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"hello")
            reply = tls.recv(100)
            version, cipher = tls.version(), tls.cipher()[0]
    t.join()
    listener.close()
    assert reply == b"HELLO", reply
    return f"{ssl.OPENSSL_VERSION}; verified handshake {version} {cipher}"


@check
def hashlib():
    import _hashlib  # the OpenSSL backend
    import hashlib

    assert hashlib.sha256(b"abc").hexdigest().startswith("ba7816bf")
    # sha3 and blake2 come from HACL*/libb2; these two only from OpenSSL.
    h = hashlib.new("sha512_256", b"abc").hexdigest()
    assert h.startswith("53048e26"), h
    dk = hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 1000).hex()
    assert len(dk) == 64
    return f"OpenSSL backend {_hashlib.__name__}, {len(hashlib.algorithms_available)} algorithms"


@check
def zlib():
    import zlib

    data = b"crosspython " * 1000
    packed = zlib.compress(data, 9)
    assert zlib.decompress(packed) == data and len(packed) < len(data) // 10
    return f"zlib {zlib.ZLIB_RUNTIME_VERSION}, {len(data)} -> {len(packed)} bytes"


@check
def zstd():
    if sys.version_info < (3, 14):
        return f"compression.zstd is new in 3.14; this is {sys.version_info.major}.{sys.version_info.minor}"
    from compression import zstd

    data = b"crosspython " * 1000
    packed = zstd.compress(data, level=10)
    assert zstd.decompress(packed) == data and len(packed) < len(data) // 10
    return f"libzstd {zstd.zstd_version}, {len(data)} -> {len(packed)} bytes"


@check
def build_details():
    """PEP 739: the file describes this interpreter, with relative paths."""
    import importlib.machinery
    import sysconfig

    if sys.version_info < (3, 14):
        return "build-details.json is new in 3.14"
    path = os.path.join(sysconfig.get_path("stdlib"), "build-details.json")
    with open(path) as f:
        d = json.load(f)
    here = os.path.dirname(path)
    base = os.path.normpath(os.path.join(here, d["base_prefix"]))
    # With a zipped stdlib, getpath finds the prefix beside libpython as the
    # loader names it through the $ORIGIN/../lib run path: <prefix>/bin/..
    assert base == os.path.normpath(sys.base_prefix), f"base_prefix {d['base_prefix']!r} resolves to {base}, not {sys.base_prefix}"
    assert d["abi"]["flags"] == list(sys.abiflags), f"abi.flags {d['abi']['flags']} but sys.abiflags {sys.abiflags!r}"
    want = importlib.machinery.EXTENSION_SUFFIXES
    assert d["suffixes"]["extensions"] == want, f"suffixes.extensions {d['suffixes']['extensions']} but the interpreter loads {want}"
    for key in ("dynamic",):
        lib = d.get("libpython", {}).get(key)
        if lib:
            assert not os.path.isabs(lib) and os.path.exists(os.path.join(base, lib)), f"libpython.{key} {lib} is not in the tree"
    headers = d["c_api"]["headers"]
    assert not os.path.isabs(headers), f"c_api.headers is absolute: {headers}"
    # As the board names itself (uname), not as configure named the host.
    assert d["platform"] == sysconfig.get_platform(), f"platform {d['platform']} but this board says {sysconfig.get_platform()}"
    # This interpreter loads extension modules, so the keys that say how to
    # build one must be there (meson's python module reads both): CPython
    # 3.14.7 leaves them out when libpython is static (the static-interpreter
    # option's patch).
    suffix = d["abi"].get("extension_suffix")
    assert suffix == sysconfig.get_config_var("EXT_SUFFIX"), f"abi.extension_suffix {suffix!r} but EXT_SUFFIX {sysconfig.get_config_var('EXT_SUFFIX')!r}"
    assert "link_extensions" in d["libpython"], f"no libpython.link_extensions: {d['libpython']}"
    return f"{d['platform']}, {suffix}, base_prefix {d['base_prefix']}"


@check
def free_threading():
    """A free-threaded build runs Python code in two threads at once."""
    import sysconfig
    import threading
    import time

    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "a GIL build (the freethreading build option is off)"
    assert not sys._is_gil_enabled(), "the GIL came back on (an extension module without Py_mod_gil support?)"
    # With a GIL and a long switch interval, a thread running pure Python
    # code keeps the GIL and no other thread advances; without one, the
    # other thread advances whatever the machine's load (the kernel
    # schedules both). Timing ratios would depend on the load instead.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    stop = False
    count = [0]

    def spin():
        while not stop:
            count[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    while count[0] == 0:
        time.sleep(0.01)
    seen = count[0]
    start = time.perf_counter()
    x = 0
    for i in range(2_000_000):
        x += i
    busy = time.perf_counter() - start
    advanced = count[0] - seen
    stop = True
    t.join()
    sys.setswitchinterval(interval)
    assert advanced > 0, f"the other thread did not advance during {busy:.2f}s of Python code in this one"
    return f"sys._is_gil_enabled() is False; another thread ran {advanced} loop iterations during {busy:.2f}s of pure-Python work here"


@check
def bz2():
    import bz2

    data = bytes(range(256)) * 200
    assert bz2.decompress(bz2.compress(data)) == data
    return f"round trip of {len(data)} bytes"


@check
def lzma():
    import lzma

    data = b"lzma " * 5000
    for fmt in (lzma.FORMAT_XZ, lzma.FORMAT_ALONE):
        assert lzma.decompress(lzma.compress(data, format=fmt)) == data
    return "xz and lzma-alone round trips"


@check
def ctypes():
    import ctypes
    import ctypes.util

    import platform

    # glibc by its soname; musl's libc is the loader itself, found as the
    # process's own symbols.
    name = "libc.so.6" if platform.libc_ver()[0] == "glibc" else None
    libc = ctypes.CDLL(name)
    libc.strlen.restype = ctypes.c_size_t
    assert libc.strlen(b"crosspython") == 11
    # A callback through libffi's closures: qsort calling back into Python.
    arr = (ctypes.c_int * 5)(5, 1, 4, 2, 3)
    CMP = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))
    libc.qsort(arr, 5, ctypes.sizeof(ctypes.c_int), CMP(lambda a, b: a[0] - b[0]))
    assert list(arr) == [1, 2, 3, 4, 5], list(arr)
    # Single-precision arguments and result: the ABI's own rules (RISC-V
    # NaN-boxes floats in 64-bit registers) are libffi's to follow.
    libm = ctypes.CDLL("libm.so.6" if name else None)
    libm.powf.restype = ctypes.c_float
    libm.powf.argtypes = [ctypes.c_float, ctypes.c_float]
    assert libm.powf(2.0, 10.0) == 1024.0, libm.powf(2.0, 10.0)
    return f"strlen via {name or 'the process (musl)'}, qsort with a Python callback, powf with floats"


@check
def sqlite3():
    import sqlite3

    db = sqlite3.connect(":memory:")
    db.execute("create table t (k integer primary key, v text)")
    db.executemany("insert into t (v) values (?)", [(f"row{i}",) for i in range(100)])
    (count, last) = db.execute("select count(*), max(v) from t").fetchone()
    assert (count, last) == (100, "row99"), (count, last)
    db.execute("create virtual table f using fts5(body)")
    db.execute("insert into f values ('cross compiled python')")
    assert db.execute("select count(*) from f where f match 'python'").fetchone()[0] == 1
    return f"SQLite {sqlite3.sqlite_version}, query and fts5"


@check
def decimal():
    import _decimal
    import decimal

    decimal.getcontext().prec = 50
    r = decimal.Decimal(1) / decimal.Decimal(7)
    assert str(r).startswith("0.142857142857"), r
    return f"C _decimal with libmpdec {decimal.__libmpdec_version__}"


@check
def uuid():
    import _uuid
    import uuid

    u1, u4 = uuid.uuid1(), uuid.uuid4()
    assert u1.version == 1 and u4.version == 4
    return f"_uuid (libuuid) safe={_uuid.has_uuid_generate_time_safe}"


@check
def readline():
    import readline

    readline.add_history("print(42)")
    assert readline.get_current_history_length() == 1
    return f"{readline._READLINE_LIBRARY_VERSION} (backend {getattr(readline, 'backend', 'readline')})"


@check
def curses():
    import _curses
    import curses

    return f"ncurses {'.'.join(map(str, curses.ncurses_version))}"


@check
def pyexpat():
    import xml.etree.ElementTree as ET

    root = ET.fromstring("<a><b x='1'/><b x='2'/></a>")
    assert [b.get("x") for b in root] == ["1", "2"]
    return "parsed with pyexpat"


@check
def every_extension_module_imports():
    import importlib
    import sysconfig

    dynload = os.path.join(sysconfig.get_path("platstdlib"), "lib-dynload")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    names = sorted(f[: -len(suffix)] for f in os.listdir(dynload) if f.endswith(suffix))
    failed = []
    for name in names:
        if name.startswith(("_test", "xx")):
            continue
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - any failure is reported
            failed.append(f"{name}: {e}")
    assert not failed, "; ".join(failed)
    return f"{len(names)} modules in lib-dynload"


@check
def subprocess():
    import subprocess

    need_children()
    out = subprocess.run([sys.executable, "-c", "import platform; print(platform.machine())"], capture_output=True, text=True, check=True)
    want = os.environ["CROSSPYTHON_MACHINE"]
    assert out.stdout.strip() == want, out
    return f"child {sys.executable} printed {want}"


@check
def multiprocessing():
    import multiprocessing

    need_children("spawned interpreters")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        squares = pool.starmap(pow, [(2, 2), (3, 2), (4, 2)])
    assert squares == [4, 9, 16], squares
    return "spawn pool of 2 workers"


@check
def pip():
    import subprocess

    if not children_can_start():
        import pip

        return f"pip {pip.__version__} (imported; children cannot start)"
    out = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("pip "), out.stdout
    return out.stdout.strip()


def packages():
    """Every distribution installed in the tree (the manifest's packages,
    their dependencies and ad-hoc `cargo xtask pip install`s), by project
    name (PEP 503 normalized); pip itself has its own check."""
    import importlib.metadata as md

    names = {d.metadata["Name"].lower().replace("_", "-").replace(".", "-") for d in md.distributions()}
    return sorted(names - {"pip"})


def manifest_packages():
    """The project names of the manifest's python_packages."""
    import re

    names = os.environ.get("CROSSPYTHON_PACKAGES", "").split()
    return [re.split(r"[^A-Za-z0-9._-]", n)[0].lower().replace("_", "-").replace(".", "-") for n in names]


@check
def python_packages_import():
    import importlib
    import importlib.metadata as md

    wanted = packages()
    missing = [n for n in manifest_packages() if n not in wanted]
    assert not missing, f"in the manifest but not installed: {missing}"
    if not wanted:
        return "no Python packages installed"
    by_dist = {}
    for module, dists in md.packages_distributions().items():
        for d in dists:
            by_dist.setdefault(d.lower().replace("_", "-"), []).append(module)
    done = []
    for name in wanted:
        dist = md.distribution(name)
        modules = [m for m in by_dist.get(name, []) if not m.startswith("_")]
        assert modules, f"{name}: installed but provides no importable module"
        for m in modules:
            importlib.import_module(m)
        done.append(f"{name} {dist.version}")
    return ", ".join(done)


@check
def numpy():
    if "numpy" not in packages():
        return "not installed"
    import io
    import contextlib
    import numpy as np

    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    b = np.arange(8, dtype=np.float64).reshape(4, 2)
    c = a @ b
    assert c.tolist() == [[28.0, 34.0], [76.0, 98.0], [124.0, 162.0]], c
    assert abs(np.linalg.det(np.array([[2.0, 1.0], [1.0, 3.0]])) - 5.0) < 1e-9
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        np.show_config()
    machine = [l.strip() for l in out.getvalue().splitlines() if "cpu" in l.lower()][:2]
    return f"numpy {np.__version__}: matmul and det ok; show_config: {'; '.join(machine)}"


@check
def pyyaml():
    if "pyyaml" not in packages():
        return "not installed"
    import yaml

    assert yaml.__with_libyaml__, "PyYAML was built without its libyaml C extension"
    doc = yaml.load("a: [1, 2, {b: c}]", Loader=yaml.CSafeLoader)
    assert doc == {"a": [1, 2, {"b": "c"}]}, doc
    return f"PyYAML {yaml.__version__} with libyaml (CSafeLoader)"


@check
def markupsafe():
    if "markupsafe" not in packages():
        return "not installed"
    import markupsafe
    from markupsafe import _speedups

    assert str(markupsafe.escape("<a & b>")) == "&lt;a &amp; b&gt;"
    import importlib.metadata

    version = importlib.metadata.version("markupsafe")
    return f"markupsafe {version} with its C speedups ({os.path.basename(_speedups.__file__)})"


@check
def cffi():
    if "cffi" not in packages():
        return "not installed"
    import cffi
    import _cffi_backend

    ffi = cffi.FFI()
    ffi.cdef("size_t strlen(const char *); int abs(int);")
    libc = ffi.dlopen(None)
    assert libc.strlen(b"crosspython") == 11
    # A callback goes through libffi's closures, the part that differs by ABI.
    ffi.cdef("void qsort(void *, size_t, size_t, int (*)(const void *, const void *));")
    @ffi.callback("int(const void *, const void *)")
    def cmp(a, b):
        x, y = ffi.cast("int *", a)[0], ffi.cast("int *", b)[0]
        return (x > y) - (x < y)
    arr = ffi.new("int[]", [5, 3, 9, 1])
    libc.qsort(arr, 4, ffi.sizeof("int"), cmp)
    assert list(arr) == [1, 3, 5, 9], list(arr)
    import re

    with open(_cffi_backend.__file__, "rb") as f:
        backend = f.read()
    # Built from source it links the tree's libffi; a manylinux wheel (a
    # dependency of cryptography's) carries its own, renamed by auditwheel
    # (cffi 1.x), or has libffi linked in and exports its functions (2.x).
    bundled = re.search(rb"libffi-[0-9a-f]+\.so[.0-9]*", backend)
    if b"libffi.so.8" in backend:
        which = "libffi.so.8 of the tree"
    elif bundled:
        which = f"the wheel's own {bundled.group().decode()}"
    else:
        assert b"ffi_prep_cif" in backend, f"{_cffi_backend.__file__} links neither the tree's libffi.so.8 nor a libffi of its wheel, nor has one linked in"
        which = "the libffi linked into the wheel's backend"
    return f"cffi {cffi.__version__}: strlen and a qsort callback through {which}"


@check
def requests():
    if "requests" not in packages():
        return "not installed"
    import http.server
    import threading
    import requests

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello from the board")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.handle_request).start()
    r = requests.get(f"http://127.0.0.1:{server.server_port}/", timeout=60)
    server.server_close()
    assert r.status_code == 200 and r.text == "hello from the board", r.text
    return f"requests {requests.__version__}: GET from a local server"


@check
def c_extension_builds_on_the_board():
    """`pip install` of an sdist on a board with a compiler: sysconfig's
    CC, CFLAGS, CCSHARED and LDSHARED (what setuptools' customize_compiler
    takes) compile and link a C extension with the board's own compiler,
    and it imports. The package names the build machine's tools by their
    file names (`aarch64-linux-gnu-gcc`), as Debian's gcc installs them."""
    import importlib.util
    import shlex
    import shutil
    import subprocess
    import sysconfig
    import tempfile

    # Under qemu-user a program of the board root cannot start: qemu looks
    # paths up in its -L root, but the kernel execs by the build machine's
    # paths (and gcc execs cc1, as and ld by theirs).
    if os.environ.get("CROSSPYTHON_BOOTED") != "1":
        return "not run: a board's compiler runs on a booted kernel only (qemu-test --system)"
    include = sysconfig.get_path("include")
    if not os.path.exists(os.path.join(include, "Python.h")):
        return f"not run: {include}/Python.h is not in this package (the full profile has the headers)"
    cc = shlex.split(sysconfig.get_config_var("CC"))
    boards = [p for p in (shutil.which(n) for n in ("cc", "gcc")) if p]
    if not boards:
        return "not run: the board has no C compiler (a board with one: `qemu-test --system --board <a board with gcc>`)"
    found = shutil.which(cc[0])
    assert found, f"sysconfig's CC is {cc[0]}, which this board does not have (its compiler is {boards[0]}): pip cannot build an sdist here"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "board_ext.c")
        with open(src, "w") as f:
            f.write(
                "#include <Python.h>\n"
                "static PyObject *add(PyObject *self, PyObject *args) {\n"
                "    long a, b;\n"
                '    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;\n'
                "    return PyLong_FromLong(a + b);\n"
                "}\n"
                'static PyMethodDef methods[] = {{"add", add, METH_VARARGS, NULL}, {NULL}};\n'
                'static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "board_ext", NULL, -1, methods};\n'
                "PyMODINIT_FUNC PyInit_board_ext(void) { return PyModule_Create(&module); }\n"
            )
        obj = os.path.join(tmp, "board_ext.o")
        ext = os.path.join(tmp, "board_ext" + sysconfig.get_config_var("EXT_SUFFIX"))
        var = lambda name: shlex.split(sysconfig.get_config_var(name) or "")  # noqa: E731
        compile_ = cc + var("CFLAGS") + var("CCSHARED") + ["-I", include, "-c", src, "-o", obj]
        link = var("LDSHARED") + [obj, "-o", ext]
        for step in (compile_, link):
            out = subprocess.run(step, capture_output=True, text=True)
            assert out.returncode == 0, f"{shlex.join(step)}: exit {out.returncode}, {out.stderr.strip()[-400:]!r}"
        spec = importlib.util.spec_from_file_location("board_ext", ext)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert module.add(2, 3) == 5
    return f"{cc[0]} ({os.path.realpath(found)}) built board_ext{sysconfig.get_config_var('EXT_SUFFIX')}, which imports"


def measure(pythons, n=5):
    """Per interpreter: peak RSS (KiB) of `python -c pass` and of `import
    numpy` where it imports, and the median startup time (ms) of `-c pass`
    and `-I -S -c pass`. Runs alternate between the interpreters, so that
    the machine's load (an emulator shares its host) falls on all alike."""
    import re
    import subprocess
    import time

    def peak(python, code):
        # The child's own VmHWM, read as it ends: a parent's ru_maxrss for
        # a child counts the memory the child was forked or spawned with.
        status = "import sys; sys.stdout.write(open('/proc/self/status').read())"
        out = subprocess.run([python, "-c", f"{code}\n{status}"], capture_output=True, text=True)
        found = re.search(r"VmHWM:\s+(\d+)", out.stdout)
        return int(found.group(1)) if out.returncode == 0 and found else None

    def ms(python, args):
        start = time.perf_counter()
        subprocess.run([python, *args], check=True)
        return (time.perf_counter() - start) * 1000

    figures = {}
    for python in pythons:
        rss_pass = peak(python, "pass")
        assert rss_pass, f"{python} -c pass did not run"
        figures[python] = {"rss_pass_kib": rss_pass, "rss_numpy_kib": peak(python, "import numpy")}
    for key, args in [("startup_ms", ["-c", "pass"]), ("startup_isolated_ms", ["-I", "-S", "-c", "pass"])]:
        times = {python: [] for python in pythons}
        for _ in range(n):
            for python in pythons:
                times[python].append(ms(python, args))
        for python in pythons:
            figures[python][key] = round(sorted(times[python])[n // 2])
    return figures


@check
def users():
    """The user and group databases a board has (pwd, grp, Path.home()
    without HOME, tarfile's owner names)."""
    import grp
    import pathlib
    import pwd

    me = pwd.getpwuid(os.getuid())
    group = grp.getgrgid(os.getgid()).gr_name
    saved = os.environ.pop("HOME", None)
    try:
        home = str(pathlib.Path.home())
    finally:
        if saved is not None:
            os.environ["HOME"] = saved
    assert home == me.pw_dir, f"Path.home() without HOME is {home!r}, the user database says {me.pw_dir!r}"
    return f"uid {os.getuid()} is {me.pw_name}, gid {os.getgid()} {group}, home {home}"


@check
def unprivileged_user():
    """A board's users are not all root: the kernel lets only a process
    with CAP_SYS_RAWIO map below vm.mmap_min_addr, so a program linked that
    low runs for root alone (mipsel's python3 loaded at 0 once). The
    guests run everything as root, which hid it; this starts python3 as
    `nobody` (uid and gid 65534, no supplementary groups)."""
    import subprocess

    need_children()
    if os.getuid() != 0:
        return f"already uid {os.getuid()}: the other checks ran unprivileged"
    code = "import os, ssl, sqlite3; print(os.getuid(), os.getgid(), os.getgroups())"
    out = subprocess.run([sys.executable, "-I", "-c", code], user=65534, group=65534, extra_groups=[], capture_output=True, text=True)
    assert out.returncode == 0, f"as uid 65534: exit {out.returncode}, {out.stderr.strip()[-300:]!r}"
    assert out.stdout.split() == ["65534", "65534", "[]"], out.stdout
    return f"{sys.executable} ran as uid 65534, gid 65534"


@check
def null_pointer_read_crashes():
    """Reading address 0 must end the process with SIGSEGV, as it does on
    every Linux board: a program whose lowest segment is mapped at 0 reads
    its own headers there instead (mipsel's python3 once;
    test_faulthandler's test_read_null caught it)."""
    import signal
    import subprocess

    need_children()
    # Not ctypes.string_at(0, n): it hands NULL to PyBytes_FromStringAndSize,
    # which then makes n uninitialized bytes and reads nothing.
    code = "import ctypes, sys; value = ctypes.c_int.from_address(0).value; sys.exit(f'read {value:#x} at address 0')"
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True)
    assert out.returncode == -signal.SIGSEGV, f"exit {out.returncode}: {out.stderr.strip()[-300:]!r}"
    return "SIGSEGV, as it should"


@check
def memory():
    """Measured as on a board, on a booted kernel only (under qemu-user the
    emulator's own memory counts): this python3 and the board's own python
    side by side, the peak of these checks (VmHWM), and what is left."""
    if os.environ.get("CROSSPYTHON_BOOTED") != "1":
        return "measured on a booted kernel only (qemu-test --system)"
    import glob
    import re

    board = sorted(p for p in glob.glob("/usr/bin/python3.*") if re.fullmatch(r"/usr/bin/python3\.\d+", p))
    measured = measure([sys.executable, *board[-1:]])
    figures = {"python3": measured.pop(sys.executable), **measured}
    with open("/proc/self/status") as f:
        figures["checks_vmhwm_kib"] = int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))
    with open("/proc/meminfo") as f:
        info = f.read()
    figures["mem_total_kib"] = int(re.search(r"MemTotal:\s+(\d+)", info).group(1))
    figures["mem_available_kib"] = int(re.search(r"MemAvailable:\s+(\d+)", info).group(1))
    return json.dumps(figures, sort_keys=True)


def package_checks():
    """The manifest's checks of the installed packages, as checks."""
    path = os.environ.get("CROSSPYTHON_PACKAGE_CHECKS")
    if not path:
        return []
    with open(path) as f:
        sources = json.load(f)
    installed = set(packages())
    out = []
    for project, source in sorted(sources.items()):
        if project not in installed:
            continue

        def run(project=project, source=source):
            import importlib.metadata as md

            scope = {"__name__": f"check_{project}"}
            exec(compile(source, f"<check of {project}>", "exec"), scope)
            return f"{project} {md.version(project)}: {scope.get('result', 'ok')}"

        run.__name__ = f"package:{project}"
        out.append(run)
    return out


def main():
    failed = 0
    for fn in CHECKS + package_checks():
        try:
            detail = fn() or ""
            ok = True
        except Exception as e:  # noqa: BLE001 - every failure becomes a result
            ok = False
            failed += 1
            tb = traceback.extract_tb(e.__traceback__)[-1]
            detail = f"{type(e).__name__}: {e} (line {tb.lineno})"
        print("CHECK " + json.dumps({"name": fn.__name__, "ok": ok, "detail": str(detail)}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
