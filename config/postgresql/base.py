"""PostgreSQL whose connection pool, finding a dead connection, drops every dead one at once."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool, PoolTimeout


class DatabaseWrapper(base.DatabaseWrapper):
    """Django's PostgreSQL backend; each pooled connection is checked as it is taken.

    A restart or failover kills every connection a pool holds. Checked by psycopg_pool itself
    (CONN_HEALTH_CHECKS), each dead one found cost the request a wait of 1, 2, 4 s..., so a
    process's first request after a restart waited out DATABASE_POOL_TIMEOUT (a 503) with
    five or more of them. Here the first dead one found has the pool check all its idle
    connections at once (`ConnectionPool.check`, which replaces the dead), and the request
    takes a live one, within the pool's timeout all told. Dead connections that other threads
    hand back later are checked and dropped in turn; none is handed out unchecked.
    """

    def get_new_connection(self, conn_params: dict[str, Any]) -> psycopg.Connection:
        pool = self.pool
        if pool is None:
            return super().get_new_connection(conn_params)
        deadline = time.monotonic() + pool.timeout
        connection = super().get_new_connection(conn_params)
        while True:
            try:
                ConnectionPool.check_connection(connection)
            except psycopg.Error:
                pool.putconn(connection)  # broken: the pool discards it
                pool.check()
            else:
                return connection
            left = deadline - time.monotonic()
            if left <= 0:
                raise PoolTimeout(f"no live connection after {pool.timeout:.2f} sec")
            connection = pool.getconn(timeout=left)
            if "isolation_level" in self.settings_dict["OPTIONS"]:
                connection.isolation_level = self.isolation_level  # as Django's own does
