"""Decoders: layout + MemoryReader + address -> model objects. They never see JSON-RPC."""
