"""Shared pytest fixtures: a running local archive (moto S3 + VO HTTP server on 127.0.0.1)."""
import os
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


# `remote_data` (tests that need the real archives) comes from pytest-remotedata: such tests are skipped
# unless `pytest --remote-data=any`, and every other test is refused any connection beyond 127.0.0.1.
def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


@pytest.fixture(scope="session")
def local_archive():
    """A started, activated LocalArchive with the demo content loaded (one per test session)."""
    from mwnb.demo.archive import LocalArchive
    la = LocalArchive().start()
    yield la
    la.stop()


@pytest.fixture
def archive(local_archive, monkeypatch):
    """The session's local archive with a clean request log, fast retries and the endpoints active."""
    local_archive.activate()
    local_archive.clear()
    monkeypatch.setenv("MWNB_RETRY_BACKOFF", "0.01")
    yield local_archive
    local_archive.clear()
