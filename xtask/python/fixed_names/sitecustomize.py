# Used by crosspython (xtask/src/python/crosspip/sdist.rs) for its source builds
# of Python packages, on PYTHONPATH of `pip wheel` and of the build backend
# it starts. pip unpacks and builds an sdist in directories of random names
# (`pip-wheel-<8>/numpy_<uuid4 hex>/`, meson-python's `.mesonpy-<8>/`),
# which the compiler records in the debug information, and the linker's
# merged string tables order those strings by their contents: two builds of
# one sdist gave two wheels. Here the names come from a fixed sequence, the
# same in every build (tempfile still takes the next name when one exists).
import random as _random
import tempfile as _tempfile
import uuid as _uuid

_names = _random.Random(0)


class _FixedNames:
    characters = "abcdefghijklmnopqrstuvwxyz0123456789_"

    def __iter__(self):
        return self

    def __next__(self):
        return "".join(_names.choice(self.characters) for _ in range(8))


_tempfile._name_sequence = _FixedNames()
_uuid.uuid4 = lambda: _uuid.UUID(int=_names.getrandbits(128), version=4)
