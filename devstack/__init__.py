"""The development stack behind ``make up``: a Temporal dev server, the worker and the API."""
