"""Map initialisation files (``firmware/NAME.maps.json``, format ``bpfcore-maps/1``, written by
``firmware/mapspec.py`` and by ``bpfcore maps dump --json``) and ``--set NAME:KEY=VALUE`` options."""

import json

from bpfcore.errors import BpfcoreError

__all__ = ["MAP_FILE_FORMAT", "load_map_file", "parse_map_setting"]

#: The format of map initialisation files.
MAP_FILE_FORMAT = "bpfcore-maps/1"


def parse_map_setting(text):
    """``NAME:KEYHEX=VALUEHEX`` (a ``--set`` option) as (name, key bytes, value bytes)."""
    name, colon, rest = text.partition(":")
    key, eq, value = rest.partition("=")
    if not colon or not eq or not name:
        raise BpfcoreError(f"map setting {text!r} is not NAME:KEYHEX=VALUEHEX")
    try:
        return name, bytes.fromhex(key), bytes.fromhex(value)
    except ValueError:
        raise BpfcoreError(f"map setting {text!r}: key and value must be hex bytes") from None


def load_map_file(path):
    """Map settings from a ``bpfcore-maps/1`` JSON file: (list of (name, key, value), entry).

    ``entry`` is the file's program section (or None). Raises :class:`BpfcoreError` naming the
    file and the entry that is wrong.
    """
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as error:
        raise BpfcoreError(f"cannot read {path}: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BpfcoreError(f"{path}: not JSON: {error}") from None
    if not isinstance(doc, dict) or doc.get("format") != MAP_FILE_FORMAT:
        raise BpfcoreError(f"{path}: not a {MAP_FILE_FORMAT} file (no \"format\": "
                           f"\"{MAP_FILE_FORMAT}\")")
    maps = doc.get("maps", {})
    if not isinstance(maps, dict):
        raise BpfcoreError(f"{path}: \"maps\" must be an object of map name to entries")
    settings = []
    for name, entries in maps.items():
        if not isinstance(entries, list):
            raise BpfcoreError(f"{path}: map {name}: entries must be a list")
        for i, entry in enumerate(entries):
            try:
                settings.append((name, bytes.fromhex(entry["key"]),
                                 bytes.fromhex(entry["value"])))
            except (TypeError, KeyError, ValueError, AttributeError):
                raise BpfcoreError(f"{path}: map {name}, entry {i}: needs \"key\" and "
                                   "\"value\" as hex strings") from None
    entry = doc.get("entry")
    return settings, entry if isinstance(entry, str) else None
