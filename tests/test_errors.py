"""``pallet.errors``: the features' classes are made on first use (start-up time) and are then
ordinary members of the one hierarchy."""

import pickle
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

FEATURES = {"LayerError": "PalletError", "BuildError": "PalletError", "ContainerNetworkError": "PalletError",
            "NetworkNotFound": "ContainerNetworkError", "NetworkInUse": "ContainerNetworkError",
            "VolumeError": "PalletError", "VolumeNotFound": "VolumeError", "VolumeInUse": "VolumeError",
            "ContainerError": "PalletError", "ContainerNotFound": "ContainerError",
            "ContainerStateError": "ContainerError", "CommandNotFound": "ContainerError",
            "CommandNotRunnable": "ContainerError", "ScanError": "PalletError", "CRIError": "PalletError"}


def test_the_features_classes_are_made_on_first_use_once_and_all_together():
    code = """
import threading
import pallet.errors as e
print(sorted(k for k in vars(e) if k.endswith("Error") or k.endswith("Found") or k.endswith("InUse")))
got = []
ts = [threading.Thread(target=lambda: got.append(e.ContainerNotFound)) for _ in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
from pallet.errors import ContainerNotFound, ScanError
print(len(set(map(id, got))), got[0] is ContainerNotFound, "ScanError" in vars(e), "ScanError" in dir(e))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert not set(FEATURES) & set(eval(first))  # none made by importing the module
    assert second == "1 True True True"


def test_they_keep_their_place_in_the_hierarchy_their_exit_codes_names_and_pickling():
    from pallet import errors

    for name, base in FEATURES.items():
        cls = getattr(errors, name)
        assert cls.__bases__ == (getattr(errors, base),) and issubclass(cls, errors.PalletError)
        assert (cls.__module__, cls.__qualname__, cls.__name__) == ("pallet.errors", name, name)
        assert pickle.loads(pickle.dumps(cls)) is cls
    codes = {n: getattr(errors, n).exit_code for n in FEATURES}
    assert codes == {"LayerError": 1, "BuildError": 125, "ContainerNetworkError": 125, "NetworkNotFound": 125,
                     "NetworkInUse": 125, "VolumeError": 125, "VolumeNotFound": 125, "VolumeInUse": 125,
                     "ContainerError": 125, "ContainerNotFound": 125, "ContainerStateError": 125,
                     "CommandNotFound": 127, "CommandNotRunnable": 126, "ScanError": 125, "CRIError": 125}
    assert errors.BuildError("RUN failed", exit_code=3, reference="x").exit_code == 3
    assert errors.CRIError("gone", code="NOT_FOUND").code == "NOT_FOUND"
    with pytest.raises(AttributeError, match="no attribute 'NoSuchError'"):
        errors.NoSuchError
