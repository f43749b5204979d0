"""Council connectors: REST events in, the CSV importer and the change-feed poller.

* ``events``     one council event → validated, mapped, stored through the Intake (REST, poll)
* ``csv_import`` a CSV export streamed row by row, stored in batches (endpoint and CLI)
* ``poller``     pulls a council's change feed from a persisted cursor, with backoff
* ``cursors``    the poll cursor and failure state kept in ``poll_cursors``

Nothing here starts a thread or opens a socket at import time.
"""
