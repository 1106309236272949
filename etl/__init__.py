"""IndexedDB -> MySQL migration toolkit."""
