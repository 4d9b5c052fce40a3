"""Build the compiled core: every ``bytepiece/*.pyx`` becomes an extension.

Set ``BYTEPIECE_ONLY=name1,name2`` to build just those modules (handy while
developing one of them), and ``BYTEPIECE_SANITIZE=address`` for an
AddressSanitizer build used by the fuzz harness.
"""
import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

compile_args = ["-O3", "-ffp-contract=off", "-fno-fast-math"]
link_args = []
sanitize = os.environ.get("BYTEPIECE_SANITIZE")
if sanitize:
    compile_args = ["-O1", "-g", "-fno-omit-frame-pointer", f"-fsanitize={sanitize}", "-ffp-contract=off"]
    link_args = [f"-fsanitize={sanitize}"]

only = {n for n in os.environ.get("BYTEPIECE_ONLY", "").split(",") if n}
extensions = []
for source in sorted(glob.glob("bytepiece/*.pyx")):
    name = os.path.splitext(os.path.basename(source))[0]
    if only and name not in only:
        continue
    extensions.append(
        Extension(
            f"bytepiece.{name}",
            [source],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
    )

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
        annotate=bool(os.environ.get("BYTEPIECE_ANNOTATE")),
    )
)
