"""Errors a person can act on (STYLE.md lesson 14).

Every problem with user input (a program, a file, a packet, a command-line value) is raised as a
:class:`BpfcoreError` whose text names what is wrong and where; the command line prints that one
line and exits non-zero, never a traceback.
"""

__all__ = ["BpfcoreError", "ProgramError", "AsmError"]


class BpfcoreError(Exception):
    """Base class of every error whose message is meant for the user."""


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
