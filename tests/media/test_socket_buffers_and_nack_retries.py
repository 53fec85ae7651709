"""Loss at the publisher leg: ICE sockets get large kernel buffers, and a packet still missing is
NACKed again (a NACK or its retransmission can be lost too), a bounded number of times."""

from __future__ import annotations

import socket

from aiortc import RTCSessionDescription

from media.aiortc.ice import SOCKET_RECEIVE_BUFFER, close_peer_connection, ice_protocols, set_socket_buffers
from media.peers import make_peer_connection
from media.rtp import NackSchedule


def _kernel_limit(name: str) -> int:
    with open(f"/proc/sys/net/core/{name}") as f:
        return int(f.read())


def test_a_socket_buffer_is_set_beyond_the_kernel_limit_when_privileged_and_to_the_limit_otherwise() -> None:
    wanted = _kernel_limit("rmem_max") * 2
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        receive, send = set_socket_buffers(sock, wanted, 1 << 20)
    # The kernel reports double what was set; without CAP_NET_ADMIN it caps at rmem_max.
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, 33, 4096)  # SO_RCVBUFFORCE (Linux)
        privileged = True
    except PermissionError:
        privileged = False
    assert receive >= (wanted * 2 if privileged else _kernel_limit("rmem_max") * 2)
    assert send >= 2 * min(1 << 20, _kernel_limit("wmem_max"))


async def test_a_peer_connection_of_the_relay_has_enlarged_buffers_on_every_gathered_socket() -> None:
    pc = make_peer_connection(())
    pc.addTransceiver("video", direction="recvonly")
    try:
        await pc.setLocalDescription(await pc.createOffer())
        protocols = ice_protocols(pc)
        assert protocols
        for protocol in protocols:
            sock = protocol.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 2 * min(
                SOCKET_RECEIVE_BUFFER, _kernel_limit("rmem_max")
            )
        assert isinstance(pc.localDescription, RTCSessionDescription)
    finally:
        await close_peer_connection(pc)


def test_a_missing_packet_is_nacked_at_once_then_again_after_the_interval_up_to_the_limit() -> None:
    schedule = NackSchedule(interval=0.03, tries=3)
    missing = {10, 11}
    assert schedule.due(missing, 0.0) == [10, 11]
    assert schedule.due(missing, 0.01) == []  # not again before the interval
    missing.add(12)
    assert schedule.due(missing, 0.02) == [12]  # a new gap goes at once
    assert schedule.due(missing, 0.031) == [10, 11]
    assert schedule.due(missing, 0.07) == [10, 11, 12]
    assert schedule.due(missing, 0.2) == [12]  # 10 and 11 had their three tries
    assert schedule.due(missing, 0.3) == []


def test_a_repaired_packet_is_forgotten_and_a_later_loss_of_the_same_number_starts_afresh() -> None:
    schedule = NackSchedule(interval=0.03, tries=2)
    assert schedule.due({7}, 0.0) == [7]
    assert schedule.due(set(), 0.01) == []  # repaired
    assert schedule.due({7}, 0.02) == [7]  # after a sequence wrap, 7 is a new loss


def test_retries_wait_a_measured_round_trip_once_retransmissions_have_measured_it() -> None:
    schedule = NackSchedule(interval=0.03, tries=4)
    assert schedule.due({1}, 0.0) == [1]
    assert schedule.due({1}, 0.031) == [1]  # nothing measured yet: every 30 ms
    schedule.repaired(1, 0.3)  # its first retransmission, 300 ms after the first NACK (the later NACK does not shorten it)
    assert schedule.rtt == 0.3
    assert schedule.due({2}, 1.0) == [2]
    assert schedule.due({2}, 1.2) == []  # a retransmission could not be back yet
    assert schedule.due({2}, 1.376) == [2]  # a round trip and a quarter on
    schedule.repaired(3, 2.0)  # never NACKed: no sample
    assert schedule.rtt == 0.3
