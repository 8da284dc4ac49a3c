from ..._std.http import *  # noqa: F401,F403  moved: shim until the branches in flight merge
