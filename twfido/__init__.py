"""The TW FidO service-provider API (需用機關 API) as agencies and MoCert both compute it, free of Flask.

Agencies call the government's TW FidO service from their servers; MoCert answers the same contract
(``../shared/docs/twfido-sp-api.md`` in the project's notes, the README's "API for agencies"). What both
sides must compute alike lives here: the checksums of requests and answers (:mod:`twfido.checksum`), the
ticket (:mod:`twfido.ticket`), what a phone's signature covers (:mod:`twfido.challenge`), the
signature itself with its offline verifier (:mod:`twfido.signed_response`, ``python -m twfido.verify``), and
the phone's certificate's status by the mobile CA's OCSP or CRL (:mod:`twfido.revocation`). ``cryptography``
and the standard library are all it needs.
"""
