"""Test setup: hypothesis profiles ("ci" keeps the suite within its time budget), and the
kernels compiled beside the tests by a second process (`tests/_warm.py`; ``ATTNSIM_WARM=0``
turns it off)."""

import os
import subprocess
import sys

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_warm = None


def pytest_sessionstart(session):
    """Start compiling into Numba's cache from a second process, when there is a cache."""
    global _warm
    import attnsim._jit

    if os.environ.get("ATTNSIM_WARM", "1") == "0" or not attnsim._jit.CACHE or os.environ.get("NUMBA_DISABLE_JIT"):
        return
    here = os.path.dirname(os.path.dirname(os.path.abspath(attnsim.__file__)))  # the attnsim these tests import
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([here, root, os.environ.get("PYTHONPATH", "")]))
    _warm = subprocess.Popen(
        [sys.executable, "-m", "tests._warm"], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def pytest_sessionfinish(session, exitstatus):
    if _warm is not None and _warm.poll() is None:
        _warm.terminate()
        _warm.wait()
