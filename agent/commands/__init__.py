"""One module per sub-command; each exposes ``main(args) -> int``."""
