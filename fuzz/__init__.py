"""A fuzz harness for MoCert: every route of the url_map, against a real gunicorn on SQLite and PostgreSQL.

``python -m fuzz`` (``make fuzz``) runs it; ``tests/test_fuzz.py`` runs a short round in ``make test``.
``cases`` makes the requests (seeded, reproducible), ``wire`` sends them byte for byte, ``target`` sets
up and seeds the server, ``run`` drives and reports, ``known`` names the 5xx causes already known.
"""
