"""Ethernet MAC: RGMII on ECP5 DDR I/O, GMII inside, FCS check and generation.

One :class:`~bpfcore.hdl.eth.port.EthPort` per port joins the pieces:

=============  ============================================================  ==========
file           what                                                          domain
=============  ============================================================  ==========
``layouts``    GMII signature, stream payloads, FIFO entries, counters       --
``crc``        the CRC-32 of IEEE 802.3 (``amaranth.lib.crc``), 8 bits/cycle  --
``rgmii``      RGMII <-> GMII on IDDRX1F/ODDRX1F/DELAYG (or models)           rx, tx
``rx``         GMII receive: SFD, FCS check, length checks, FIFO writes       rx (125)
``tx``         GMII transmit: preamble, padding, FCS, inter-frame gap         tx (125)
``words``      bytes <-> 64-bit words next to the FIFOs                       rx, tx
``port``       FIFOs between domains, word streams, counters                 sync
=============  ============================================================  ==========

Clock domains (ARCHITECTURE.md, "Clock domains"): per port an RX domain clocked by the PHY's
receive clock (125 MHz, named by the constructor, ``rx0``/``rx1``), a TX domain from the board
PLL (125 MHz, ``tx``) and the core domain ``sync`` (50-62.5 MHz). Only the DDR adapter, the byte
paths, the CRCs and one side of each block-RAM FIFO are clocked at 125 MHz.
"""
