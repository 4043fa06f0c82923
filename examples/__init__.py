"""Example programs beside MoCert; each is separate and imports nothing from MoCert's packages."""
