"""WebAuthn ceremonies over python-fido2, hardened (binding and phone login; see the binding issue).

Imports nothing from Flask.
"""
