"""The Ethernet MAC (``bpfcore.hdl.eth``): the CRC against ``zlib.crc32`` in Amaranth's
simulator, constructor checks, and the cocotb benches of the port (GMII and RGMII) against
cocotbext-eth's models (``bpfcore.sim.rtl.eth_bench``)."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from bpfcore.hdl.unused import unelaborated
from bpfcore.hdl.eth import crc
from bpfcore.hdl.eth.layouts import RxReason, RxStatus, RxWord, TxWord
from bpfcore.hdl.eth.port import EthPort
from bpfcore.hdl.eth.rgmii import Rgmii
from bpfcore.hdl.eth.rx import MacRx
from bpfcore.hdl.eth.tx import MacTx
from bpfcore.hdl.eth.words import RxPacker, TxUnpacker, reason_of
from bpfcore.sim.rtl import eth


def _crc_run(frames):
    """Feed each frame (then its FCS) through the FCS processor; return (crc after the frame,
    match_detected after the FCS) per frame."""
    m = Module()
    m.submodules.crc = processor = crc.fcs_processor()
    sim = Simulator(m)
    sim.add_clock(1e-6)
    results = []

    async def bench(ctx):
        for frame in frames:
            ctx.set(processor.start, 1)
            await ctx.tick()
            ctx.set(processor.start, 0)
            ctx.set(processor.valid, 1)
            for byte in frame:
                ctx.set(processor.data, byte)
                await ctx.tick()
            ctx.set(processor.valid, 0)
            value = ctx.get(processor.crc)
            ctx.set(processor.valid, 1)
            for byte in value.to_bytes(4, "little"):
                ctx.set(processor.data, byte)
                await ctx.tick()
            ctx.set(processor.valid, 0)
            results.append((value, ctx.get(processor.match_detected)))

    sim.add_testbench(bench)
    sim.run()
    return results


def test_crc_matches_zlib(seed):
    rng = random.Random(seed)
    frames = [b"", b"\x00", b"123456789", bytes(60), b"\xff" * 64] + \
        [bytes(rng.randrange(256) for _ in range(rng.randint(1, 200))) for _ in range(8)]
    for frame, (value, match) in zip(frames, _crc_run(frames)):
        assert value == crc.fcs(frame), f"{frame.hex()} (seed {seed})"
        assert match, f"no residue after the FCS of {frame.hex()} (seed {seed})"
    # The check value of CRC-32/ISO-HDLC.
    assert crc.fcs(b"123456789") == 0xCBF43926
    assert crc.with_fcs(b"123456789")[-4:] == (0xCBF43926).to_bytes(4, "little")


@pytest.mark.parametrize("make, message", [
    (lambda: EthPort(max_length=63), "max_length must be an integer from 64 to 16383 .*not 63"),
    (lambda: EthPort(max_length="1518"), "max_length .* not '1518'"),
    (lambda: EthPort(fifo_words=1000), "fifo_words must be a power of two .* not 1000"),
    (lambda: EthPort(fifo_words=8), "fifo_words must be a power of two .* not 8"),
    (lambda: EthPort(max_length=4100), r"fifo_words \(512\) must hold a frame of max_length "
                                       r"\(4100\)"),
    (lambda: EthPort(interface="mii"), "interface must be one of rgmii, gmii, not 'mii'"),
    (lambda: EthPort(primitives="xilinx"), "primitives must be one of ecp5, model, not 'xilinx'"),
    (lambda: EthPort(rx_delay=128), "rx_delay must be an integer from 0 to 127 .* not 128"),
    (lambda: EthPort(tx_delay=-1), "tx_delay .* not -1"),
    (lambda: EthPort(rx_domain="sync"), "must differ"),
    (lambda: EthPort(tx_domain="rx 1"), "tx_domain must be a clock domain name .* not 'rx 1'"),
    (lambda: EthPort(counter_width=8), "counter_width must be an integer from 16 to 64, not 8"),
    (lambda: MacRx(domain=""), "domain must be a clock domain name .* not ''"),
    (lambda: MacTx(domain=3), "domain must be a clock domain name .* not 3"),
    (lambda: Rgmii(primitives=None), "primitives must be one of ecp5, model, not None"),
    (lambda: RxPacker(domain="sync "), "domain must be a clock domain name .* not 'sync '"),
    (lambda: TxUnpacker(domain=None), "domain must be a clock domain name .* not None"),
])
def test_arguments_are_checked(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_port_members_follow_the_interface():
    rgmii = EthPort()
    gmii = EthPort(interface="gmii", rx_domain="rx1")
    for port in (rgmii, gmii):
        unelaborated(port)
    assert {"rx", "tx", "counters", "rgmii"} == set(rgmii.signature.members)
    assert {"rx", "tx", "counters", "gmii_rx", "gmii_tx"} == set(gmii.signature.members)
    assert int(RxStatus.OVERFLOW) == 16


def test_word_layouts_are_as_the_datapath_reads_them():
    # Field names, order and widths are an interface: another datapath consumes them.
    assert [(name, field.offset, field.width) for name, field in RxWord] == \
        [("data", 0, 64), ("count", 64, 4), ("last", 68, 1), ("good", 69, 1)]
    assert [(name, field.offset, field.width) for name, field in TxWord] == \
        [("data", 0, 64), ("count", 64, 4), ("last", 68, 1)]
    port = EthPort()
    unelaborated(port)
    assert port.rx.payload.shape() == RxWord and port.tx.payload.shape() == TxWord


def test_one_reason_per_bad_frame_in_counter_order():
    assert reason_of(0) == RxReason.GOOD
    assert reason_of(RxStatus.FCS | RxStatus.RUNT) == RxReason.RUNT
    assert reason_of(RxStatus.FCS | RxStatus.OVERFLOW | RxStatus.OVERSIZE) == RxReason.OVERFLOW
    assert reason_of(RxStatus.FCS | RxStatus.RX_ERROR) == RxReason.RX_ERROR


def test_ecp5_primitives_and_delays_are_instantiated():
    from amaranth.back import rtlil
    text = rtlil.convert(EthPort(rx_delay=80, tx_delay=60), name="top")
    # 5 receive pins x IDDRX1F; 4 data + control + clock x ODDRX1F; 5 + 1 DELAYG.
    assert text.count("cell \\IDDRX1F") == 5
    assert text.count("cell \\ODDRX1F") == 6
    assert text.count("cell \\DELAYG") == 6
    assert "parameter \\DEL_VALUE 80" in text and "parameter \\DEL_VALUE 60" in text
    assert "DELAYG" not in rtlil.convert(EthPort(), name="top")


LINE_RATE = ["rx_line_rate", "tx_line_rate"]


@pytest.mark.parametrize("interface, sync_mhz, tests", [
    ("gmii", 62.5, ["rx_frames", "rx_overflow", "tx_frames"] + LINE_RATE),
    ("gmii", 50.0, LINE_RATE),
    ("rgmii", 62.5, ["rx_frames", "tx_frames"] + LINE_RATE),
])
def test_port_bench(interface, sync_mhz, tests, seed):
    outcome, log = eth.run(interface, tests, seed=seed, sync_mhz=sync_mhz)
    assert outcome == {name: "pass" for name in tests}, \
        f"{interface} bench, sync at {sync_mhz} MHz: {outcome} (seed {seed}); log: {log}"
