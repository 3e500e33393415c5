"""Install wheels into a target tree, as the board's interpreter would.

Run by crosspython with the build machine's python (same version as the
target's) and the `installer` package (pypa/installer). Entry-point scripts
get the target's interpreter in their shebang, RECORD lists every file with
its hash, and nothing of the build machine is written into the tree.

usage: install_wheels.py --root TREE --prefix /usr/local --pyver 3.13 WHEEL...
"""

import argparse
import sys

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True, help="the target tree (DESTDIR)")
    p.add_argument("--prefix", required=True)
    p.add_argument("--pyver", required=True, help="major.minor of the target python")
    p.add_argument("wheels", nargs="+")
    a = p.parse_args()
    site = f"{a.prefix}/lib/python{a.pyver}/site-packages"
    scheme = {
        "purelib": site,
        "platlib": site,
        "headers": f"{a.prefix}/include/python{a.pyver}",
        "scripts": f"{a.prefix}/bin",
        "data": a.prefix,
    }
    for wheel in a.wheels:
        dest = SchemeDictionaryDestination(
            scheme,
            interpreter=f"{a.prefix}/bin/python{a.pyver}",
            script_kind="posix",
            destdir=a.root,
        )
        with WheelFile.open(wheel) as source:
            install(source, dest, additional_metadata={"INSTALLER": b"crosspython\n"})
        print(f"installed {source.distribution} {source.version}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
