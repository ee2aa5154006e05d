"""Shared test fixtures: the read-only ../shared fixtures and small-thread torch."""
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

SHARED_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures():
    """Path to ../shared/fixtures (files made by the original tools); skips when absent."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"../shared/fixtures not found at {SHARED_FIXTURES}")
    return SHARED_FIXTURES
