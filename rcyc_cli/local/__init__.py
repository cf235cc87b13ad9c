"""The local side: the embedded S3, function sandboxes (process or container), the pool, the warm stack."""
