"""A map census: every map reachable from the program's package variables and goroutine
frames, each once, under its shortest path, with what it holds and what it wastes.

    roots (roots.py: DWARF globals, Delve's frames) -> walk (walk.py: typed, each object
    once, bulk reads) -> maps (maps.py: the layouts' decoders) -> Census (sorted by waste)

Only ``take`` and roots.py speak to Delve; the walk and the decoding read a MemoryReader
(/proc/PID/mem, a core file's segments, ExamineMemory), so a core is walked exactly as a
live process is.
"""
