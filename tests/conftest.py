"""Fixtures shared by every test module; keep only generic things here."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fresh, seeded random state for each test (never the global one)."""
    return np.random.RandomState(0)
