"""The warm local stack: its client and state file (``client``), its background process (``server``), the
Lambda Invoke API it answers (``invoke_api``, ``protocol``, ``errors``), admission, and invoke-local's warm path."""
