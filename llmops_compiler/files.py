"""Reading files the compiler does not control (the output folder, the cache) without trusting them: links are
not followed, FIFOs are not waited on, anything but a regular file is refused, and a size limit bounds memory."""

from __future__ import annotations

import errno
import os
import stat


def read_regular(path: str, limit: int | None = None, private: bool = False) -> bytes:
    """A file's bytes, read with one or two system calls (no buffered file object: every owned file is read).

    Raises OSError for anything but a regular file (a link, a FIFO, a device, say where a user replaced an owned
    file: never followed or waited on), for a file over ``limit`` bytes (when given, also if it grows past it
    while read) and, with ``private``, for a file another user owns or others may write."""
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        if private and not owned_privately(status):
            raise OSError(errno.EPERM, "not private to this user", path)
        size = status.st_size
        if limit is not None and size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes", path)
        chunks = [os.read(descriptor, size + 1)]
        if len(chunks[0]) <= size:  # a short read of a regular file: its end
            return chunks[0]
        read = len(chunks[0])
        while chunks[-1]:  # the file grew meanwhile, or reports no size: read to the end
            if limit is not None and read > limit:
                raise OSError(errno.EFBIG, f"larger than {limit} bytes", path)
            chunks.append(os.read(descriptor, 1 << 20))
            read += len(chunks[-1])
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def owned_privately(status: os.stat_result) -> bool:
    """Whether a file or folder (its ``lstat``/``fstat``) belongs to this user and nobody else may write to it."""
    owner = not hasattr(os, "getuid") or status.st_uid == os.getuid()
    return owner and not status.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
