"""Message search (being written): the part of the SQL store that finds messages."""

from __future__ import annotations

from chatd.store.sqlbase import SqlBase


class SearchSql(SqlBase):
    pass
