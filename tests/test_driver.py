"""The toolkit's PyMySQL connection: one TLS context per process for PyMySQL's default TLS mode."""

from __future__ import annotations

import ssl

from etl.mysql.driver import Connection


def test_connections_share_the_default_tls_context_and_explicit_options_get_their_own(mysql_target):
    with mysql_target.connect() as a, mysql_target.connect() as b:
        assert isinstance(a, Connection) and a.ctx is b.ctx  # built once, not per connection (51 ms of CPU)
        assert a.ctx.verify_mode == ssl.CERT_NONE and not a.ctx.check_hostname  # PyMySQL's own default
        assert a.ssl and not a._ssl_required  # still PyMySQL's "preferred" mode: TLS when the server offers it
        with a.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        own = a._create_ssl_ctx({"verify_mode": "required"})  # options given: a context of their own
        assert own is not a.ctx and own.verify_mode == ssl.CERT_REQUIRED
