"""The WORKER_ID fallback chain: environment, .env, stored id, generated id."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from facefleet.worker.worker_id_manager import (
    IdSource,
    InvalidWorkerId,
    default_state_dir,
    id_state_file,
    resolve_worker_id,
)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A .env in an empty working directory; the real environment has no WORKER_ID."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("WORKER_ID", raising=False)
    return work / ".env"


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_environment_wins_and_is_never_persisted(
    tmp_path: Path, dotenv: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv.write_text("WORKER_ID=from-dotenv\n")
    state_dir.mkdir()
    (state_dir / "worker_id").write_text("from-state\n")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FACEFLEET_WORKER_STATE_DIR", str(tmp_path / "default-state"))
    monkeypatch.setenv("WORKER_ID", "worker-002")

    first = resolve_worker_id(state_dir=state_dir)
    second = resolve_worker_id()  # the default state directory

    assert first == second
    assert (first.worker_id, first.source, first.path) == ("worker-002", IdSource.env, None)
    assert files_in(state_dir) == ["worker_id"]
    assert (state_dir / "worker_id").read_text() == "from-state\n"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(p.name for p in written) == [".env", "worker_id"]
    assert not any("worker-002" in p.read_text() for p in written)


def test_dotenv_comes_next_and_is_persisted_to_its_own_file(dotenv: Path, state_dir: Path) -> None:
    dotenv.write_text("OTHER=1\nWORKER_ID='cam-node.7'\n")
    state_dir.mkdir()
    (state_dir / "worker_id").write_text("from-state\n")

    identity = resolve_worker_id(state_dir=state_dir)

    assert (identity.worker_id, identity.source) == ("cam-node.7", IdSource.dotenv)
    assert identity.path == id_state_file(state_dir, "cam-node.7")
    assert json.loads(identity.path.read_text()) == {"worker_id": "cam-node.7", "source": "dotenv"}
    assert (state_dir / "worker_id").read_text() == "from-state\n"  # generic file untouched
    assert files_in(state_dir) == ["worker-cam-node.7.json", "worker_id"]


def test_dotenv_path_is_configurable(tmp_path: Path, dotenv: Path, state_dir: Path) -> None:
    dotenv.write_text("WORKER_ID=default-location\n")
    elsewhere = tmp_path / "conf" / "worker.env"
    elsewhere.parent.mkdir()
    elsewhere.write_text("WORKER_ID=custom-location\n")

    assert resolve_worker_id(dotenv_path=elsewhere, state_dir=state_dir).worker_id == (
        "custom-location"
    )
    skipped = resolve_worker_id(dotenv_path=None, state_dir=state_dir)
    assert skipped.source == IdSource.generated


def test_dotenv_without_worker_id_falls_through(dotenv: Path, state_dir: Path) -> None:
    dotenv.write_text("FACEFLEET_API=http://localhost:8000\n")
    state_dir.mkdir()
    (state_dir / "worker_id").write_text("kept-id\n")

    identity = resolve_worker_id(state_dir=state_dir)

    assert (identity.worker_id, identity.source) == ("kept-id", IdSource.stored)
    assert files_in(state_dir) == ["worker_id"]


def test_stored_id_is_reused_across_calls(dotenv: Path, state_dir: Path) -> None:
    state_dir.mkdir()
    (state_dir / "worker_id").write_text("  kept-id\n")

    first = resolve_worker_id(state_dir=state_dir)
    second = resolve_worker_id(state_dir=state_dir)

    assert first == second
    assert (first.worker_id, first.source, first.path) == (
        "kept-id",
        IdSource.stored,
        state_dir / "worker_id",
    )


def test_generated_id_is_persisted_then_reused(dotenv: Path, state_dir: Path) -> None:
    generated = resolve_worker_id(state_dir=state_dir)

    assert generated.source == IdSource.generated
    assert re.fullmatch(r"worker-[0-9a-f]{12}", generated.worker_id)
    assert (state_dir / "worker_id").read_text() == generated.worker_id + "\n"
    assert files_in(state_dir) == ["worker_id"]  # no temporary file left behind

    again = resolve_worker_id(state_dir=state_dir)
    assert (again.worker_id, again.source) == (generated.worker_id, IdSource.stored)


def test_default_state_dir_follows_the_environment(tmp_path: Path) -> None:
    assert default_state_dir({"FACEFLEET_WORKER_STATE_DIR": str(tmp_path)}) == tmp_path
    assert default_state_dir({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "facefleet"
    assert default_state_dir({}) == Path.home() / ".local" / "state" / "facefleet"


def test_state_dir_from_the_environment_is_used_by_default(
    dotenv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEFLEET_WORKER_STATE_DIR", str(tmp_path / "from-env"))
    identity = resolve_worker_id()
    assert identity.path == tmp_path / "from-env" / "worker_id"


BAD_IDS = [
    ("", "is empty"),
    ("x" * 129, "129 characters long; the maximum is 128"),
    ("-leading-dash", "must start with a letter or digit"),
    ("has space", "must start with a letter or digit"),
    ("../escape", "must start with a letter or digit"),
    ("a/b", "must start with a letter or digit"),
]


@pytest.mark.parametrize(("value", "message"), BAD_IDS)
def test_invalid_id_from_the_environment_is_refused(
    value: str, message: str, dotenv: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKER_ID", value)
    with pytest.raises(InvalidWorkerId, match="from the environment") as caught:
        resolve_worker_id(state_dir=state_dir)
    assert message in str(caught.value)
    assert not state_dir.exists()


@pytest.mark.parametrize(("value", "message"), BAD_IDS)
def test_invalid_id_from_dotenv_is_refused(
    value: str, message: str, dotenv: Path, state_dir: Path
) -> None:
    dotenv.write_text(f"WORKER_ID='{value}'\n")
    with pytest.raises(InvalidWorkerId, match=r"from \.env file") as caught:
        resolve_worker_id(state_dir=state_dir)
    assert message in str(caught.value)
    assert not state_dir.exists()


def test_dotenv_key_without_value_is_refused(dotenv: Path, state_dir: Path) -> None:
    dotenv.write_text("WORKER_ID\n")
    with pytest.raises(InvalidWorkerId, match=r"from \.env file .* is empty"):
        resolve_worker_id(state_dir=state_dir)


@pytest.mark.parametrize(("value", "message"), BAD_IDS)
def test_invalid_id_in_the_state_file_is_refused(
    value: str, message: str, dotenv: Path, state_dir: Path
) -> None:
    state_dir.mkdir()
    (state_dir / "worker_id").write_text(value + "\n")
    with pytest.raises(InvalidWorkerId, match="from state file") as caught:
        resolve_worker_id(state_dir=state_dir)
    assert message in str(caught.value)
    assert (state_dir / "worker_id").read_text() == value + "\n"  # left for the operator


def test_trailing_newline_in_the_environment_is_refused(
    dotenv: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKER_ID", "worker-1\n")
    with pytest.raises(InvalidWorkerId, match="from the environment"):
        resolve_worker_id(state_dir=state_dir)
