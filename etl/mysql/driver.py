"""The PyMySQL connection every part of the toolkit opens: PyMySQL's own, with one TLS context per
process for its default ("preferred") TLS mode.

Given no TLS options, PyMySQL builds a new `ssl.create_default_context()` for every connection, so
it can use TLS when the server offers it. That loads the system's CA certificates each time: 51 ms of
CPU per connection on this machine, most of a connection's cost (57 ms), paid by every API pool
connection, every validation query's connection and every test. The context is the same for every
connection (no CA given: certificates are not verified, as PyMySQL's default), so one is built and
shared; what the connection negotiates with the server is unchanged. TLS options given (a CA, a
certificate) still build their own context.
"""

from __future__ import annotations

import threading

import pymysql


class Connection(pymysql.connections.Connection):
    _preferred = None
    _lock = threading.Lock()

    def _create_ssl_ctx(self, sslp):  # PyMySQL's hook; see the module docstring
        if sslp != {}:
            return super()._create_ssl_ctx(sslp)
        with Connection._lock:
            if Connection._preferred is None:
                Connection._preferred = super()._create_ssl_ctx({})
            return Connection._preferred


def connect(**kwargs) -> Connection:
    """pymysql.connect with the shared context."""
    return Connection(**kwargs)
