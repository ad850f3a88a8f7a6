"""Constructor argument checks shared by the MAC's components (messages echo the value)."""

__all__ = ["check_domain", "check_max_length", "check_fifo_words"]


def check_domain(name, value):
    if not isinstance(value, str) or not value.isidentifier():
        raise ValueError(f"{name} must be a clock domain name (an identifier), not {value!r}")


def check_max_length(value):
    if not isinstance(value, int) or isinstance(value, bool) or not 64 <= value <= 16383:
        raise ValueError(f"max_length must be an integer from 64 to 16383 (bytes with FCS), "
                         f"not {value!r}")


def check_fifo_words(value, max_length):
    if not isinstance(value, int) or isinstance(value, bool) or value < 16 or \
            value & (value - 1):
        raise ValueError(f"fifo_words must be a power of two of at least 16, not {value!r}")
    if 8 * value < max_length:
        raise ValueError(f"fifo_words ({value}) must hold a frame of max_length ({max_length}) "
                         "bytes in 8-byte words")
