"""x86vm.machine: guest memory, buses, exits, vCPU backends, run loop, boot loaders.

See ARCHITECTURE.md. Devices register on a :class:`~x86vm.machine.bus.Bus`; backends produce
the exit objects of :mod:`x86vm.machine.exits`; the run loop is the same for every backend.
"""
