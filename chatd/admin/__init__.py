"""Administration: the admin API (routes.py), instance statistics (reports.py), the
audit log (in the store: chatd/store/admin.py) and `chatd admin` (cli.py)."""
