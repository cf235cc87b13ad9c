"""Running the function on this machine: the embedded S3, the Lambda emulator binary, sandboxes (a process
or a container), the pool of them, the launcher that seeds the bucket and starts the pool, and the reaper."""
