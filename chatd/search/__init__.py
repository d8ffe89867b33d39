"""Message search: what a query means (query.py) and how a result shows it (highlight.py).

The databases find the messages (chatd/store/search.py); both modules here see words the
way they do, so what a result marks is what the database matched.
"""
