"""PyInstaller runtime hook: unpack zstd-packed shared libraries on first import.

The largest libraries (DuckDB, numpy and its OpenBLAS, cryptography) are stored
zstd-compressed in the executable, which is about a quarter smaller than PyInstaller's
zlib and faster to unpack. Each is unpacked into the extraction directory when its
package is first imported, so an agent without TLS, which never imports any of them,
does not pay for them: not even for loading the zstd library. gRPC, which every agent
loads, stays with the bootloader's zlib for that reason.
"""

import glob
import importlib.abc
import os
import sys

# Module name -> glob patterns, relative to the extraction directory, of the packed
# files that must be unpacked before the module loads. gosight.spec packs the same set.
_PACKED = {
    "_duckdb": ["_duckdb.*.so.zst"],
    "numpy": ["numpy.libs/libscipy_openblas*.so.zst", "numpy/_core/_multiarray_umath.*.so.zst"],
    "cryptography": ["cryptography/hazmat/bindings/_rust.*.so.zst"],
}


def _unpack(packed_path: str) -> None:
    target = packed_path[: -len(".zst")]
    if os.path.exists(target):
        return
    import cramjam

    with open(packed_path, "rb") as packed:
        data = bytes(cramjam.zstd.decompress(packed.read()))
    temporary = target + ".part"
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.chmod(temporary, 0o755)
    os.replace(temporary, target)


class _UnpackOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        patterns = _PACKED.pop(name, None)
        for pattern in patterns or ():
            for packed_path in glob.glob(os.path.join(sys._MEIPASS, pattern)):
                _unpack(packed_path)
        return None


sys.meta_path.insert(0, _UnpackOnImport())
