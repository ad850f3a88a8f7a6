"""Errors a person can act on (STYLE.md lesson 14).

Every problem with user input (a program, a file, a packet, a command-line value) is raised as a
:class:`BpfcoreError` whose text names what is wrong and where; the command line prints that one
line and exits non-zero, never a traceback.
"""

__all__ = ["BpfcoreError", "ProgramError", "AsmError", "read_input"]


class BpfcoreError(Exception):
    """Base class of every error whose message is meant for the user."""


def read_input(path, binary=True, what="file"):
    """The contents of a file the user named, or a :class:`BpfcoreError` naming it and the problem.

    ``what`` names the kind of file in the "is a directory" message (e.g. "pcap file").
    """
    from pathlib import Path
    try:
        return Path(path).read_bytes() if binary else Path(path).read_text()
    except FileNotFoundError:
        raise BpfcoreError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BpfcoreError(f"{path}: is a directory, not a {what}") from None
    except UnicodeDecodeError:
        raise BpfcoreError(f"{path}: not a text file") from None
    except OSError as error:
        raise BpfcoreError(f"{path}: {error.strerror}") from None


class ProgramError(BpfcoreError):
    """A program rejected at load time.

    Parameters
    ----------
    pc : int or None
        Slot index of the offending instruction, or None for the whole program.
    reason : str
        What is wrong.
    where : str
        Optional origin (file name, ELF section) prefixed to the message.
    """

    def __init__(self, pc, reason, where=""):
        self.pc = pc
        self.reason = reason
        self.where = where
        location = f"pc {pc}: " if pc is not None else ""
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}{location}{reason}")


class AsmError(BpfcoreError):
    """A line of assembly that cannot be assembled.

    Parameters
    ----------
    filename : str
    line : int
        1-based line number.
    message : str
    """

    def __init__(self, filename, line, message):
        self.filename = filename
        self.line = line
        self.message = message
        super().__init__(f"{filename}:{line}: {message}")
