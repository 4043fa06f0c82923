"""MoCert's local card agent: an open cross-platform component (跨平台網頁元件) on http://localhost:61161.

It speaks the HiPKI local server's protocol (``/popupForm``, ``/pkcs11info``, ``/sign``, ``/addDomain``),
so pages written for the real component work with it, and reads cards through PC/SC (``iccard.pcsc``)
or emulates the demo cards (``--emulate``). Run it with ``python -m iccard.agent``.
"""
