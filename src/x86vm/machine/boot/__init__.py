"""Boot loaders: put a guest image in memory and return its :class:`EntryState`."""
