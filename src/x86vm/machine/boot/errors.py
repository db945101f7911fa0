"""The one error a loader raises for a bad image or bad boot options."""


class BootError(ValueError):
    """An image that cannot be booted: truncated, wrong magic, unsupported protocol version,
    segments outside RAM, an initrd too large... The message is one line for the user."""
