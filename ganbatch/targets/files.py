"""Where target files come from: a path, an open file or raw bytes."""
import os
from typing import IO, Union

Source = Union[str, os.PathLike, bytes, IO]


def source_name(source: Source) -> str:
    """A name for error messages: the path, the open file's name, or a placeholder."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray)):
        return "<bytes>"
    return getattr(source, "name", None) or "<stream>"


def read_source(source: Source) -> Union[bytes, str]:
    """The whole content of `source`: bytes for paths and byte input, whatever `read()` gives for open files."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as file:
            return file.read()
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    return source.read()
