"""Shared pytest fixtures: a running local archive (moto S3 + VO HTTP server on 127.0.0.1)."""
import os
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    config.addinivalue_line("markers", "remote_data: needs the real archives (skipped unless --remote-data)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def pytest_addoption(parser):
    parser.addoption("--remote-data", action="store_true", help="run tests that reach the real archives")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--remote-data"):
        return
    skip = pytest.mark.skip(reason="needs the real archives: run with --remote-data")
    for item in items:
        if "remote_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def local_archive():
    """A started, activated LocalArchive with the demo content loaded (one per test session)."""
    from mwnb.local_archive import LocalArchive
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
