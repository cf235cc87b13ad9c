"""The local side. ``run`` (invoke-local) and ``session`` (one run's uploads and invokes) sit above two rooms:
``emulator`` (the embedded S3, the emulator binary, sandboxes, the pool, the reaper) and ``stack`` (the warm
stack: its client and state, its server process, the Invoke API it answers, admission, the warm path)."""
