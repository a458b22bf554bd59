"""Fault injection: real processes killed with SIGKILL under load (``make test-faults``)."""
