"""The IC-card domain: citizen certificates, card logins, the demo PKI.

Imports nothing from Flask: the web application (``app``) is the only HTTP layer. (Not called
``smartcard``: that is pyscard's import name, and a local package would shadow it.)
"""
