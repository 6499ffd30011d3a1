"""Before a process sets anything up: the address its web server will listen on is free
and this machine's (else one line and exit 2, not a traceback once Kafka and Redis were
set up)."""

from __future__ import annotations

import socket

from streams.settings import SettingsError


def check_can_listen(host: str, port: int, variables: str) -> None:
    """Raise :class:`SettingsError` naming ``variables`` (the settings that give the
    address) when ``host:port`` cannot be bound: in use, or not an address of this
    machine.

    >>> with socket.socket() as taken:
    ...     taken.bind(("127.0.0.1", 0)); taken.listen()
    ...     check_can_listen("127.0.0.1", taken.getsockname()[1], "MOMENTS_WEB_PORT")
    Traceback (most recent call last):
    streams.settings.SettingsError: MOMENTS_WEB_PORT: cannot listen on 127.0.0.1:...
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as trial:
            trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
            trial.bind(address)
    except OSError as exc:  # in use, or not an address of this machine
        raise SettingsError(
            f"{variables}: cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
