from ._std.json import *  # noqa: F401,F403  moved: shim until the branches in flight merge
