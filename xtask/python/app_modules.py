"""What an application imports, found on the build side with modulefinder.

Run by the build python (the target's version, the build machine's
architecture) over the target's stdlib and site-packages:

    app_modules.py STDLIB SITE_PACKAGES EXT_SUFFIX APP.py

Prints JSON: {"files": [...], "missing": [...]} where files are the source
files (and extension modules) the application and the interpreter's own
start-up need, as absolute paths below STDLIB or SITE_PACKAGES.

modulefinder follows `import` statements without running them, so a
conditional import counts (too much is kept, never too little of what is
written down). What it cannot see (`importlib.import_module(name)` of a
computed name) the proof run on the target finds.
"""

import importlib.machinery
import importlib.metadata  # imported by PathFinder.invalidate_caches: before the hooks change
import json
import modulefinder
import os
import sys

stdlib, site_packages, ext_suffix, app = sys.argv[1:5]

# The target's extension modules carry its suffix
# (.cpython-314-aarch64-linux-gnu.so), which this interpreter's finders
# do not look for: a path hook that does replaces the default one.
loaders = [
    (importlib.machinery.ExtensionFileLoader, [ext_suffix] + importlib.machinery.EXTENSION_SUFFIXES),
    (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES),
    (importlib.machinery.SourcelessFileLoader, importlib.machinery.BYTECODE_SUFFIXES),
]
sys.path_hooks[:] = [h for h in sys.path_hooks if "FileFinder" not in repr(h)]
sys.path_hooks.append(importlib.machinery.FileFinder.path_hook(*loaders))
sys.path_importer_cache.clear()

path = [os.path.dirname(os.path.abspath(app)), stdlib, os.path.join(stdlib, "lib-dynload"), site_packages]
finder = modulefinder.ModuleFinder(path=path)

# What every start of the interpreter imports (site, the codecs it looks
# up, the modules site and io pull in), then the application itself.
# Codecs are looked up by name at run time: the encodings package stays whole.
startup = ["site", "encodings", "sitecustomize", "usercustomize", "_sitebuiltins", "io", "abc", "codecs", "stat", "os", "runpy"]
for name in startup:
    try:
        finder.import_hook(name)
    except ImportError:
        pass
encodings = os.path.join(stdlib, "encodings")
for f in sorted(os.listdir(encodings)):
    if f.endswith(".py") and f != "__init__.py":
        try:
            finder.import_hook("encodings." + f[:-3])
        except (ImportError, SyntaxError):
            pass
finder.run_script(app)

files = sorted({m.__file__ for m in finder.modules.values() if m.__file__ and m.__file__ != os.path.abspath(app)})
# A package's own __init__ is listed; its data files are kept by the caller.
missing = sorted(name for name in finder.badmodules if "." not in name or name.split(".")[0] in finder.modules)
print(json.dumps({"files": files, "missing": missing}))
