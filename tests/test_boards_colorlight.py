"""The Colorlight 5A-75B platform builds a bitstream with the yowasp tools."""

import pytest

from bpfcore.boards.colorlight_5a75b import Colorlight5A75BPlatform, HeartbeatTop, build_bitstream


def test_platform_is_the_colorlight_part():
    platform = Colorlight5A75BPlatform()
    assert (platform.device, platform.package, platform.speed) == ("LFE5U-25F", "BG256", "6")
    assert "openFPGALoader" not in platform.required_tools
    assert "yosys" in platform.required_tools


def test_heartbeat_bitstream(tmp_path):
    path = build_bitstream(HeartbeatTop(), tmp_path)
    bitstream = path.read_bytes()
    assert len(bitstream) > 10_000
    # An ECP5 bitstream starts with its comment block, then the preamble 0xBDB3.
    assert bitstream[:2] == b"\xff\x00" and b"\xff\xff\xbd\xb3" in bitstream[:1024]


def test_heartbeat_checks_its_argument():
    with pytest.raises(ValueError, match="bits must be a positive integer, not 0"):
        HeartbeatTop(0)
