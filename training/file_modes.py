"""Model files readable by whoever the user's umask and the model directory let in.

safetensors (and so ``save_pretrained`` and accelerate's checkpoints) creates its files with mode 0600,
whatever the umask: other users of a shared model directory could read the card but not the weights. The
exported files get the mode a plain ``open()`` would give them (``0666 & ~umask``), narrowed further for a
class of users (group, others) that cannot enter the directory anyway, so no file says more than its
directory allows.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def current_umask() -> int:
    """The process umask, read without changing it where Linux reports it (other threads may be creating
    files); elsewhere set and restored at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode_for(directory: Path) -> int:
    """``0666 & ~umask``, without the group or other bits when that class may not enter ``directory``."""
    mode = 0o666 & ~current_umask()
    dir_mode = directory.stat().st_mode
    if not dir_mode & stat.S_IXGRP:
        mode &= ~0o060
    if not dir_mode & stat.S_IXOTH:
        mode &= ~0o006
    return mode


def share_files(directory: Path) -> None:
    """Give every regular file directly in ``directory`` the mode ``file_mode_for`` says."""
    mode = file_mode_for(directory)
    for path in directory.iterdir():
        if path.is_file() and not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) != mode:
            path.chmod(mode)
