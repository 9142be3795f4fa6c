"""Where a cluster listens and how others join it: the CLI side of the cluster token.

``juno start`` binds its ports to loopback unless ``--node-ip-address`` (node
manager, workers) or ``--host`` (GCS) names another address of this machine;
such a port is reachable from the network, and the cluster token (CURVE, see
runtime/comm/auth.py) is what keeps strangers out. ``juno token`` prints a cluster's
token for joining it from another machine.
"""
from __future__ import annotations

import errno
import ipaddress
import socket

from juno.comm import auth


class AddressError(ValueError):
    """An address the user gave cannot be listened on; the message says why and what to do."""


def check_listen_ip(value: str, flag: str) -> str:
    """The IPv4 address ``value`` normalised ('localhost' -> 127.0.0.1), or AddressError:
    it must be an IPv4 address of this machine, and a specific one (not 0.0.0.0)."""
    if value == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise AddressError(f"{flag} must be an IPv4 address of this machine such as 127.0.0.1, got {value!r}.") \
            from None
    if ip.version != 4:
        raise AddressError(f"{flag} must be an IPv4 address, got {value} (IPv6 is not supported).")
    if ip.is_unspecified:
        raise AddressError(f"{flag} {value} would listen on every interface, and other processes need one "
                           "address to reach this one: give 127.0.0.1 (loopback: this machine only) or this "
                           "machine's address on the network the other machines share (`hostname -I`).")
    if ip.is_multicast or value == "255.255.255.255":
        raise AddressError(f"{flag} {value} is a multicast or broadcast address, not this machine's.")
    if not ip.is_loopback and not is_local_address(value):
        raise AddressError(f"{flag} {value} is not an address of this machine (no interface has it); "
                           "`hostname -I` lists this machine's addresses.")
    return str(ip)


def is_local_address(ip: str) -> bool:
    """True if some interface of this machine has ``ip`` (a socket can be bound to it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((ip, 0))
        except OSError as e:
            return e.errno != errno.EADDRNOTAVAIL
    return True


def network_warning(what: str, ip: str) -> str | None:
    """The warning a non-loopback listener deserves (None for loopback)."""
    if ipaddress.ip_address(ip).is_loopback:
        return None
    return (f"warning: the {what} listens on {ip}, which other machines on the network can reach; only "
            "holders of the cluster token get in (CURVE-encrypted and authenticated), so keep the token "
            "secret.")


def join_instructions(address: str, token_path: str) -> list[str]:
    """Lines telling the user how other nodes and clients join the cluster at ``address``."""
    return [
        "The cluster token (clients need it; on this machine they find it in",
        f"    {token_path}, readable only by you).",
        "To add a node on another machine: copy the token there (`juno token` prints it), then run",
        f"    juno start --address {address} --token <token>      (or set {auth.TOKEN_ENV})",
    ]
