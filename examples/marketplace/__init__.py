"""臺灣雲市集（示範）: a relying party that logs its people in through MoCert with Authlib's OIDC client, or
with 行動自然人憑證 through MoCert's TW FidO API for agencies (as an agency, with the shipped ``twfido``).

``python -m examples.marketplace`` serves it; ``python -m examples.marketplace register`` registers it
at MoCert. It imports nothing from MoCert's ``app``, ``iccard`` or ``webauthn`` packages.
"""
