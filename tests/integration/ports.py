"""A free TCP port on 127.0.0.1 for a simulator the tests start (the kernel picks it)."""
import socket


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
