"""A loopback TCP relay that counts the connections clients open through it: put in front of a
simulator (and named in its lease URLs), it shows from the outside how many connections an export
really makes. Python standard library only."""
import socket
import threading


class TcpRelay:
    def __init__(self, upstream_host):
        host, port = upstream_host.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted = 0
        self._lock = threading.Lock()
        self._stopping = False
        self._socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                if self._stopping:
                    client.close()
                    return
                self.accepted += 1
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._socks += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def connections(self):
        with self._lock:
            return self.accepted

    def stop(self):
        with self._lock:
            self._stopping = True
            socks, self._socks = self._socks, []
        self.listener.close()
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
