"""Test hooks of the install steps, for the resume, uninstall and full-disk tests.

The process SIGKILLs itself with ``GPUBUNDLE_TEST_KILL_BEFORE=<step id>`` right after
that step recorded its intent (nothing changed yet), with
``GPUBUNDLE_TEST_KILL_UNRECORDED=<step id>`` after the step changed the host but before
its completion is recorded, and with ``GPUBUNDLE_TEST_KILL_AFTER=<step id>`` right after
recording it. ``GPUBUNDLE_TEST_FILL_BEFORE_EXTRACT=<path>`` fills the filesystem of
``<path>`` with that file once preflight has passed, just before extraction. Nothing
else reads these variables.
"""

from __future__ import annotations

import os
import signal

KILL_AFTER = "GPUBUNDLE_TEST_KILL_AFTER"
KILL_BEFORE = "GPUBUNDLE_TEST_KILL_BEFORE"
KILL_UNRECORDED = "GPUBUNDLE_TEST_KILL_UNRECORDED"
FILL = "GPUBUNDLE_TEST_FILL_BEFORE_EXTRACT"


def kill_if_asked(hook: str, step_id: str) -> None:
    if os.environ.get(hook) == step_id:
        os.kill(os.getpid(), signal.SIGKILL)


def fill_if_asked() -> None:
    """Fill the filesystem of the file named by FILL, as another process might."""
    path = os.environ.get(FILL)
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while os.write(fd, bytes(1 << 16)):
            pass
    except OSError:
        pass  # full
    finally:
        os.close(fd)
