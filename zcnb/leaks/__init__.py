"""Leak reports: the allocator's or a tool's account of what leaked, and how to get one.

``model`` (:class:`LeakReport` and its sites), ``parse`` (ASan/LSan, valgrind memcheck and Zig
allocator reports), ``massif`` (valgrind massif heap profiles), ``capture`` (run a command under a
leak checker; stop the gateway cleanly to collect its exit-time report). Import from the modules.
"""
