"""PostgreSQL whose connection pool, finding a dead connection, drops every dead one at once."""

from __future__ import annotations

from typing import Any

import psycopg
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool


class DatabaseWrapper(base.DatabaseWrapper):
    """Django's PostgreSQL backend; each pooled connection is checked as it is taken.

    A restart or failover kills every connection a pool holds. Checked by psycopg_pool itself
    (CONN_HEALTH_CHECKS), each dead one found cost the request a wait of 1, 2, 4 s..., so a
    process's first request after a restart waited out DATABASE_POOL_TIMEOUT (a 503) with
    five or more of them. Here the first dead one found has the pool check all its idle
    connections at once (`ConnectionPool.check`, which replaces the dead), and the request
    takes a live one.
    """

    # Tries to find a live connection: more dead ones than this were still in use elsewhere.
    CHECKOUT_TRIES = 3

    def get_new_connection(self, conn_params: dict[str, Any]) -> psycopg.Connection:
        connection = super().get_new_connection(conn_params)
        pool = self.pool
        if pool is None:
            return connection
        for _ in range(self.CHECKOUT_TRIES):
            try:
                ConnectionPool.check_connection(connection)
            except psycopg.Error:
                pool.putconn(connection)  # broken: the pool discards it
                pool.check()
                connection = super().get_new_connection(conn_params)
            else:
                return connection
        return connection
